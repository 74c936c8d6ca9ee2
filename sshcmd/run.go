package sshcmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"minivercel/apijson"
	"minivercel/deploy"
	"minivercel/internal/dotenv"
	"minivercel/internal/tabular"
	"minivercel/schema"
	"minivercel/secret"
)

func (c *Commands) projects(r *request, args []string) error {
	if _, err := r.parse("projects", args, 0, 0, nil); err != nil {
		return err
	}
	ps, err := c.store.ProjectSummaries(r.ctx)
	if err != nil {
		return fmt.Errorf("list projects: %w", err)
	}
	if r.json {
		return r.writeJSON(jsonList(ps, func(p schema.ProjectSummary) projectJSON {
			return apijson.NewProject(p, c.urls, "")
		}))
	}
	return tabular.Print(r.stdout, ps, "no projects yet: push one with git push", "PROJECT\tLATEST\tLIVE\tDEPLOYED\tURL",
		func(p schema.ProjectSummary) []any {
			latest, live := "-", "-"
			if p.LatestBuildID != nil && p.LatestStatus != nil {
				latest = fmt.Sprintf("#%d %s", *p.LatestBuildID, *p.LatestStatus)
			}
			if p.ActiveBuildID != nil {
				live = fmt.Sprintf("#%d", *p.ActiveBuildID)
			}
			return []any{p.Name, latest, live, tabular.TimeOr(p.LastDeployAt, "-"), c.urls.Project(p.Name)}
		})
}

// activeID is the build serving a project's production, 0 for none.
func (c *Commands) activeID(ctx context.Context, p schema.Project) (int64, error) {
	b, err := c.store.ActiveBuild(ctx, p.ID)
	if errors.Is(err, schema.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read live build of %s: %w", p.Name, err)
	}
	return b.ID, nil
}

func (c *Commands) builds(r *request, args []string) error {
	words, err := r.parse("builds PROJECT", args, 1, 1, nil)
	if err != nil {
		return err
	}
	p, err := c.svc.Project(r.ctx, words[0])
	if err != nil {
		return err
	}
	bs, err := c.store.ListBuilds(r.ctx, p.ID)
	if err != nil {
		return fmt.Errorf("list builds of %s: %w", p.Name, err)
	}
	active, err := c.activeID(r.ctx, p)
	if err != nil {
		return err
	}
	if r.json {
		return r.writeJSON(jsonList(bs, func(b schema.Build) buildJSON { return c.toBuildJSON(b, b.ID == active, p.ProductionBranch) }))
	}
	return PrintBuilds(r.stdout, bs, active)
}

// PrintBuilds prints builds as a table, marking the live one (active) and
// those whose files retention removed. The CLI's `deploy list` prints the
// same table.
func PrintBuilds(w io.Writer, builds []schema.Build, active int64) error {
	return tabular.Print(w, builds, "no builds yet: push to build", "BUILD\tSTATUS\tBRANCH\tCOMMIT\tKIND\tCREATED\tLIVE\tMESSAGE",
		func(b schema.Build) []any {
			live := ""
			if b.ID == active {
				live = "● live"
			} else if b.CollectedAt != nil {
				live = "removed" // retention took its files (--keep-builds)
			}
			return []any{b.ID, b.Status, b.Branch, fmt.Sprintf("%.7s", b.CommitSHA), b.Kind, tabular.When(b.CreatedAt), live, b.CommitMessage}
		})
}

// buildID reads a build id from the command line.
func buildID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usage("build %q is not a build number", truncate(s, 40))
	}
	return id, nil
}

