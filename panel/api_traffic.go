package panel

import (
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
)

// trafficJSON answers GET /api/projects/{name}/traffic?range=hour|day.
type trafficJSON struct {
	Project     string              `json:"project"`
	Range       string              `json:"range"`
	StepSeconds int                 `json:"step_seconds"`
	Points      []trafficPointJSON  `json:"points"`
	Builds      []buildDurationJSON `json:"builds"`
}

type trafficPointJSON struct {
	Start     time.Time `json:"start"`
	Requests  int64     `json:"requests"`
	Errors4xx int64     `json:"errors_4xx"`
	Errors5xx int64     `json:"errors_5xx"`
	Bytes     int64     `json:"bytes"`
	PerMinute float64   `json:"requests_per_minute"`
	Rate4xx   float64   `json:"rate_4xx"`
	Rate5xx   float64   `json:"rate_5xx"`
	P95MS     float64   `json:"p95_ms"`
}

type buildDurationJSON struct {
	ID         int64     `json:"id"`
	Status     string    `json:"status"`
	FinishedAt time.Time `json:"finished_at"`
	Seconds    float64   `json:"seconds"`
}

func (s *Server) apiTraffic(c *fiber.Ctx) error {
	p, err := s.projectByParam(c)
	if err != nil {
		return err
	}
	t, err := s.loadTraffic(c, p)
	if err != nil {
		return err
	}
	out := trafficJSON{Project: p.Name, Range: t.Range.String(), StepSeconds: int(t.Range.Step().Seconds()),
		Points: make([]trafficPointJSON, 0, len(t.Points)), Builds: make([]buildDurationJSON, 0, len(t.Builds))}
	for _, pt := range t.Points {
		out.Points = append(out.Points, trafficPointJSON{Start: pt.Start, Requests: pt.Requests, Errors4xx: pt.Errors4xx,
			Errors5xx: pt.Errors5xx, Bytes: pt.Bytes, PerMinute: pt.PerMinute, Rate4xx: pt.Rate4xx, Rate5xx: pt.Rate5xx,
			P95MS: float64(pt.P95) / float64(time.Millisecond)})
	}
	for _, b := range t.Builds {
		out.Builds = append(out.Builds, buildDurationJSON{ID: b.BuildID, Status: b.Status.String(), FinishedAt: b.FinishedAt, Seconds: b.Seconds})
	}
	return c.JSON(out)
}

// runtimeLogsJSON answers GET /api/projects/{name}/runtime-logs.
type runtimeLogsJSON struct {
	DeploymentID int64             `json:"deployment_id"`
	BuildID      int64             `json:"build_id"`
	Status       string            `json:"status"`
	Lines        []runtimeLineJSON `json:"lines"`
	// Next is the after= of the next request: the last seq answered, or
	// the one asked for when no line came.
	Next int64 `json:"next"`
}

type runtimeLineJSON struct {
	Seq  int64     `json:"seq"`
	Line string    `json:"line"`
	Time time.Time `json:"time"`
}

// apiRuntimeLogs answers lines of an app's runtime log after ?after=SEQ (0:
// from the first kept), at most ?limit=N (at most maxRuntimeLogLimit), of
// ?deployment=ID or of the deployment the project shows.
func (s *Server) apiRuntimeLogs(c *fiber.Ctx) error {
	p, err := s.projectByParam(c)
	if err != nil {
		return err
	}
	after, err := strconv.ParseInt(c.Query("after", "0"), 10, 64)
	if err != nil || after < 0 {
		return fiber.NewError(fiber.StatusBadRequest, "after must be a line number")
	}
	limit, err := strconv.Atoi(c.Query("limit", strconv.Itoa(runtimeLogPage)))
	if err != nil || limit < 1 {
		return fiber.NewError(fiber.StatusBadRequest, "limit must be a positive number")
	}
	limit = min(limit, maxRuntimeLogLimit)
	d, err := s.runtimeLogDeployment(c.UserContext(), p, c.Query("deployment"))
	if err != nil {
		return err
	}
	lines, err := s.store.RuntimeLogs(c.UserContext(), d.ID, after, limit)
	if err != nil {
		return err
	}
	out := runtimeLogsJSON{DeploymentID: d.ID, BuildID: d.BuildID, Status: string(d.Status), Lines: make([]runtimeLineJSON, 0, len(lines)), Next: after}
	for _, l := range lines {
		out.Lines = append(out.Lines, runtimeLineJSON{Seq: l.Seq, Line: l.Line, Time: l.CreatedAt})
		out.Next = l.Seq
	}
	return c.JSON(out)
}
