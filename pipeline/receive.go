package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"minivercel/hooks"
	"minivercel/proc"
	"minivercel/schema"
)

// Receive turns a push into builds and streams their logs to the pusher: it is the
// hooks.Receiver of the post-receive hook. Builds belong to the queue, not to the
// push: when ctx ends because the pusher went away, Receive stops streaming and
// the builds go on.
func (q *Queue) Receive(ctx context.Context, p hooks.Push, updates []hooks.RefUpdate, out io.Writer) int {
	w := &pushWriter{w: out}
	builds, err := q.receive(ctx, p, updates, w)
	if err != nil {
		q.log.Error("receive push", "project", p.Project, "err", err)
		w.printf("error: the push was stored but no build could be started: %s", safeMessage(err))
		return 1
	}
	if len(builds) == 0 {
		return 0
	}
	code := 0
	for _, b := range builds {
		status, ok := q.follow(ctx, b, w)
		if !ok {
			return 1 // the pusher is gone; nobody reads the code
		}
		if status != schema.BuildSucceeded {
			code = 1
		}
	}
	return code
}

func (q *Queue) receive(ctx context.Context, p hooks.Push, updates []hooks.RefUpdate, w *pushWriter) ([]schema.Build, error) {
	project, err := q.store.ProjectByName(ctx, p.Project)
	if err != nil {
		return nil, fmt.Errorf("look up project %s: %w", p.Project, err)
	}
	var branches []hooks.RefUpdate
	for _, u := range updates {
		name, ok := u.Branch()
		switch {
		case !ok:
			w.printf("-----> Skipping %s: only branches are built", u.Name)
		case u.IsDelete():
			w.printf("-----> Branch %s deleted: nothing to build", name)
		default:
			branches = append(branches, u)
		}
	}
	if len(branches) == 0 {
		return nil, nil
	}
	if err := q.pickProductionBranch(ctx, &project, branches); err != nil {
		return nil, err
	}
	repo, err := git.PlainOpen(filepath.Join(q.cfg.ReposDir, project.Name+".git"))
	if err != nil {
		return nil, fmt.Errorf("open repository: %w", err)
	}
	uid := p.UserID
	var builds []schema.Build
	for _, u := range branches {
		branch, _ := u.Branch()
		b, err := q.enqueue(ctx, schema.NewBuild{
			ProjectID:     project.ID,
			Branch:        branch,
			CommitSHA:     u.New,
			CommitMessage: commitMessage(repo, u.New),
			CreatedBy:     &uid,
		}, u.Old)
		if err != nil {
			return builds, err
		}
		where := "preview"
		if branch == project.ProductionBranch {
			where = "production"
		}
		w.printf("-----> Build #%d queued: %s %s (%s)", b.ID, branch, short(u.New), where)
		builds = append(builds, b)
	}
	return builds, nil
}

// pickProductionBranch makes master the production branch of a new project whose
// first push has master and no main.
func (q *Queue) pickProductionBranch(ctx context.Context, project *schema.Project, branches []hooks.RefUpdate) error {
	n, err := q.store.CountBuilds(ctx, project.ID)
	if err != nil || n > 0 || project.ProductionBranch != "main" {
		return err
	}
	has := map[string]bool{}
	for _, u := range branches {
		name, _ := u.Branch()
		has[name] = true
	}
	if has["master"] && !has["main"] {
		project.ProductionBranch = "master"
		return q.store.SetProductionBranch(ctx, project.ID, "master")
	}
	return nil
}

// follow copies a build's log to the pusher until the build ends. It reports
// false when the pusher went away first.
func (q *Queue) follow(ctx context.Context, b schema.Build, w *pushWriter) (schema.BuildStatus, bool) {
	events, err := q.broker.Follow(ctx, b.ID)
	if err != nil {
		w.printf("error: cannot follow build #%d: %s", b.ID, safeMessage(err))
		return schema.BuildFailed, true
	}
	for ev := range events {
		if ev.Done {
			return ev.Status, true
		}
		w.printf("%s", ev.Line)
	}
	if ctx.Err() != nil {
		return "", false
	}
	// The stream ended without the result (the broker lost track of the
	// build); the build goes on.
	w.printf("error: log stream interrupted; build #%d continues on the server", b.ID)
	return schema.BuildFailed, true
}

// maxCommitMessage caps the commit subject stored with a build, in bytes.
const maxCommitMessage = 200

func commitMessage(repo *git.Repository, sha string) string {
	c, err := repo.CommitObject(plumbing.NewHash(sha))
	if err != nil {
		return ""
	}
	// The subject line, cut on a character boundary and made storable: a
	// message git accepted must never stop its commit from being built.
	msg, _, _ := strings.Cut(strings.TrimSpace(c.Message), "\n")
	return proc.SafeText([]byte(proc.CutText(msg, maxCommitMessage)))
}

// safeMessage keeps database details out of what the pusher reads.
func safeMessage(err error) string {
	switch {
	case errors.Is(err, schema.ErrNotFound):
		return "not found"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	}
	return "internal error (see the server log)"
}

// pushWriter writes whole lines to the hook; errors are ignored because a pusher
// that left must not stop anything.
type pushWriter struct{ w io.Writer }

func (p *pushWriter) printf(format string, args ...any) {
	_, _ = fmt.Fprintf(p.w, format+"\n", args...)
}
