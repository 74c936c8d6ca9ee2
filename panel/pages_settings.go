package panel

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"minivercel/schema"
)

// frameworkChoices are the framework override's options, in the order the
// settings form lists them; "" means detect.
var frameworkChoices = []struct{ Value, Label string }{
	{"", "Detect automatically"},
	{"static", "Static site"},
	{"npm", "npm build (single-page app)"},
	{"nextjs", "Next.js"},
	{"node", "Node server"},
	{"procfile", "Procfile"},
}

// settingsForm holds the settings as typed, so a refused form comes back
// with the user's input rather than the stored values.
type settingsForm struct {
	ProductionBranch string
	Framework        string
	InstallCommand   string
	BuildCommand     string
	StartCommand     string
	OutputDir        string
	HealthPath       string
	HealthTries      string
	HealthInterval   string
}

func formFromSettings(ps schema.ProjectSettings) settingsForm {
	return settingsForm{
		ProductionBranch: ps.ProductionBranch, Framework: ps.Framework, InstallCommand: ps.InstallCommand,
		BuildCommand: ps.BuildCommand, StartCommand: ps.StartCommand, OutputDir: ps.OutputDir, HealthPath: ps.HealthPath,
		HealthTries:    strconv.Itoa(ps.HealthTries),
		HealthInterval: (time.Duration(ps.HealthIntervalMS) * time.Millisecond).String(),
	}
}

// parse checks the form by the same rules as `minivercel project set` and
// returns the settings or one message per refused field.
func (f settingsForm) parse() (schema.ProjectSettings, map[string]string) {
	errs := map[string]string{}
	ps := schema.ProjectSettings{
		ProductionBranch: f.ProductionBranch, Framework: f.Framework, InstallCommand: f.InstallCommand,
		BuildCommand: f.BuildCommand, StartCommand: f.StartCommand, OutputDir: f.OutputDir, HealthPath: f.HealthPath,
	}
	if ps.Framework == "auto" {
		ps.Framework = ""
	}
	if b := ps.ProductionBranch; b == "" || strings.ContainsAny(b, " ~^:?*[\\") || strings.Contains(b, "..") {
		errs["ProductionBranch"] = "Enter a branch name, such as main (no spaces, “..” or any of ~^:?*[\\)."
	}
	known := false
	for _, fc := range frameworkChoices {
		known = known || fc.Value == ps.Framework
	}
	if !known {
		errs["Framework"] = "Choose one of the listed frameworks."
	}
	if strings.Contains(ps.OutputDir, "..") {
		errs["OutputDir"] = "The output directory must stay inside the repository: no “..”."
	}
	if !strings.HasPrefix(ps.HealthPath, "/") {
		errs["HealthPath"] = "The health path must start with /."
	}
	tries, err := strconv.Atoi(f.HealthTries)
	if err != nil || tries < 1 || tries > 100 {
		errs["HealthTries"] = "Enter a whole number from 1 to 100."
	}
	ps.HealthTries = tries
	iv, err := time.ParseDuration(f.HealthInterval)
	if err != nil || iv < 100*time.Millisecond || iv > 10*time.Minute {
		errs["HealthInterval"] = "Enter a duration from 100ms to 10m, such as 5s."
	}
	ps.HealthIntervalMS = int(iv / time.Millisecond)
	return ps, errs
}

// domainRow is a host the project answers on: its production host, or a
// custom domain with what the edge last learnt about its certificate.
type domainRow struct {
	Host string
	URL  string
	Kind string
	// The rest is a custom domain's only.
	Cert      schema.CertStatus
	CertError string
	CheckedAt *time.Time
	AddedAt   time.Time
}

// domainForm is a refused add-domain form: the name as typed and why.
type domainForm struct {
	Domain string
	Error  string
}

// domainsView is the domains section of the settings page.
type domainsView struct {
	Production domainRow
	Custom     []domainRow
	Form       domainForm
	// HTTPS is whether the server's URLs are https, that is whether it
	// obtains certificates at all; the help line says so when it does not.
	HTTPS bool
}

type settingsView struct {
	Project    schema.Project
	Form       settingsForm
	Errors     map[string]string
	Frameworks []struct{ Value, Label string }
	Domains    domainsView
	Env        envView
}

func (s *Server) settingsView(p schema.Project, f settingsForm, errs map[string]string) settingsView {
	host := s.hosts.Production(p.Name)
	return settingsView{Project: p, Form: f, Errors: errs, Frameworks: frameworkChoices,
		Domains: domainsView{
			Production: domainRow{Host: host, URL: s.cfg.URL(host), Kind: "Production"},
			HTTPS:      strings.HasPrefix(s.cfg.URL(host), "https://"),
		}}
}

func (s *Server) settingsPage(c *fiber.Ctx) error {
	p, err := s.projectByParam(c)
	if err != nil {
		return err
	}
	return s.renderSettings(c, fiber.StatusOK, s.settingsView(p, formFromSettings(p.Settings()), nil))
}

func (s *Server) settingsSubmit(c *fiber.Ctx) error {
	p, err := s.projectByParam(c)
	if err != nil {
		return err
	}
	field := func(name string) string { return strings.TrimSpace(c.FormValue(name)) }
	f := settingsForm{
		ProductionBranch: field("production_branch"), Framework: field("framework"),
		InstallCommand: field("install_command"), BuildCommand: field("build_command"), StartCommand: field("start_command"),
		OutputDir: field("output_dir"), HealthPath: field("health_path"), HealthTries: field("health_tries"),
		HealthInterval: field("health_interval"),
	}
	ps, errs := f.parse()
	if len(errs) > 0 {
		return s.renderSettings(c, fiber.StatusUnprocessableEntity, s.settingsView(p, f, errs))
	}
	if _, err := s.store.UpdateProjectSettings(c.UserContext(), p.ID, ps); err != nil {
		if errors.Is(err, schema.ErrInvalid) {
			return s.renderSettings(c, fiber.StatusUnprocessableEntity, s.settingsView(p, f, map[string]string{"": "A setting is out of range."}))
		}
		return err
	}
	s.log.Info("project settings changed", "project", p.Name, "user", currentUser(c).Name)
	return redirectWith(c, "/projects/"+p.Name+"/settings", false, "Settings saved. They apply from the next build.")
}

// deleteSubmit removes a project after the user typed its name: the site
// stops serving first, then the database rows go (builds, logs, deployments,
// variables by cascade).
func (s *Server) deleteSubmit(c *fiber.Ctx) error {
	p, err := s.projectByParam(c)
	if err != nil {
		return err
	}
	if strings.TrimSpace(c.FormValue("confirm")) != p.Name {
		return redirectWith(c, "/projects/"+p.Name+"/settings", true,
			"The project was not deleted: type its name, "+p.Name+", to confirm.")
	}
	if s.sites != nil {
		s.sites.Deactivate(p.Name)
	}
	if err := s.builds.DeleteProject(c.UserContext(), p); err != nil && !errors.Is(err, schema.ErrNotFound) {
		return err
	}
	s.log.Info("project deleted from panel", "project", p.Name, "user", currentUser(c).Name)
	return redirectWith(c, "/", false, "Project "+p.Name+" was deleted.")
}
