package panel

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"

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
}

// createProjectRequest is the body of POST /api/projects.
type createProjectRequest struct {
	Name string `json:"name"`
	settingsInput
}

// frameworks are the accepted framework overrides; "" (or "auto") detects.
var frameworks = map[string]bool{"": true, "static": true, "npm": true, "nextjs": true, "node": true, "procfile": true}

// maxCommandLen bounds a command setting: a command line, not a script.
const maxCommandLen = 4096

// empty reports whether no setting was given.
func (in settingsInput) empty() bool { return in == settingsInput{} }

// apply validates the given settings and merges them into ps. The checks are
// the database's and the build's own (Detect), made here too so that the
// caller learns which field is wrong instead of a 500 or a failed build.
func (in settingsInput) apply(ps *schema.ProjectSettings) *fieldError {
	if v := in.ProductionBranch; v != nil {
		b := strings.TrimSpace(*v)
		if err := validBranch(b); err != nil {
			return &fieldError{"production_branch", err.Error()}
		}
		ps.ProductionBranch = b
	}
	if v := in.Framework; v != nil {
		f := strings.ToLower(strings.TrimSpace(*v))
		if f == "auto" {
			f = ""
		}
		if !frameworks[f] {
			return &fieldError{"framework", fmt.Sprintf("framework %q: want static, npm, nextjs, node, procfile or \"\" to detect", *v)}
		}
		ps.Framework = f
	}
	for _, c := range []struct {
		field string
		in    *string
		dst   *string
	}{
		{"install_command", in.InstallCommand, &ps.InstallCommand},
		{"build_command", in.BuildCommand, &ps.BuildCommand},
		{"start_command", in.StartCommand, &ps.StartCommand},
	} {
		if c.in == nil {
			continue
		}
		cmd := strings.TrimSpace(*c.in)
		if len(cmd) > maxCommandLen {
			return &fieldError{c.field, fmt.Sprintf("%s is longer than %d bytes", c.field, maxCommandLen)}
		}
		if strings.ContainsAny(cmd, "\x00\r\n") {
			return &fieldError{c.field, c.field + " must be one line"}
		}
		*c.dst = cmd
	}
	if v := in.OutputDir; v != nil {
		d := strings.TrimSpace(*v)
		if d != "" {
			clean := path.Clean(d)
			if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") || strings.ContainsRune(d, 0) {
				return &fieldError{"output_dir", fmt.Sprintf("output_dir %q must be a directory inside the project", d)}
			}
			d = clean
		}
		ps.OutputDir = d
	}
	if v := in.HealthPath; v != nil {
		p := strings.TrimSpace(*v)
		if !strings.HasPrefix(p, "/") || len(p) > 1024 || strings.ContainsAny(p, " \t\r\n\x00") {
			return &fieldError{"health_path", fmt.Sprintf("health_path %q must be a path starting with /", p)}
		}
		ps.HealthPath = p
	}
	if v := in.HealthTries; v != nil {
		if *v < 1 || *v > 100 {
			return &fieldError{"health_tries", fmt.Sprintf("health_tries %d: want 1 to 100", *v)}
		}
		ps.HealthTries = *v
	}
	if v := in.HealthIntervalMS; v != nil {
		if *v < 100 || *v > 600000 {
			return &fieldError{"health_interval_ms", fmt.Sprintf("health_interval_ms %d: want 100 to 600000", *v)}
		}
		ps.HealthIntervalMS = *v
	}
	// Detect refuses this pair at build time; say so now.
	if ps.StartCommand != "" && (ps.Framework == "static" || ps.Framework == "npm") {
		return &fieldError{"start_command", fmt.Sprintf("a start command needs a server framework (node, nextjs, procfile), not %s", ps.Framework)}
	}
	return nil
}

