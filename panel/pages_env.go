package panel

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"minivercel/schema"
)

// The settings page's environment variables. No value is ever written into
// the HTML: rows show secret.MaskValue's form, a refused form comes back with
// its value field empty, and an administrator's Reveal fetches the value from
// the API into the page on demand (app.js), so a saved page, the browser's
// cache or a screenshot of the settings holds no secret.

// envTargets are the target select's options, in the order the form lists
// them.
var envTargets = []struct{ Value, Label string }{
	{schema.TargetAll, "All deployments"},
	{schema.TargetProduction, "Production only"},
	{schema.TargetPreview, "Previews only"},
}

// envRow is one variable in the settings table.
type envRow struct {
	Key     string
	Target  string
	Masked  string
	Updated time.Time
	// ID names the row's elements (edit form, value cell): key and target
	// are both needed, a key may exist once per target.
	ID string
	// RevealURL is the API route that answers the value, for the Reveal
	// button of administrators.
	RevealURL string
}

// envForm is a refused add or edit form: the key and target as typed and a
// message per field ("key", "value", "target"). The value is deliberately
// not kept.
type envForm struct {
	Key    string
	Target string
	// Row is the ID of the row whose edit form was refused; empty for the
	// add form.
	Row    string
	Errors map[string]string
}

// envView is the environment section of the settings page.
type envView struct {
	Vars    []envRow
	Form    envForm
	Targets []struct{ Value, Label string }
	// Live is the build production serves, which "Redeploy with these
	// values" restarts; nil when nothing is live.
	Live *schema.Build
}

// loadEnv reads what the environment section shows.
func (s *Server) loadEnv(ctx context.Context, p schema.Project, form envForm) (envView, error) {
	v := envView{Form: form, Targets: envTargets}
	if v.Form.Target == "" {
		v.Form.Target = schema.TargetAll
	}
	vars, err := s.vars.List(ctx, p.ID)
	if err != nil {
		return v, fmt.Errorf("list variables of %s: %w", p.Name, err)
	}
	for _, e := range vars {
		updated, _ := time.Parse(time.RFC3339, e.UpdatedAt)
		v.Vars = append(v.Vars, envRow{
			Key: e.Name, Target: e.Target, Masked: e.Masked, Updated: updated, ID: e.Name + "-" + e.Target,
			RevealURL: "/api/projects/" + p.Name + "/env/" + url.PathEscape(e.Name) + "/value?target=" + url.QueryEscape(e.Target),
		})
	}
	live, err := s.store.ActiveBuild(ctx, p.ID)
	switch {
	case err == nil:
		v.Live = &live
	case !errors.Is(err, schema.ErrNotFound):
		return v, fmt.Errorf("read active build of %s: %w", p.Name, err)
	}
	return v, nil
}

// renderSettings renders the settings page with its environment and domains
// sections; a view whose environment section is not loaded yet gets it
// loaded with an empty form. The custom domains are always read here: their
// list is the same whichever form was refused.
func (s *Server) renderSettings(c *fiber.Ctx, code int, v settingsView) error {
	if v.Env.Targets == nil {
		env, err := s.loadEnv(c.UserContext(), v.Project, envForm{})
		if err != nil {
			return err
		}
		v.Env = env
	}
	custom, err := s.loadDomains(c.UserContext(), v.Project)
	if err != nil {
		return err
	}
	v.Domains.Custom = custom
	return s.render(c, code, "settings", v.Project.Name+" · Settings", v)
}

// envBack is where the environment forms return to: the settings page, at
// the section.
func envBack(p schema.Project) string { return "/projects/" + p.Name + "/settings#env" }

