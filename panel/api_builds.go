package panel

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"minivercel/pipeline"
	"minivercel/schema"
)

// activeBuildID returns the build serving a project's production, 0 for none.
func (s *Server) activeBuildID(ctx context.Context, projectID int64) (int64, error) {
	b, err := s.store.ActiveBuild(ctx, projectID)
	if errors.Is(err, schema.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read active build: %w", err)
	}
	return b.ID, nil
}

func (s *Server) apiListBuilds(c *fiber.Ctx) error {
	ctx := c.UserContext()
	p, err := s.store.ProjectByName(ctx, c.Params("name"))
	if err != nil {
		return lookupErr(err, "project")
	}
	bs, err := s.store.ListBuilds(ctx, p.ID)
	if err != nil {
		return fmt.Errorf("list builds of %s: %w", p.Name, err)
	}
	active, err := s.activeBuildID(ctx, p.ID)
	if err != nil {
		return err
	}
	out := make([]buildJSON, 0, len(bs))
	for _, b := range bs {
		out = append(out, s.toBuildJSON(b, b.ID == active, p.ProductionBranch))
	}
	return c.JSON(out)
}

// createBuildRequest is the body of POST /api/projects/{name}/builds.
type createBuildRequest struct {
	// Ref is the branch to build; empty: the production branch.
	Ref string `json:"ref"`
}

func (s *Server) apiCreateBuild(c *fiber.Ctx) error {
	ctx := c.UserContext()
	p, err := s.store.ProjectByName(ctx, c.Params("name"))
	if err != nil {
		return lookupErr(err, "project")
	}
	var req createBuildRequest
	if err := decodeBody(c, &req, true); err != nil {
		return bodyError(c, err)
	}
	ref := strings.TrimPrefix(strings.TrimSpace(req.Ref), "refs/heads/")
	if ref == "" {
		ref = p.ProductionBranch
	}
	if err := validBranch(ref); err != nil {
		return sendFieldError(c, &fieldError{"ref", err.Error()})
	}
	b, err := s.builds.Rebuild(ctx, p, ref, currentUser(c).ID)
	if errors.Is(err, schema.ErrNotFound) {
		return fiber.NewError(fiber.StatusNotFound, fmt.Sprintf("branch %q not found in project %s: push it first", ref, p.Name))
	}
	if err != nil {
		return fmt.Errorf("rebuild %s %s: %w", p.Name, ref, err)
	}
	s.log.Info("build requested", "project", p.Name, "branch", ref, "build", b.ID, "by", currentUser(c).Name)
	return c.Status(fiber.StatusAccepted).JSON(s.toBuildJSON(b, false, p.ProductionBranch))
}

// buildParam loads the build named by the :id parameter.
func (s *Server) buildParam(c *fiber.Ctx) (schema.Build, error) {
	id, err := idParam(c, "id", "build")
	if err != nil {
		return schema.Build{}, err
	}
	b, err := s.store.BuildByID(c.UserContext(), id)
	if err != nil {
		return schema.Build{}, lookupErr(err, "build")
	}
	return b, nil
}

// productionBranch reads the production branch of a build's project, which
// the routes that start from a build need for its branch URL.
func (s *Server) productionBranch(ctx context.Context, b schema.Build) (string, error) {
	p, err := s.store.ProjectByID(ctx, b.ProjectID)
	if err != nil {
		return "", lookupErr(err, "build")
	}
	return p.ProductionBranch, nil
}

func (s *Server) apiGetBuild(c *fiber.Ctx) error {
	b, err := s.buildParam(c)
	if err != nil {
		return err
	}
	active, err := s.activeBuildID(c.UserContext(), b.ProjectID)
	if err != nil {
		return err
	}
	prod, err := s.productionBranch(c.UserContext(), b)
	if err != nil {
		return err
	}
	return c.JSON(s.toBuildJSON(b, b.ID == active, prod))
}

func (s *Server) apiBuildLogs(c *fiber.Ctx) error {
	b, err := s.buildParam(c)
	if err != nil {
		return err
	}
	after := 0
	if v := c.Query("after"); v != "" {
		if after, err = strconv.Atoi(v); err != nil || after < 0 {
			return sendFieldError(c, &fieldError{"after", "after must be a line number (seq) of at least 0"})
		}
	}
	lines, err := s.store.LogLines(c.UserContext(), b.ID, after)
	if err != nil {
		return fmt.Errorf("read log of build %d: %w", b.ID, err)
	}
	out := make([]logLineJSON, 0, len(lines))
	for _, l := range lines {
		out = append(out, logLineJSON{Seq: l.Seq, Line: l.Line})
	}
	return c.JSON(out)
}

