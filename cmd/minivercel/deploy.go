package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"minivercel/deploy"
	"minivercel/schema"
	"minivercel/sshcmd"
)

const deployUsage = `usage:
  minivercel deploy list <project>                     builds and deployments, which one is live
  minivercel deploy activate <project> <build-id>      make a build live (a rollback for an earlier one)
  minivercel deploy rollback <project> [build-id]      make the previous live build (or the one given) live again
  minivercel deploy redeploy <project>                 restart the live build with the current variables
  minivercel deploy rebuild <project> [branch|commit]  build a branch's current commit, or a commit, again (default: production)
  minivercel deploy logs <project> [--lines N]         the live deployment's runtime log`

// deployCmd runs the deploy subcommands. They talk to the running server
// through the database: a build or an activation is a job its workers pick up.
func deployCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var lines *int
	var wait *time.Duration
	vs := verbs{"list": {1, 1}, "activate": {2, 2}, "rollback": {1, 2}, "logs": {1, 1}, "redeploy": {1, 1}, "rebuild": {1, 2}}
	verb, fs, db, svc, err := openVerb(ctx, "deploy", args, vs, deployUsage, stderr, func(fs *flag.FlagSet) {
		lines = fs.Int("lines", 100, "how many of the newest runtime log lines to print")
		wait = fs.Duration("timeout", 10*time.Minute, "how long activate, rollback and redeploy wait for the server")
	})
	if err != nil {
		return err
	}
	defer db.Close()
	project, err := svc.Project(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	var id int64
	if fs.NArg() > 1 && verb != "rebuild" {
		if id, err = strconv.ParseInt(fs.Arg(1), 10, 64); err != nil || id <= 0 {
			return usageError{fmt.Sprintf("build id %q is not a number", fs.Arg(1))}
		}
	}
	wctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	var b schema.Build
	switch verb {
	case "list":
		return listDeploys(ctx, db.store, project, stdout)
	case "logs":
		return printRuntimeLogs(ctx, svc, db.store, project, *lines, stdout)
	case "rebuild":
		if b, err = svc.Rebuild(ctx, deploy.Operator, project.Name, fs.Arg(1)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "build #%d of %s (%s %.7s) is queued; follow it in the panel or with: minivercel deploy list %s\n",
			b.ID, project.Name, b.Branch, b.CommitSHA, project.Name)
		return nil
	case "activate":
		fmt.Fprintf(stdout, "activating build #%d of %s...\n", id, project.Name)
		b, err = svc.Activate(wctx, deploy.Operator, project.Name, id)
	case "rollback":
		fmt.Fprintf(stdout, "rolling back %s...\n", project.Name)
		b, err = svc.Rollback(wctx, deploy.Operator, project.Name, id)
	case "redeploy":
		fmt.Fprintf(stdout, "redeploying %s...\n", project.Name)
		b, err = svc.Redeploy(wctx, deploy.Operator, project.Name)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "build #%d is live (%s %.7s)\n", b.ID, b.Branch, b.CommitSHA)
	return nil
}

func listDeploys(ctx context.Context, store *schema.Store, p schema.Project, w io.Writer) error {
	builds, err := store.ListBuilds(ctx, p.ID)
	if err != nil {
		return err
	}
	active, err := store.ActiveBuild(ctx, p.ID)
	if err != nil && !errors.Is(err, schema.ErrNotFound) {
		return err
	}
	return sshcmd.PrintBuilds(w, builds, active.ID)
}

func printRuntimeLogs(ctx context.Context, svc *deploy.Service, store *schema.Store, p schema.Project, n int, w io.Writer) error {
	d, err := svc.LogDeployment(ctx, p.Name)
	if err != nil {
		return err
	}
	lines, err := store.RuntimeLogTail(ctx, d.ID, n)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "deployment %d (build #%d, %s)\n", d.ID, d.BuildID, d.Status)
	for _, l := range lines {
		fmt.Fprintf(w, "%s  %s\n", l.CreatedAt.Local().Format("15:04:05"), l.Line)
	}
	return nil
}
