package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"minivercel/pipeline"
	"minivercel/schema"
)

const deployUsage = `usage:
  minivercel deploy list <project>                  builds and deployments, which one is live
  minivercel deploy activate <project> <build-id>   make an earlier build live again (rollback)
  minivercel deploy logs <project> [--lines N]      the live deployment's runtime log
  minivercel deploy redeploy <project>              restart the live build with the current variables`

// deploy runs the deploy subcommands. They talk to the running server through
// the database: an activation is a job its workers pick up.
func deploy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{deployUsage}
	}
	fs, c := subcommand("deploy "+args[0], stderr)
	lines := fs.Int("lines", 100, "how many of the newest runtime log lines to print")
	wait := fs.Duration("timeout", 10*time.Minute, "how long activate waits for the server")
	if err := parseFlags(fs, args[1:], os.Getenv); err != nil {
		return err
	}
	want := map[string]int{"list": 1, "activate": 2, "logs": 1, "redeploy": 1}
	n, ok := want[args[0]]
	if !ok || fs.NArg() != n {
		return usageError{deployUsage}
	}
	db, err := c.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	project, err := db.project(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	switch args[0] {
	case "list":
		return listDeploys(ctx, db.store, project, stdout)
	case "logs":
		return printRuntimeLogs(ctx, db.store, project, *lines, stdout)
	}
	var id int64
	if args[0] == "redeploy" {
		active, err := db.store.ActiveBuild(ctx, project.ID)
		if errors.Is(err, schema.ErrNotFound) {
			return fmt.Errorf("%s has no live build to redeploy", project.Name)
		}
		if err != nil {
			return err
		}
		id = active.ID
	} else if id, err = strconv.ParseInt(fs.Arg(1), 10, 64); err != nil {
		return usageError{fmt.Sprintf("build id %q is not a number", fs.Arg(1))}
	}
	b, err := db.store.BuildByID(ctx, id)
	if errors.Is(err, schema.ErrNotFound) || (err == nil && b.ProjectID != project.ID) {
		return fmt.Errorf("project %s has no build %d (see: minivercel deploy list %s)", project.Name, id, project.Name)
	}
	if err != nil {
		return err
	}
	if err := pipeline.Activatable(b); err != nil {
		return err
	}
	q, err := pipeline.NewQueue(pipeline.Config{}, db.store, nil, nil, pipeline.Sandbox{}, false)
	if err != nil {
		return err
	}
	job, err := q.RequestActivation(ctx, b.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "activating build #%d of %s (%s %.7s)...\n", b.ID, project.Name, b.Branch, b.CommitSHA)
	wctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	if err := q.WaitActivation(wctx, job); err != nil {
		return fmt.Errorf("build #%d was not activated: %w", b.ID, err)
	}
	fmt.Fprintf(stdout, "build #%d is live\n", b.ID)
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
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BUILD\tSTATUS\tBRANCH\tCOMMIT\tKIND\tCREATED\tLIVE\tMESSAGE")
	for _, b := range builds {
		live := ""
		if b.ID == active.ID {
			live = "● live"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.7s\t%s\t%s\t%s\t%s\n", b.ID, b.Status, b.Branch, b.CommitSHA, b.Kind,
			b.CreatedAt.Local().Format("2006-01-02 15:04"), live, b.CommitMessage)
	}
	return tw.Flush()
}

func printRuntimeLogs(ctx context.Context, store *schema.Store, p schema.Project, n int, w io.Writer) error {
	deps, err := store.ListDeployments(ctx, p.ID)
	if err != nil {
		return err
	}
	var d *schema.Deployment
	for i := range deps {
		if deps[i].Status == schema.DeploymentActive {
			d = &deps[i]
			break
		}
	}
	if d == nil && len(deps) > 0 {
		d = &deps[0]
	}
	if d == nil {
		return fmt.Errorf("project %s has no deployment yet", p.Name)
	}
	last, err := store.LastRuntimeSeq(ctx, d.ID)
	if err != nil {
		return err
	}
	lines, err := store.RuntimeLogs(ctx, d.ID, max(0, last-int64(n)), n)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "deployment %d (build #%d, %s)\n", d.ID, d.BuildID, d.Status)
	for _, l := range lines {
		fmt.Fprintf(w, "%s  %s\n", l.CreatedAt.Local().Format("15:04:05"), l.Line)
	}
	return nil
}
