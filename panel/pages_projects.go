package panel

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"minivercel/schema"
)

// projectSummary is one project as the dashboard shows it.
type projectSummary struct {
	Project    schema.Project
	URL        string
	Latest     *schema.Build // newest build of any status
	Live       *schema.Build // the build production serves
	DeployedAt *time.Time    // when Live went live
	Health     string        // "healthy", "unhealthy" or "" (nothing deployed, or unknown)
}

type dashboardView struct {
	Projects []projectSummary
	Host     string // for the "how to deploy" snippet
	Base     string
}

func (s *Server) dashboardPage(c *fiber.Ctx) error {
	ctx := c.UserContext()
	sums, err := s.store.ProjectSummaries(ctx)
	if err != nil {
		return err
	}
	v := dashboardView{Host: requestHost(c), Base: s.cfg.BaseDomain}
	for _, ps := range sums {
		sum, err := s.summarise(ctx, ps)
		if err != nil {
			return err
		}
		v.Projects = append(v.Projects, sum)
	}
	return s.render(c, fiber.StatusOK, "dashboard", "Projects", v)
}

// summarise adds to a project's summary row the two builds the card shows.
func (s *Server) summarise(ctx context.Context, ps schema.ProjectSummary) (projectSummary, error) {
	sum := projectSummary{Project: ps.Project, URL: s.projectURL(ps.Name), Health: s.health(ps.Name), DeployedAt: ps.LastDeployAt}
	get := func(id *int64) (*schema.Build, error) {
		if id == nil {
			return nil, nil
		}
		b, err := s.store.BuildByID(ctx, *id)
		if errors.Is(err, schema.ErrNotFound) { // deleted meanwhile
			return nil, nil
		}
		return &b, err
	}
	var err error
	if sum.Latest, err = get(ps.LatestBuildID); err != nil {
		return sum, err
	}
	if ps.ActiveBuildID != nil && sum.Latest != nil && *ps.ActiveBuildID == sum.Latest.ID {
		sum.Live = sum.Latest
	} else if sum.Live, err = get(ps.ActiveBuildID); err != nil {
		return sum, err
	}
	return sum, nil
}

