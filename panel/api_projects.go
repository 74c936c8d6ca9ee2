package panel

import (
	"errors"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"

	"minivercel/deploy"
	"minivercel/schema"
)

// settingsInput is the settings part of a create or update body; a nil field
// keeps the current value.
type settingsInput struct {
	ProductionBranch *string `json:"production_branch"`
	Framework        *string `json:"framework"`
	InstallCommand   *string `json:"install_command"`
	BuildCommand     *string `json:"build_command"`
	StartCommand     *string `json:"start_command"`
	OutputDir        *string `json:"output_dir"`
	HealthPath       *string `json:"health_path"`
	HealthTries      *int    `json:"health_tries"`
	HealthIntervalMS *int    `json:"health_interval_ms"`
	MemoryLimit      *int64  `json:"memory_limit"`
	PidsLimit        *int64  `json:"pids_limit"`
}

// createProjectRequest is the body of POST /api/projects.
type createProjectRequest struct {
	Name string `json:"name"`
	settingsInput
}

// patch is the service's form of the settings given.
func (in settingsInput) patch() deploy.SettingsPatch {
	p := deploy.SettingsPatch{
		ProductionBranch: in.ProductionBranch, Framework: in.Framework, InstallCommand: in.InstallCommand,
		BuildCommand: in.BuildCommand, StartCommand: in.StartCommand, OutputDir: in.OutputDir,
		HealthPath: in.HealthPath, HealthTries: in.HealthTries,
		MemoryLimit: in.MemoryLimit, PidsLimit: in.PidsLimit,
	}
	if in.HealthIntervalMS != nil {
		// Clamped before the multiplication could wrap around into range;
		// anything past a day is refused the same way.
		d := time.Duration(min(max(*in.HealthIntervalMS, -1), 86_400_000)) * time.Millisecond
		p.HealthInterval = &d
	}
	return p
}

// apiField renames the service's field names where the API spells them
// differently.
func apiField(err error) error {
	if e := deploy.AsError(err); e != nil && e.Field == "health_interval" {
		e.Field = "health_interval_ms"
	}
	return err
}

func (s *Server) apiListProjects(c *fiber.Ctx) error {
	ps, err := s.store.ProjectSummaries(c.UserContext())
	return listJSON(c, ps, err, s.toProjectJSON)
}

func (s *Server) apiCreateProject(c *fiber.Ctx) error {
	var req createProjectRequest
	if err := decodeBody(c, &req, false); err != nil {
		return err
	}
	p, err := s.svc.CreateProject(c.UserContext(), currentUser(c), req.Name, req.settingsInput.patch())
	if err != nil {
		return apiField(err)
	}
	d, err := s.projectDetail(c, p.Name)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(d)
}

// projectDetail reads everything GET /api/projects/{name} shows.
func (s *Server) projectDetail(c *fiber.Ctx, name string) (projectDetailJSON, error) {
	ctx := c.UserContext()
	p, err := s.store.ProjectSummaryByName(ctx, name)
	if err != nil {
		return projectDetailJSON{}, lookupErr(err, "project")
	}
	d := projectDetailJSON{projectJSON: s.toProjectJSON(p), Settings: toSettingsJSON(p.Settings())}
	if p.ActiveBuildID != nil {
		b, err := s.store.BuildByID(ctx, *p.ActiveBuildID)
		if err != nil && !errors.Is(err, schema.ErrNotFound) {
			return projectDetailJSON{}, fmt.Errorf("read active build of %s: %w", name, err)
		}
		if err == nil {
			bj := s.toBuildJSON(b, true, p.ProductionBranch)
			d.ActiveBuild = &bj
		}
	}
	previews, err := s.branchPreviews(ctx, p.Project)
	if err != nil {
		return projectDetailJSON{}, err
	}
	d.PreviewURLs = make([]previewURLJSON, 0, len(previews))
	for _, pv := range previews {
		d.PreviewURLs = append(d.PreviewURLs, previewURLJSON{Branch: pv.Build.Branch, URL: pv.URL, BuildID: pv.Build.ID})
	}
	return d, nil
}

func (s *Server) apiGetProject(c *fiber.Ctx) error {
	d, err := s.projectDetail(c, c.Params("name"))
	if err != nil {
		return err
	}
	return c.JSON(d)
}

func (s *Server) apiUpdateProject(c *fiber.Ctx) error {
	p, err := s.svc.Project(c.UserContext(), c.Params("name"))
	if err != nil {
		return err
	}
	var in settingsInput
	if err := decodeBody(c, &in, false); err != nil {
		return err
	}
	if _, err := s.svc.UpdateProject(c.UserContext(), currentUser(c), p.Name, in.patch()); err != nil {
		return apiField(err)
	}
	d, err := s.projectDetail(c, p.Name)
	if err != nil {
		return err
	}
	return c.JSON(d)
}

func (s *Server) apiDeleteProject(c *fiber.Ctx) error {
	if err := s.svc.DeleteProject(c.UserContext(), currentUser(c), c.Params("name")); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