// envSubmit adds a variable or replaces its value: the add form and each
// row's edit form post here. A refused form re-renders the page with the
// message next to the field.
func (s *Server) envSubmit(c *fiber.Ctx) error {
	p, err := s.projectByParam(c)
	if err != nil {
		return err
	}
	key := strings.TrimSpace(c.FormValue("key"))
	target := strings.TrimSpace(c.FormValue("target"))
	// Browsers send a textarea's line breaks as CRLF; a pasted PEM key or
	// multi-line value must reach the app with the LF it was typed with.
	value := strings.ReplaceAll(c.FormValue("value"), "\r\n", "\n")
	if fe := validateEnv(key, target, value); fe != nil {
		form := envForm{Key: key, Target: target, Row: strings.TrimSpace(c.FormValue("row")), Errors: map[string]string{fe.Field: capitalize(fe.Msg) + "."}}
		if fe.Field == "value" {
			form.Errors["value"] += " Enter the value again: a refused value is not sent back to the page."
		}
		env, err := s.loadEnv(c.UserContext(), p, form)
		if err != nil {
			return err
		}
		v := s.settingsView(p, formFromSettings(p.Settings()), nil)
		v.Env = env
		return s.renderSettings(c, fiber.StatusUnprocessableEntity, v)
	}
	if target == "" {
		target = schema.TargetAll
	}
	created, err := s.vars.Set(c.UserContext(), p.ID, key, target, value)
	if err != nil {
		return err
	}
	s.log.Info("environment variable set from panel", "project", p.Name, "key", key, "target", target, "created", created, "user", currentUser(c).Name)
	verb := "was updated"
	if created {
		verb = "was added"
	}
	return redirectWith(c, envBack(p), false, key+" ("+targetLabel(target)+") "+verb+". It applies from the next deploy.")
}

// envDeleteSubmit removes one variable of one target.
func (s *Server) envDeleteSubmit(c *fiber.Ctx) error {
	p, err := s.projectByParam(c)
	if err != nil {
		return err
	}
	key := strings.TrimSpace(c.FormValue("key"))
	target := strings.TrimSpace(c.FormValue("target"))
	if target != schema.TargetAll && target != schema.TargetProduction && target != schema.TargetPreview {
		return redirectWith(c, envBack(p), true, "No variable was deleted: the form named no target.")
	}
	if err := s.vars.Unset(c.UserContext(), p.ID, key, target); err != nil {
		if errors.Is(err, schema.ErrNotFound) {
			return redirectWith(c, envBack(p), true, "There is no variable "+key+" ("+targetLabel(target)+") to delete.")
		}
		return err
	}
	s.log.Info("environment variable removed from panel", "project", p.Name, "key", key, "target", target, "user", currentUser(c).Name)
	return redirectWith(c, envBack(p), false, key+" ("+targetLabel(target)+") was deleted. Deploys from now on run without it.")
}

// envRedeploySubmit activates the live build again, so a server app restarts
// with the current variables without a rebuild. It waits for the result, as
// the activate form does.
func (s *Server) envRedeploySubmit(c *fiber.Ctx) error {
	p, err := s.projectByParam(c)
	if err != nil {
		return err
	}
	back := envBack(p)
	if s.builds == nil {
		return redirectWith(c, back, true, "This server runs no build system, so it cannot redeploy.")
	}
	b, err := s.store.ActiveBuild(c.UserContext(), p.ID)
	if errors.Is(err, schema.ErrNotFound) {
		return redirectWith(c, back, true, "Nothing is live yet: the variables apply to the first deploy.")
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 5*time.Minute)
	defer cancel()
	id := strconv.FormatInt(b.ID, 10)
	if err := s.builds.Activate(ctx, b.ID); err != nil {
		// The reason is about the user's app (it did not start, or failed
		// its health check) and names no value; the old process serves on.
		s.log.Info("redeploy from panel failed", "project", p.Name, "build_id", b.ID, "err", err)
		return redirectWith(c, back, true, "Build #"+id+" was not redeployed: "+err.Error())
	}
	s.log.Info("build redeployed from panel", "project", p.Name, "build_id", b.ID, "user", currentUser(c).Name)
	return redirectWith(c, back, false, "Build #"+id+" was redeployed with the current variables.")
}

// targetLabel names a target in messages.
func targetLabel(target string) string {
	switch target {
	case schema.TargetProduction:
		return "production"
	case schema.TargetPreview:
		return "previews"
	}
	return "all deployments"
}
