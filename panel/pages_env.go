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

	"minivercel/deploy"
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
	vars, err := s.svc.Vars(ctx, p.Name)
	if err != nil {
		return v, err
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

// settingsAt is where a settings form returns to: the settings page, at its
// section.
func settingsAt(p schema.Project, section string) string {
	return "/projects/" + p.Name + "/settings#" + section
}

// envFormTarget reads what every variable form names: the project of the
// route, the key and the target as typed.
func (s *Server) envFormTarget(c *fiber.Ctx) (p schema.Project, key, target string, err error) {
	p, err = s.projectByParam(c)
	return p, strings.TrimSpace(c.FormValue("key")), strings.TrimSpace(c.FormValue("target")), err
}

// envSubmit adds a variable or replaces its value: the add form and each
// row's edit form post here. A refused form re-renders the page with the
// message next to the field.
func (s *Server) envSubmit(c *fiber.Ctx) error {
	p, key, target, err := s.envFormTarget(c)
	if err != nil {
		return err
	}
	// Browsers send a textarea's line breaks as CRLF; a pasted PEM key or
	// multi-line value must reach the app with the LF it was typed with.
	value := strings.ReplaceAll(c.FormValue("value"), "\r\n", "\n")
	res, err := s.svc.SetVars(c.UserContext(), currentUser(c), p.Name, target, []deploy.Var{{Key: key, Value: value}})
	if e := deploy.AsError(err); e != nil {
		form := envForm{Key: key, Target: target, Row: strings.TrimSpace(c.FormValue("row")), Errors: map[string]string{e.Field: sentence(e.Msg)}}
		if e.Field == "value" {
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
	if err != nil {
		return err
	}
	if target == "" {
		target = schema.TargetAll
	}
	verb := "was updated"
	if res[0].Created {
		verb = "was added"
	}
	return redirectWith(c, settingsAt(p, "env"), false, key+" ("+targetLabel(target)+") "+verb+". It applies from the next deploy.")
}

// envDeleteSubmit removes one variable of one target.
func (s *Server) envDeleteSubmit(c *fiber.Ctx) error {
	p, key, target, err := s.envFormTarget(c)
	if err != nil {
		return err
	}
	if target == "" {
		// The form always names its row's target: an empty one would
		// remove the variable from every target.
		return redirectWith(c, settingsAt(p, "env"), true, "No variable was deleted: the form named no target.")
	}
	if err := s.svc.UnsetVar(c.UserContext(), currentUser(c), p.Name, key, target); err != nil {
		return refusedTo(c, settingsAt(p, "env"), err)
	}
	return redirectWith(c, settingsAt(p, "env"), false, key+" ("+targetLabel(target)+") was deleted. Deploys from now on run without it.")
}

// envRedeploySubmit activates the live build again, so a server app restarts
// with the current variables without a rebuild. It waits for the result, as
// the activate form does.
func (s *Server) envRedeploySubmit(c *fiber.Ctx) error {
	p, err := s.projectByParam(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), activateWait)
	defer cancel()
	b, err := s.svc.Redeploy(ctx, currentUser(c), p.Name)
	if err != nil {
		return refusedTo(c, settingsAt(p, "env"), err)
	}
	return redirectWith(c, settingsAt(p, "env"), false, "Build #"+strconv.FormatInt(b.ID, 10)+" was redeployed with the current variables.")
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