func (s *Server) apiCancelBuild(c *fiber.Ctx) error {
	b, err := s.buildParam(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	if err := s.builds.Cancel(ctx, b.ID); err != nil {
		if errors.Is(err, schema.ErrConflict) {
			return fiber.NewError(fiber.StatusConflict, fmt.Sprintf("build %d already finished", b.ID))
		}
		return lookupErr(err, "build")
	}
	s.log.Info("build cancel requested", "build", b.ID, "project", b.ProjectName, "by", currentUser(c).Name)
	// A running build stops at its next step: the status read here may still
	// be "running"; the websocket reports the final one.
	if b, err = s.store.BuildByID(ctx, b.ID); err != nil {
		return lookupErr(err, "build")
	}
	prod, err := s.productionBranch(ctx, b)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(s.toBuildJSON(b, false, prod))
}

// activateRequest is the body of POST /api/projects/{name}/activate.
type activateRequest struct {
	BuildID int64 `json:"build_id"`
}

// activateResponse answers a successful activation.
type activateResponse struct {
	Build      buildJSON       `json:"build"`
	Deployment *deploymentJSON `json:"deployment"`
}

func (s *Server) apiActivate(c *fiber.Ctx) error {
	ctx := c.UserContext()
	p, err := s.store.ProjectByName(ctx, c.Params("name"))
	if err != nil {
		return lookupErr(err, "project")
	}
	var req activateRequest
	if err := decodeBody(c, &req, false); err != nil {
		return bodyError(c, err)
	}
	if req.BuildID <= 0 {
		return sendFieldError(c, &fieldError{"build_id", "build_id must name a build"})
	}
	b, err := s.store.BuildByID(ctx, req.BuildID)
	// A build of another project is as unknown here as a missing one: the
	// route names the project it acts on.
	if errors.Is(err, schema.ErrNotFound) || (err == nil && b.ProjectID != p.ID) {
		return notFound(fmt.Sprintf("build %d of project %s", req.BuildID, p.Name))
	}
	if err != nil {
		return fmt.Errorf("read build %d: %w", req.BuildID, err)
	}
	s.log.Info("activation requested", "project", p.Name, "build", b.ID, "by", currentUser(c).Name)
	return s.activateBuild(c, p, b)
}

// activateBuild makes b serve p's production and answers with the build and
// its deployment; the activation and redeploy routes share it, so both map
// the build system's errors to the same statuses.
func (s *Server) activateBuild(c *fiber.Ctx, p schema.Project, b schema.Build) error {
	ctx := c.UserContext()
	if err := pipeline.Activatable(b); err != nil {
		return fiber.NewError(fiber.StatusConflict, fmt.Sprintf("build %d is %s: only a succeeded build can be activated", b.ID, b.Status))
	}
	if err := s.builds.Activate(ctx, b.ID); err != nil {
		switch {
		case errors.Is(err, pipeline.ErrNotActivatable):
			return fiber.NewError(fiber.StatusConflict, fmt.Sprintf("build %d cannot be activated: it did not succeed or has no artifact", b.ID))
		case errors.Is(err, schema.ErrNotFound):
			return notFound(fmt.Sprintf("build %d of project %s", b.ID, p.Name))
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			s.log.Warn("activation not finished", "project", p.Name, "build", b.ID, "err", err)
			return fiber.NewError(fiber.StatusGatewayTimeout, "activation did not finish in time")
		}
		// The reason is about the user's own app (it would not start, its
		// health check failed): it is what they need to read. The previous
		// deployment keeps serving.
		s.log.Info("activation failed", "project", p.Name, "build", b.ID, "err", err)
		return fiber.NewError(fiber.StatusBadGateway, "activation failed: "+err.Error())
	}
	resp := activateResponse{Build: s.toBuildJSON(b, true, p.ProductionBranch)}
	ds, err := s.store.ListDeployments(ctx, p.ID)
	if err != nil {
		return fmt.Errorf("list deployments of %s: %w", p.Name, err)
	}
	for _, d := range ds {
		if d.Status == schema.DeploymentActive && d.BuildID == b.ID {
			dj := toDeploymentJSON(d)
			resp.Deployment = &dj
			break
		}
	}
	return c.JSON(resp)
}

func (s *Server) apiListDeployments(c *fiber.Ctx) error {
	ctx := c.UserContext()
	p, err := s.store.ProjectByName(ctx, c.Params("name"))
	if err != nil {
		return lookupErr(err, "project")
	}
	ds, err := s.store.ListDeployments(ctx, p.ID)
	if err != nil {
		return fmt.Errorf("list deployments of %s: %w", p.Name, err)
	}
	out := make([]deploymentJSON, 0, len(ds))
	for _, d := range ds {
		out = append(out, toDeploymentJSON(d))
	}
	return c.JSON(out)
}