// liveBuild returns the build serving production and since when, or nils.
func (s *Server) liveBuild(ctx context.Context, projectID int64) (*schema.Build, *time.Time, error) {
	b, err := s.store.ActiveBuild(ctx, projectID)
	if errors.Is(err, schema.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	deps, err := s.store.ListDeployments(ctx, projectID)
	if err != nil {
		return nil, nil, err
	}
	for _, d := range deps {
		if d.Status == schema.DeploymentActive {
			at := d.ActivatedAt
			return &b, &at, nil
		}
	}
	return &b, nil, nil
}

// health asks the edge about a project's production: "healthy",
// "unhealthy", or "" when nothing is live or no edge runs in this process.
func (s *Server) health(project string) string {
	if s.sites == nil {
		return ""
	}
	healthy, found := s.sites.Health(project)
	switch {
	case !found:
		return ""
	case healthy:
		return "healthy"
	}
	return "unhealthy"
}

// buildRow is one line of a project's builds table.
type buildRow struct {
	schema.Build
	URL string // the build's own URL, for builds that can serve
	// BranchURL is the preview URL following the build's branch, for
	// branches other than production that have a build it can serve.
	BranchURL   string
	Live        bool
	CanActivate bool
	Rollback    bool // activating it would go back to an older build
}

type deploymentRow struct {
	schema.Deployment
	Build *schema.Build
}

type projectView struct {
	Project     schema.Project
	URL         string
	Health      string
	Live        *schema.Build
	DeployedAt  *time.Time
	Builds      []buildRow
	Deployments []deploymentRow
	Branches    []string // branches that have been built, production first
	Previews    []branchPreview
	Host        string
	CanRebuild  bool
}

func (s *Server) projectByParam(c *fiber.Ctx) (schema.Project, error) {
	return s.svc.Project(c.UserContext(), c.Params("name"))
}

func (s *Server) projectPage(c *fiber.Ctx) error {
	ctx := c.UserContext()
	p, err := s.projectByParam(c)
	if err != nil {
		return err
	}
	builds, err := s.store.ListBuilds(ctx, p.ID)
	if err != nil {
		return err
	}
	live, deployedAt, err := s.liveBuild(ctx, p.ID)
	if err != nil {
		return err
	}
	deps, err := s.store.ListDeployments(ctx, p.ID)
	if err != nil {
		return err
	}
	previews, err := s.branchPreviews(ctx, p)
	if err != nil {
		return err
	}
	v := projectView{Project: p, URL: s.projectURL(p.Name), Health: s.health(p.Name), Live: live, DeployedAt: deployedAt,
		Host: requestHost(c), CanRebuild: s.svc.CanBuild(), Previews: previews}
	branchURLs := map[string]string{}
	for _, pv := range previews {
		branchURLs[pv.Build.Branch] = pv.URL
	}
	byID := map[int64]*schema.Build{}
	seen := map[string]bool{p.ProductionBranch: true}
	v.Branches = []string{p.ProductionBranch}
	for i := range builds {
		b := builds[i]
		byID[b.ID] = &builds[i]
		row := buildRow{Build: b, BranchURL: branchURLs[b.Branch]}
		if b.Status == schema.BuildSucceeded && b.ArtifactPath != "" && b.CollectedAt == nil { // a collected build's URL answers 410
			row.URL = s.buildURL(b)
			row.Live = live != nil && live.ID == b.ID
			row.CanActivate = !row.Live && s.svc.CanBuild()
			row.Rollback = live != nil && b.ID < live.ID
		}
		v.Builds = append(v.Builds, row)
		if !seen[b.Branch] {
			seen[b.Branch] = true
			v.Branches = append(v.Branches, b.Branch)
		}
	}
	for _, d := range deps {
		v.Deployments = append(v.Deployments, deploymentRow{Deployment: d, Build: byID[d.BuildID]})
	}
	return s.render(c, fiber.StatusOK, "project", p.Name, v)
}

// activateWait bounds how long a page waits for an activation: a server app's
// health checks may take a while, and the page after the redirect should
// show the truth.
const activateWait = 5 * time.Minute

// activateSubmit deploys a succeeded build to production: a deploy for a
// newer build, a rollback for an older one. It waits for the result, as the
// CLI does.
func (s *Server) activateSubmit(c *fiber.Ctx) error {
	p, err := s.projectByParam(c)
	if err != nil {
		return err
	}
	back := "/projects/" + p.Name
	id, err := strconv.ParseInt(c.FormValue("build_id"), 10, 64)
	if err != nil {
		return redirectWith(c, back, true, "No build was chosen.")
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), activateWait)
	defer cancel()
	if _, err := s.svc.Activate(ctx, currentUser(c), p.Name, id); err != nil {
		return refusedTo(c, back, err)
	}
	return redirectWith(c, back, false, "Build #"+strconv.FormatInt(id, 10)+" is live at "+s.projectURL(p.Name))
}

// redeploySubmit builds a branch's current commit again and shows its log.
func (s *Server) redeploySubmit(c *fiber.Ctx) error {
	p, err := s.projectByParam(c)
	if err != nil {
		return err
	}
	branch := strings.TrimSpace(c.FormValue("branch"))
	b, err := s.svc.Rebuild(c.UserContext(), currentUser(c), p.Name, branch)
	if err != nil {
		return refusedTo(c, "/projects/"+p.Name, err)
	}
	return redirectWith(c, "/builds/"+strconv.FormatInt(b.ID, 10), false, "Build #"+strconv.FormatInt(b.ID, 10)+" of "+b.Branch+" is queued.")
}
