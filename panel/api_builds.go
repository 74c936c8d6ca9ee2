package panel

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"minivercel/deploy"
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
	p, err := s.projectByParam(c)
	if err != nil {
		return err
	}
	active, err := s.activeBuildID(ctx, p.ID)
	if err != nil {
		return err
	}
	bs, err := s.store.ListBuilds(ctx, p.ID)
	return listJSON(c, bs, err, func(b schema.Build) buildJSON { return s.toBuildJSON(b, b.ID == active, p.ProductionBranch) })
}

// createBuildRequest is the body of POST /api/projects/{name}/builds.
type createBuildRequest struct {
	// Ref is the branch to build; empty: the production branch.
	Ref string `json:"ref"`
}

// accepted answers a build that was queued, or asked to stop: 202 with the
// build as it is now (a running build stops at its next step; the websocket
// reports its final status).
func (s *Server) accepted(c *fiber.Ctx, b schema.Build) error {
	prod, err := s.productionBranch(c.UserContext(), b)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(s.toBuildJSON(b, false, prod))
}

func (s *Server) apiCreateBuild(c *fiber.Ctx) error {
	var req createBuildRequest
	if err := decodeBody(c, &req, true); err != nil {
		return err
	}
	b, err := s.svc.Rebuild(c.UserContext(), currentUser(c), c.Params("name"), req.Ref)
	if err != nil {
		return err
	}
	return s.accepted(c, b)
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

// defaultLogPage and maxLogPage bound one answer of the build log API: a
// log is read in pages, ?after=<last seq>&limit=N, until a page is empty.
const (
	defaultLogPage = 1000
	maxLogPage     = 10000
)

func (s *Server) apiBuildLogs(c *fiber.Ctx) error {
	b, err := s.buildParam(c)
	if err != nil {
		return err
	}
	after := 0
	if v := c.Query("after"); v != "" {
		if after, err = strconv.Atoi(v); err != nil || after < 0 || after > math.MaxInt32 {
			return deploy.Invalid("after", "%s", "after must be a line number (seq) of at least 0")
		}
	}
	limit := defaultLogPage
	if v := c.Query("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > maxLogPage {
			return deploy.Invalid("limit", "limit must be a number of lines from 1 to %d", maxLogPage)
		}
	}
	lines, err := s.store.LogPage(c.UserContext(), b.ID, after, limit)
	return listJSON(c, lines, err, func(l schema.LogLine) logLineJSON { return logLineJSON{Seq: l.Seq, Line: l.Line} })
}

func (s *Server) apiCancelBuild(c *fiber.Ctx) error {
	id, err := idParam(c, "id", "build")
	if err != nil {
		return err
	}
	b, err := s.svc.Cancel(c.UserContext(), currentUser(c), id)
	if err != nil {
		return err
	}
	return s.accepted(c, b)
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
	var req activateRequest
	if err := decodeBody(c, &req, false); err != nil {
		return err
	}
	b, err := s.svc.Activate(c.UserContext(), currentUser(c), c.Params("name"), req.BuildID)
	if err != nil {
		return err
	}
	return s.activated(c, b)
}

// activated answers an activation or redeploy that went live with the build
// and its deployment.
func (s *Server) activated(c *fiber.Ctx, b schema.Build) error {
	ctx := c.UserContext()
	prod, err := s.productionBranch(ctx, b)
	if err != nil {
		return err
	}
	resp := activateResponse{Build: s.toBuildJSON(b, true, prod)}
	ds, err := s.store.ListDeployments(ctx, b.ProjectID)
	if err != nil {
		return fmt.Errorf("list deployments of %s: %w", b.ProjectName, err)
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
	p, err := s.projectByParam(c)
	if err != nil {
		return err
	}
	ds, err := s.store.ListDeployments(c.UserContext(), p.ID)
	return listJSON(c, ds, err, toDeploymentJSON)
}
