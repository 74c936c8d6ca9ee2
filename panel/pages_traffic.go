package panel

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"minivercel/schema"
	"minivercel/traffic"
)

// buildsCharted is how many of a project's last finished builds the build
// duration chart shows.
const buildsCharted = 50

// projectTraffic is what the traffic page and GET
// /api/projects/{name}/traffic show.
type projectTraffic struct {
	Range  traffic.Range
	Points []traffic.Point
	Builds []schema.BuildDuration
}

// loadTraffic reads a project's traffic over the range asked for in the
// query (?range=hour|day) and its last builds' durations.
func (s *Server) loadTraffic(c *fiber.Ctx, p schema.Project) (projectTraffic, error) {
	rg, err := traffic.ParseRange(c.Query("range"))
	if err != nil {
		return projectTraffic{}, fiber.NewError(fiber.StatusBadRequest, "range must be hour or day")
	}
	ctx := c.UserContext()
	points, err := traffic.Load(ctx, s.store, p.ID, rg, time.Now())
	if err != nil {
		return projectTraffic{}, err
	}
	builds, err := s.store.BuildDurations(ctx, p.ID, buildsCharted)
	if err != nil {
		return projectTraffic{}, err
	}
	return projectTraffic{Range: rg, Points: points, Builds: builds}, nil
}

type trafficView struct {
	Project  schema.Project
	Range    string
	Charts   []chart
	Requests int64 // over the range
	Errors   int64 // 4xx and 5xx over the range
}

func (s *Server) trafficPage(c *fiber.Ctx) error {
	p, err := s.projectByParam(c)
	if err != nil {
		return err
	}
	t, err := s.loadTraffic(c, p)
	if err != nil {
		return err
	}
	v := trafficView{Project: p, Range: t.Range.String()}
	label := "15:04"
	series := func(id, title, unit string, value func(traffic.Point) float64) chart {
		ch := chart{ID: id, Title: title, Unit: unit}
		for _, pt := range t.Points {
			ch.Points = append(ch.Points, chartPoint{Label: pt.Start.UTC().Format(label) + " UTC", Value: value(pt)})
		}
		return ch
	}
	for _, pt := range t.Points {
		v.Requests += pt.Requests
		v.Errors += pt.Errors4xx + pt.Errors5xx
	}
	v.Charts = []chart{
		series("chart-requests", "Requests per minute", "", func(p traffic.Point) float64 { return p.PerMinute }),
		series("chart-4xx", "4xx rate", "%", func(p traffic.Point) float64 { return p.Rate4xx }),
		series("chart-5xx", "5xx rate", "%", func(p traffic.Point) float64 { return p.Rate5xx }),
		series("chart-p95", "p95 latency", "ms", func(p traffic.Point) float64 { return float64(p.P95) / float64(time.Millisecond) }),
	}
	builds := chart{ID: "chart-builds", Title: "Build durations", Unit: "s", Bars: true}
	for _, b := range t.Builds {
		builds.Points = append(builds.Points, chartPoint{Label: "#" + strconv.FormatInt(b.BuildID, 10) + " " + b.Status.String(), Value: b.Seconds})
	}
	v.Charts = append(v.Charts, builds)
	return s.render(c, fiber.StatusOK, "project_traffic", p.Name+" traffic", v)
}

// runtimeLogPage is how many lines the runtime log page starts with.
const runtimeLogPage = 200

// maxRuntimeLogLimit bounds one answer of GET /api/projects/{name}/runtime-logs.
const maxRuntimeLogLimit = 1000

type logsView struct {
	Project    schema.Project
	Deployment *schema.Deployment // nil: nothing deployed yet
	Lines      []schema.RuntimeLogLine
	LastSeq    int64
	PollLimit  int
}

// logsPage shows the runtime log of the project's app; a script
// (runtimelogs.js) follows it live.
func (s *Server) logsPage(c *fiber.Ctx) error {
	p, err := s.projectByParam(c)
	if err != nil {
		return err
	}
	v := logsView{Project: p, PollLimit: runtimeLogPage}
	d, err := s.store.RuntimeLogDeployment(c.UserContext(), p.ID)
	if err != nil && !errors.Is(err, schema.ErrNotFound) {
		return err
	}
	if err == nil {
		v.Deployment = &d
		if v.Lines, err = s.store.RuntimeLogTail(c.UserContext(), d.ID, runtimeLogPage); err != nil {
			return err
		}
		if n := len(v.Lines); n > 0 {
			v.LastSeq = v.Lines[n-1].Seq
		}
	}
	return s.render(c, fiber.StatusOK, "project_logs", p.Name+" logs", v)
}

// runtimeLogDeployment is the deployment a runtime log request is about:
// ?deployment=ID when given (it must be the project's), else the one the
// project shows.
func (s *Server) runtimeLogDeployment(ctx context.Context, p schema.Project, param string) (schema.Deployment, error) {
	if param == "" {
		d, err := s.store.RuntimeLogDeployment(ctx, p.ID)
		return d, lookupErr(err, "deployment")
	}
	id, err := strconv.ParseInt(param, 10, 64)
	if err != nil || id <= 0 {
		return schema.Deployment{}, fiber.NewError(fiber.StatusBadRequest, "invalid deployment id")
	}
	d, err := s.store.DeploymentByID(ctx, id)
	if err == nil && d.ProjectID != p.ID { // another project's: as if it did not exist
		err = schema.ErrNotFound
	}
	return d, lookupErr(err, "deployment")
}