func (c *Commands) activate(r *request, what string, args []string) error {
	use, max := "redeploy PROJECT", 1
	if what == "rollback" {
		use, max = "rollback PROJECT [BUILD]", 2
	}
	words, err := r.parse(use, args, 1, max, nil)
	if err != nil {
		return err
	}
	var id int64
	if len(words) > 1 {
		if id, err = buildID(words[1]); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(r.ctx, c.cfg.ActivateTimeout)
	defer cancel()
	if !r.json {
		fmt.Fprintf(r.stderr, "%s %s...\n", map[string]string{"rollback": "rolling back", "redeploy": "redeploying"}[what], words[0])
	}
	var b schema.Build
	if what == "rollback" {
		b, err = c.svc.Rollback(ctx, r.user, words[0], id)
	} else {
		b, err = c.svc.Redeploy(ctx, r.user, words[0])
	}
	if err != nil {
		return err
	}
	if !r.json {
		_, err = fmt.Fprintf(r.stdout, "build #%d is live (%s %.7s)\n", b.ID, b.Branch, b.CommitSHA)
		return err
	}
	p, err := c.svc.Project(r.ctx, b.ProjectName)
	if err != nil {
		return err
	}
	out := activatedJSON{Build: c.toBuildJSON(b, true, p.ProductionBranch)}
	ds, err := c.store.ListDeployments(r.ctx, b.ProjectID)
	if err != nil {
		return fmt.Errorf("list deployments of %s: %w", b.ProjectName, err)
	}
	for _, d := range ds {
		if d.Status == schema.DeploymentActive && d.BuildID == b.ID {
			dj := apijson.NewDeployment(d)
			out.Deployment = &dj
			break
		}
	}
	return r.writeJSON(out)
}

func (c *Commands) rebuild(r *request, args []string) error {
	words, err := r.parse("rebuild PROJECT [BRANCH|COMMIT]", args, 1, 2, nil)
	if err != nil {
		return err
	}
	ref := ""
	if len(words) > 1 {
		ref = words[1]
	}
	b, err := c.svc.Rebuild(r.ctx, r.user, words[0], ref)
	if err != nil {
		return err
	}
	if r.json {
		p, err := c.svc.Project(r.ctx, b.ProjectName)
		if err != nil {
			return err
		}
		return r.writeJSON(c.toBuildJSON(b, false, p.ProductionBranch))
	}
	_, err = fmt.Fprintf(r.stdout, "build #%d of %s (%s %.7s) is queued; follow it with: logs %s --build %d -f\n",
		b.ID, b.ProjectName, b.Branch, b.CommitSHA, b.ProjectName, b.ID)
	return err
}

func (c *Commands) env(r *request, args []string) error {
	v, args, err := verb("env", args, "list", "set", "unset", "import")
	if err != nil {
		return err
	}
	var target string
	targetFlag := func(fs *flag.FlagSet) { fs.StringVar(&target, "target", "", "") }
	switch v {
	case "list":
		words, err := r.parse("env list PROJECT", args, 1, 1, nil)
		if err != nil {
			return err
		}
		vars, err := c.svc.Vars(r.ctx, words[0])
		if err != nil {
			return err
		}
		if r.json {
			// secret.Var carries the API's names, and only the masked value.
			return r.writeJSON(jsonList(vars, func(v secret.Var) secret.Var { return v }))
		}
		return tabular.Print(r.stdout, vars,
			fmt.Sprintf("%s has no variables; set one with: env set %s KEY=VALUE", words[0], words[0]),
			"KEY\tTARGET\tVALUE\tUPDATED", func(v secret.Var) []any { return []any{v.Name, v.Target, v.Masked, v.UpdatedAt} })
	case "unset":
		words, err := r.parse("env unset PROJECT KEY... [--target production|preview]", args, 2, -1, targetFlag)
		if err != nil {
			return err
		}
		var done []varResultJSON
		for _, key := range words[1:] {
			if err := c.svc.UnsetVar(r.ctx, r.user, words[0], key, target); err != nil {
				return err
			}
			done = append(done, varResultJSON{Key: key, Target: target})
			if !r.json {
				fmt.Fprintf(r.stdout, "unset %s\n", key)
			}
		}
		if r.json {
			return r.writeJSON(done)
		}
		return nil
	}
	var project string
	var pairs []string
	if v == "set" {
		words, err := r.parse("env set PROJECT KEY=VALUE... [--target production|preview|all]", args, 2, -1, targetFlag)
		if err != nil {
			return err
		}
		project, pairs = words[0], words[1:]
	} else {
		words, err := r.parse("env import PROJECT [--target production|preview|all] < .env", args, 1, 1, targetFlag)
		if err != nil {
			return err
		}
		project = words[0]
		if pairs, err = dotenv.Parse(r.stdin); err != nil {
			return deploy.Invalid("", "stdin is not a .env file: %v", err)
		}
	}
	vars := make([]deploy.Var, 0, len(pairs))
	for _, pair := range pairs {
		k, val, ok := strings.Cut(pair, "=")
		if !ok {
			return usage("%q is not KEY=VALUE", truncate(pair, 40))
		}
		vars = append(vars, deploy.Var{Key: k, Value: val})
	}
	res, err := c.svc.SetVars(r.ctx, r.user, project, target, vars)
	if err != nil {
		return err
	}
	if r.json {
		return r.writeJSON(jsonList(res, func(s deploy.SetResult) varResultJSON {
			return varResultJSON{Key: s.Key, Target: cmpTarget(target), Created: s.Created}
		}))
	}
	for _, s := range res {
		what := "updated"
		if s.Created {
			what = "set"
		}
		fmt.Fprintf(r.stdout, "%s %s\n", what, s.Key)
	}
	_, err = fmt.Fprintf(r.stdout, "takes effect on the next deploy (or now: redeploy %s)\n", project)
	return err
}

// cmpTarget is the target a variable set without one has.
func cmpTarget(t string) string {
	if t == "" {
		return schema.TargetAll
	}
	return t
}

func (c *Commands) domains(r *request, args []string) error {
	v, args, err := verb("domains", args, "list", "add", "remove")
	if err != nil {
		return err
	}
	if v == "list" {
		words, err := r.parse("domains list PROJECT", args, 1, 1, nil)
		if err != nil {
			return err
		}
		ds, err := c.svc.Domains(r.ctx, words[0])
		if err != nil {
			return err
		}
		if r.json {
			return r.writeJSON(jsonList(ds, c.toDomainJSON))
		}
		return tabular.Print(r.stdout, ds,
			fmt.Sprintf("%s has no custom domains; add one with: domains add %s www.example.com", words[0], words[0]),
			"DOMAIN\tCERTIFICATE\tDETAIL", func(d schema.Domain) []any { return []any{d.Name, d.CertStatus, d.CertError} })
	}
	words, err := r.parse("domains "+v+" PROJECT DOMAIN", args, 2, 2, nil)
	if err != nil {
		return err
	}
	project := words[0]
	if v == "remove" {
		name, err := c.svc.RemoveDomain(r.ctx, r.user, project, words[1])
		if err != nil {
			return err
		}
		if r.json {
			return r.writeJSON(map[string]string{"domain": name})
		}
		_, err = fmt.Fprintf(r.stdout, "removed %s from %s\n", name, project)
		return err
	}
	d, created, err := c.svc.AddDomain(r.ctx, r.user, project, words[1])
	if err != nil {
		return err
	}
	if r.json {
		return r.writeJSON(c.toDomainJSON(d))
	}
	if !created {
		_, err = fmt.Fprintf(r.stdout, "%s already serves %s\n", d.Name, project)
		return err
	}
	_, err = fmt.Fprintf(r.stdout, "%s now serves %s; point its DNS at this server\n", d.Name, project)
	return err
}

// maxKeyInput bounds what `keys add` reads: an authorized_keys file of a
// few keys, not a stream.
const maxKeyInput = 256 << 10

func (c *Commands) keys(r *request, args []string) error {
	v, args, err := verb("keys", args, "list", "add", "remove")
	if err != nil {
		return err
	}
	switch v {
	case "list":
		if _, err := r.parse("keys list", args, 0, 0, nil); err != nil {
			return err
		}
		ks, err := c.svc.Keys(r.ctx, r.user)
		if err != nil {
			return err
		}
		if r.json {
			return r.writeJSON(jsonList(ks, toKeyJSON))
		}
		return tabular.Print(r.stdout, ks, "no keys", "ID\tFINGERPRINT\tNAME\tADDED\tLAST USED", func(k schema.SSHKey) []any {
			return []any{k.ID, k.Fingerprint, k.Name, tabular.When(k.CreatedAt), tabular.TimeOr(k.LastUsedAt, "never")}
		})
	case "remove":
		words, err := r.parse("keys remove ID|FINGERPRINT", args, 1, 1, nil)
		if err != nil {
			return err
		}
		k, err := c.svc.RemoveKey(r.ctx, r.user, words[0])
		if err != nil {
			return err
		}
		if r.json {
			return r.writeJSON(toKeyJSON(k))
		}
		_, err = fmt.Fprintf(r.stdout, "removed key %d %s\n", k.ID, k.Fingerprint)
		return err
	}
	var label string
	if _, err := r.parse("keys add [--name LABEL] < KEY.pub", args, 0, 0, func(fs *flag.FlagSet) { fs.StringVar(&label, "name", "", "") }); err != nil {
		return err
	}
	text, err := io.ReadAll(io.LimitReader(r.stdin, maxKeyInput))
	if err != nil {
		return fmt.Errorf("read key: %w", err)
	}
	ks, err := deploy.ParseKeys(string(text))
	if err != nil {
		return err
	}
	added, err := c.svc.AddKeys(r.ctx, r.user, "", ks, label)
	if err != nil {
		return err
	}
	if r.json {
		return r.writeJSON(jsonList(added, toKeyJSON))
	}
	for _, k := range added {
		fmt.Fprintf(r.stdout, "added key %d %s\n", k.ID, k.Fingerprint)
	}
	return nil
}

func (c *Commands) tokens(r *request, args []string) error {
	v, args, err := verb("tokens", args, "list", "create", "revoke")
	if err != nil {
		return err
	}
	switch v {
	case "list":
		if _, err := r.parse("tokens list", args, 0, 0, nil); err != nil {
			return err
		}
		ts, err := c.svc.Tokens(r.ctx, r.user)
		if err != nil {
			return err
		}
		if r.json {
			return r.writeJSON(jsonList(ts, toTokenJSON))
		}
		return tabular.Print(r.stdout, ts, "no tokens; create one with: tokens create --name ci",
			"ID\tUSER\tNAME\tCREATED\tLAST USED\tREVOKED", func(t schema.APIToken) []any {
				return []any{t.ID, t.UserName, t.Name, tabular.When(t.CreatedAt), tabular.TimeOr(t.LastUsedAt, "never"), tabular.TimeOr(t.RevokedAt, "-")}
			})
	case "revoke":
		words, err := r.parse("tokens revoke ID", args, 1, 1, nil)
		if err != nil {
			return err
		}
		id, err := strconv.ParseInt(words[0], 10, 64)
		if err != nil || id <= 0 {
			return usage("token id %q is not a number", truncate(words[0], 40))
		}
		if err := c.svc.RevokeToken(r.ctx, r.user, id); err != nil {
			return err
		}
		if r.json {
			return r.writeJSON(map[string]int64{"id": id})
		}
		_, err = fmt.Fprintf(r.stdout, "revoked token %d\n", id)
		return err
	}
	var label string
	if _, err := r.parse("tokens create [--name LABEL]", args, 0, 0, func(fs *flag.FlagSet) { fs.StringVar(&label, "name", "", "") }); err != nil {
		return err
	}
	token, t, err := c.svc.CreateToken(r.ctx, r.user, "", label)
	if err != nil {
		return err
	}
	if r.json {
		j := toTokenJSON(t)
		j.Token = token
		return r.writeJSON(j)
	}
	// The token goes alone to stdout so a script can capture it, as the
	// CLI's does; it is shown once.
	fmt.Fprintf(r.stderr, "created token %d; it is shown once:\n", t.ID)
	_, err = fmt.Fprintln(r.stdout, token)
	return err
}