// validBranch checks a branch name against the parts of git's ref-name rules
// that matter here: it ends up in refs/heads/<name> and in build logs.
func validBranch(b string) error {
	bad := b == "" || len(b) > 255 || strings.HasPrefix(b, "-") || strings.HasPrefix(b, "/") ||
		strings.HasSuffix(b, "/") || strings.HasSuffix(b, ".") || strings.HasSuffix(b, ".lock") ||
		strings.Contains(b, "..") || strings.Contains(b, "//") || strings.Contains(b, "@{") || b == "@"
	for _, r := range b {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r) {
			bad = true
		}
	}
	if bad {
		return fmt.Errorf("%q is not a branch name", b)
	}
	return nil
}

func (s *Server) apiListProjects(c *fiber.Ctx) error {
	ps, err := s.store.ProjectSummaries(c.UserContext())
	if err != nil {
		return fmt.Errorf("list projects: %w", err)
	}
	out := make([]projectJSON, 0, len(ps))
	for _, p := range ps {
		out = append(out, s.toProjectJSON(p))
	}
	return c.JSON(out)
}

func (s *Server) apiCreateProject(c *fiber.Ctx) error {
	var req createProjectRequest
	if err := decodeBody(c, &req, false); err != nil {
		return bodyError(c, err)
	}
	if err := schema.ValidateProjectName(req.Name); err != nil {
		return sendFieldError(c, &fieldError{"name", err.Error()})
	}
	// Given settings are merged into the new row's defaults in the same
	// transaction, so a refused setting leaves no project behind.
	ctx := c.UserContext()
	u := currentUser(c)
	var fe *fieldError
	err := s.store.InTx(ctx, func(tx pgx.Tx) error {
		st := s.store.WithTx(tx)
		p, created, err := st.EnsureProject(ctx, req.Name, u.ID)
		if err != nil {
			return err
		}
		if !created {
			return fiber.NewError(fiber.StatusConflict, fmt.Sprintf("project %q already exists", req.Name))
		}
		if req.settingsInput.empty() {
			return nil
		}
		ps := p.Settings()
		if fe = req.settingsInput.apply(&ps); fe != nil {
			return fe
		}
		_, err = st.UpdateProjectSettings(ctx, p.ID, ps)
		return err
	})
	if fe != nil {
		return sendFieldError(c, fe)
	}
	if err != nil {
		return fmt.Errorf("create project %s: %w", req.Name, err)
	}
	d, err := s.projectDetail(c, req.Name)
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
	ctx := c.UserContext()
	p, err := s.store.ProjectByName(ctx, c.Params("name"))
	if err != nil {
		return lookupErr(err, "project")
	}
	var in settingsInput
	if err := decodeBody(c, &in, false); err != nil {
		return bodyError(c, err)
	}
	ps := p.Settings()
	if fe := in.apply(&ps); fe != nil {
		return sendFieldError(c, fe)
	}
	if _, err := s.store.UpdateProjectSettings(ctx, p.ID, ps); err != nil {
		if errors.Is(err, schema.ErrInvalid) {
			// The checks above mirror the database's; reaching this means
			// they drifted apart. The caller still gets a 400, not a 500.
			s.log.Warn("database refused project settings", "project", p.Name, "err", err)
			return fiber.NewError(fiber.StatusBadRequest, "a setting is out of range")
		}
		return lookupErr(err, "project")
	}
	d, err := s.projectDetail(c, p.Name)
	if err != nil {
		return err
	}
	return c.JSON(d)
}

func (s *Server) apiDeleteProject(c *fiber.Ctx) error {
	ctx := c.UserContext()
	p, err := s.store.ProjectByName(ctx, c.Params("name"))
	if err != nil {
		return lookupErr(err, "project")
	}
	// Stop serving first: a route left pointing at deleted rows would keep
	// the site up with no way to manage it.
	if s.sites != nil {
		s.sites.Deactivate(p.Name)
	}
	if err := s.builds.DeleteProject(ctx, p); err != nil {
		return lookupErr(err, "project")
	}
	s.log.Info("project deleted", "project", p.Name, "by", currentUser(c).Name)
	return c.SendStatus(fiber.StatusNoContent)
}
