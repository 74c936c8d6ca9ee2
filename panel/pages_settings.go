package panel

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"minivercel/deploy"
	"minivercel/limits"
	"minivercel/pipeline"
	"minivercel/schema"
)

// frameworkChoice is one option of the settings form's framework select.
type frameworkChoice struct{ Value, Label string }

// frameworkChoices are the framework select's options: detection, then
// pipeline.Frameworks in their order.
func frameworkChoices() []frameworkChoice {
	out := []frameworkChoice{{"", "Detect automatically"}}
	for _, f := range pipeline.Frameworks {
		out = append(out, frameworkChoice{f.Name, f.Label})
	}
	return out
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
	// MemoryLimit and PidsLimit are "" for the server's default.
	MemoryLimit string
	PidsLimit   string
}

func formFromSettings(ps schema.ProjectSettings) settingsForm {
	f := settingsForm{
		ProductionBranch: ps.ProductionBranch, Framework: ps.Framework, InstallCommand: ps.InstallCommand,
		BuildCommand: ps.BuildCommand, StartCommand: ps.StartCommand, OutputDir: ps.OutputDir, HealthPath: ps.HealthPath,
		HealthTries:    strconv.Itoa(ps.HealthTries),
		HealthInterval: (time.Duration(ps.HealthIntervalMS) * time.Millisecond).String(),
	}
	if ps.MemoryLimit > 0 {
		size := limits.Size(ps.MemoryLimit)
		f.MemoryLimit = size.String()
	}
	if ps.PidsLimit > 0 {
		f.PidsLimit = strconv.FormatInt(ps.PidsLimit, 10)
	}
	return f
}

// patch is the service's form of the submitted settings: every field is
// given. A number or duration that does not parse is refused with the
// service's own words, and that field is left out of the patch.
func (f settingsForm) patch() (deploy.SettingsPatch, []error) {
	var errs []error
	p := deploy.SettingsPatch{
		ProductionBranch: &f.ProductionBranch, Framework: &f.Framework, InstallCommand: &f.InstallCommand,
		BuildCommand: &f.BuildCommand, StartCommand: &f.StartCommand, OutputDir: &f.OutputDir, HealthPath: &f.HealthPath,
	}
	if tries, err := deploy.ParseHealthTries(f.HealthTries); err != nil {
		errs = append(errs, err)
	} else {
		p.HealthTries = &tries
	}
	if iv, err := deploy.ParseHealthInterval(f.HealthInterval); err != nil {
		errs = append(errs, err)
	} else {
		p.HealthInterval = &iv
	}
	if n, err := deploy.ParseMemoryLimit(f.MemoryLimit); err != nil {
		errs = append(errs, err)
	} else {
		p.MemoryLimit = &n
	}
	if n, err := deploy.ParsePidsLimit(f.PidsLimit); err != nil {
		errs = append(errs, err)
	} else {
		p.PidsLimit = &n
	}
	return p, errs
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
	Project schema.Project
	Form    settingsForm
	// Errors holds a refused form's message by field (the API's field
	// names); "" for one that names no field.
	Errors     map[string]string
	Frameworks []frameworkChoice
	Domains    domainsView
	Env        envView
}

func (s *Server) settingsView(p schema.Project, f settingsForm, errs map[string]string) settingsView {
	host := s.hosts.Production(p.Name)
	return settingsView{Project: p, Form: f, Errors: errs, Frameworks: frameworkChoices(),
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
		HealthInterval: field("health_interval"), MemoryLimit: field("memory_limit"), PidsLimit: field("pids_limit"),
	}
	patch, errs := f.patch()
	if len(errs) == 0 {
		_, err = s.svc.UpdateProject(c.UserContext(), currentUser(c), p.Name, patch)
	} else {
		// Nothing is stored; the rest of the form is checked too, so every
		// field at fault is marked at once.
		_, verr := patch.Apply(p.Settings())
		err = errors.Join(append(errs, verr)...)
	}
	if refused := deploy.Refusals(err); len(refused) > 0 {
		msgs := map[string]string{}
		for _, e := range refused {
			if _, ok := msgs[e.Field]; !ok {
				msgs[e.Field] = sentence(e.Msg)
			}
		}
		return s.renderSettings(c, fiber.StatusUnprocessableEntity, s.settingsView(p, f, msgs))
	}
	if err != nil {
		return err
	}
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
	if err := s.svc.DeleteProject(c.UserContext(), currentUser(c), p.Name); err != nil {
		return refusedTo(c, "/projects/"+p.Name+"/settings", err)
	}
	return redirectWith(c, "/", false, "Project "+p.Name+" was deleted.")
}
