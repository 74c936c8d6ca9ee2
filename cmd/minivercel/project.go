package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"minivercel/deploy"
	"minivercel/pipeline"
	"minivercel/schema"
)

var projectUsage = `usage:
  minivercel project show <project>
  minivercel project set <project> [--production-branch B] [--framework ` + pipeline.FrameworkNames() + `|auto]
      [--install-command CMD] [--build-command CMD] [--start-command CMD] [--output-dir DIR]
      [--health-path /PATH] [--health-tries N] [--health-interval 5s] [--memory 512M] [--pids 128]
An empty value ("") returns a command or directory to detection, 0 a limit to the server's default.
Changes apply to the next build.`

func projectCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// Every setting is read as text and handed to the service as typed, so a
	// bad value gets the service's own refusal, as from the API and panel.
	flags := []struct{ name, help string }{
		{"production-branch", "branch whose pushes go live"},
		{"framework", "force the kind of app instead of detecting it"},
		{"install-command", "replace the detected install command"},
		{"build-command", "replace the detected build command"},
		{"start-command", "the web process's command (makes the project a server app)"},
		{"output-dir", "directory to serve for static builds"},
		{"health-path", "path a server app must answer before it takes traffic"},
		{"health-tries", "health check attempts before a deploy fails"},
		{"health-interval", "time between health check attempts, such as 5s"},
		{"memory", "memory of one build command and one app process, such as 512M or 2G; 0: the server's default"},
		{"pids", "processes of one build command and one app process; 0: the server's default"},
	}
	values := map[string]*string{}
	verb, fs, db, svc, err := openVerb(ctx, "project", args, verbs{"show": {1, 1}, "set": {1, 1}}, projectUsage, stderr, func(fs *flag.FlagSet) {
		for _, f := range flags {
			values[f.name] = fs.String(f.name, "", f.help)
		}
	})
	if err != nil {
		return err
	}
	defer db.Close()
	if verb == "show" {
		p, err := svc.Project(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		return showProject(p, stdout)
	}
	given := map[string]*string{}
	fs.Visit(func(f *flag.Flag) {
		if v, ok := values[f.Name]; ok {
			given[f.Name] = v
		}
	})
	patch := deploy.SettingsPatch{
		ProductionBranch: given["production-branch"], Framework: given["framework"],
		InstallCommand: given["install-command"], BuildCommand: given["build-command"], StartCommand: given["start-command"],
		OutputDir: given["output-dir"], HealthPath: given["health-path"],
	}
	if v := given["health-tries"]; v != nil {
		n, err := deploy.ParseHealthTries(*v)
		if err != nil {
			return err
		}
		patch.HealthTries = &n
	}
	if v := given["health-interval"]; v != nil {
		d, err := deploy.ParseHealthInterval(*v)
		if err != nil {
			return err
		}
		patch.HealthInterval = &d
	}
	if v := given["memory"]; v != nil {
		n, err := deploy.ParseMemoryLimit(*v)
		if err != nil {
			return err
		}
		patch.MemoryLimit = &n
	}
	if v := given["pids"]; v != nil {
		n, err := deploy.ParsePidsLimit(*v)
		if err != nil {
			return err
		}
		patch.PidsLimit = &n
	}
	p, err := svc.UpdateProject(ctx, deploy.Operator, fs.Arg(0), patch)
	if err != nil {
		return err
	}
	return showProject(p, stdout)
}

func showProject(p schema.Project, w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	show := func(k, v string) {
		if v == "" {
			v = "(detect)"
		}
		fmt.Fprintf(tw, "%s\t%s\n", k, v)
	}
	show("name", p.Name)
	show("production branch", p.ProductionBranch)
	show("framework", p.Framework)
	show("install command", p.InstallCommand)
	show("build command", p.BuildCommand)
	show("start command", p.StartCommand)
	show("output dir", p.OutputDir)
	show("health check", deploy.DescribeHealth(p.Settings()))
	show("limits", deploy.DescribeLimits(p.Settings()))
	return tw.Flush()
}
