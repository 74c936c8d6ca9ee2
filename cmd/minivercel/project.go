package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"minivercel/schema"
)

const projectUsage = `usage:
  minivercel project show <project>
  minivercel project set <project> [--production-branch B] [--framework static|npm|nextjs|node|procfile|auto]
      [--install-command CMD] [--build-command CMD] [--start-command CMD] [--output-dir DIR]
      [--health-path /PATH] [--health-tries N] [--health-interval 5s]
An empty value ("") returns a command or directory to detection. Changes apply to the next build.`

// frameworks are the values --framework takes; "auto" (or "") means detect.
var frameworks = map[string]bool{"": true, "auto": true, "static": true, "npm": true, "nextjs": true, "node": true, "procfile": true}

func projectCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "show" && args[0] != "set") {
		return usageError{projectUsage}
	}
	fs, c := subcommand("project "+args[0], stderr)
	var ps schema.ProjectSettings
	var interval time.Duration
	fs.StringVar(&ps.ProductionBranch, "production-branch", "", "branch whose pushes go live")
	fs.StringVar(&ps.Framework, "framework", "", "force the kind of app instead of detecting it")
	fs.StringVar(&ps.InstallCommand, "install-command", "", "replace the detected install command")
	fs.StringVar(&ps.BuildCommand, "build-command", "", "replace the detected build command")
	fs.StringVar(&ps.StartCommand, "start-command", "", "the web process's command (makes the project a server app)")
	fs.StringVar(&ps.OutputDir, "output-dir", "", "directory to serve for static builds")
	fs.StringVar(&ps.HealthPath, "health-path", "", "path a server app must answer before it takes traffic")
	fs.IntVar(&ps.HealthTries, "health-tries", 0, "health check attempts before a deploy fails")
	fs.DurationVar(&interval, "health-interval", 0, "time between health check attempts")
	if err := parseFlags(fs, args[1:], os.Getenv); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{projectUsage}
	}
	db, err := c.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	p, err := db.project(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	if args[0] == "set" {
		cur := p.Settings()
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		pick := func(name string, dst *string, v string) {
			if given[name] {
				*dst = strings.TrimSpace(v)
			}
		}
		pick("production-branch", &cur.ProductionBranch, ps.ProductionBranch)
		pick("framework", &cur.Framework, ps.Framework)
		pick("install-command", &cur.InstallCommand, ps.InstallCommand)
		pick("build-command", &cur.BuildCommand, ps.BuildCommand)
		pick("start-command", &cur.StartCommand, ps.StartCommand)
		pick("output-dir", &cur.OutputDir, ps.OutputDir)
		pick("health-path", &cur.HealthPath, ps.HealthPath)
		if given["health-tries"] {
			cur.HealthTries = ps.HealthTries
		}
		if given["health-interval"] {
			cur.HealthIntervalMS = int(interval / time.Millisecond)
		}
		if cur.Framework == "auto" {
			cur.Framework = ""
		}
		if err := validateSettings(cur); err != nil {
			return usageError{err.Error()}
		}
		if p, err = db.store.UpdateProjectSettings(ctx, p.ID, cur); err != nil {
			if errors.Is(err, schema.ErrInvalid) {
				return usageError{"a setting is out of range: " + err.Error()}
			}
			return err
		}
	}
	return showProject(p, stdout)
}

func validateSettings(s schema.ProjectSettings) error {
	switch {
	case s.ProductionBranch == "" || strings.ContainsAny(s.ProductionBranch, " ~^:?*[\\") || strings.Contains(s.ProductionBranch, ".."):
		return fmt.Errorf("--production-branch %q is not a branch name", s.ProductionBranch)
	case !frameworks[s.Framework]:
		return fmt.Errorf("--framework %q: want static, npm, nextjs, node, procfile or auto", s.Framework)
	case !strings.HasPrefix(s.HealthPath, "/"):
		return fmt.Errorf("--health-path %q must start with /", s.HealthPath)
	case s.HealthTries < 1 || s.HealthTries > 100:
		return fmt.Errorf("--health-tries %d: want 1 to 100", s.HealthTries)
	case s.HealthIntervalMS < 100 || s.HealthIntervalMS > 600000:
		return fmt.Errorf("--health-interval: want 100ms to 10m")
	case strings.Contains(s.OutputDir, ".."):
		return fmt.Errorf("--output-dir %q may not contain ..", s.OutputDir)
	}
	return nil
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
	show("health check", fmt.Sprintf("GET %s, %d tries %s apart", p.HealthPath, p.HealthTries, time.Duration(p.HealthIntervalMS)*time.Millisecond))
	return tw.Flush()
}
