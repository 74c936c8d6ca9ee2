package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"minivercel/proc"
	"minivercel/schema"
)

// Follow streams a build's log (see Broker.Follow).
func (q *Queue) Follow(ctx context.Context, buildID int64) (<-chan Event, error) {
	return q.broker.Follow(ctx, buildID)
}

// Rebuild queues a new build, as a push would: of the current commit of
// the branch named ref or, when no branch has that name and ref is a
// commit id (7 to 64 hex digits, as short as git shows them), of that
// commit, even one whose failed build put its branch back (see
// putBranchBack). A commit is built for the branch its latest build was
// for, or for the production branch. A ref that is neither wraps
// schema.ErrNotFound.
func (q *Queue) Rebuild(ctx context.Context, project schema.Project, ref string, userID int64) (schema.Build, error) {
	repo, err := git.PlainOpen(filepath.Join(q.cfg.ReposDir, project.Name+".git"))
	if err != nil {
		return schema.Build{}, fmt.Errorf("project %s has no repository yet (push first): %w", project.Name, schema.ErrNotFound)
	}
	branch, sha := ref, ""
	if head, err := repo.Reference(plumbing.NewBranchReferenceName(ref), true); err == nil {
		sha = head.Hash().String()
	} else if sha, err = q.resolveCommit(ctx, project, ref); err != nil {
		return schema.Build{}, fmt.Errorf("project %s has no branch or commit %q: %w", project.Name, ref, schema.ErrNotFound)
	} else if branch, err = q.store.BranchOfCommit(ctx, project.ID, sha); errors.Is(err, schema.ErrNotFound) {
		// Which variables, production's or a preview's, and which URL
		// would be a guess: the commit is built where it is pushed.
		return schema.Build{}, fmt.Errorf("commit %s of project %s: %w", short(sha), project.Name, ErrNeverBuilt)
	} else if err != nil {
		return schema.Build{}, err
	}
	uid := &userID
	if userID == 0 {
		uid = nil
	}
	return q.Enqueue(ctx, schema.NewBuild{
		ProjectID: project.ID, Branch: branch, CommitSHA: sha,
		CommitMessage: commitMessage(repo, sha), CreatedBy: uid,
	})
}

// commitID is what Rebuild takes as a commit: hex only, so that git's
// revision syntax (HEAD~1, main@{1}, :/text) means nothing here.
var commitID = regexp.MustCompile(`^[0-9a-f]{7,64}$`)

// resolveCommit returns the full id of the one commit whose id starts
// with prefix. git itself resolves it: an ambiguous prefix is refused, as
// is anything but a commit (a tag named like a commit id is not looked at:
// the prefix is hex only and must name an object).
func (q *Queue) resolveCommit(ctx context.Context, project schema.Project, prefix string) (string, error) {
	if !commitID.MatchString(prefix) {
		return "", ErrCommitNotFound
	}
	cmd, cancel := q.git(ctx, project.Name, "rev-parse", "--verify", "--quiet", "--end-of-options", prefix+"^{commit}")
	defer cancel()
	out, err := cmd.Output()
	id := strings.TrimSpace(string(out))
	if err != nil || !strings.HasPrefix(id, prefix) {
		return "", ErrCommitNotFound
	}
	return id, nil
}

// gitTimeout bounds one git command the queue runs on a repository.
const gitTimeout = 30 * time.Second

// git returns the system git running args in project's bare repository,
// with a minimal environment, killed after gitTimeout; call cancel when it
// is done. The git binary is used, not go-git, where git's own ref locks
// and revision rules matter.
func (q *Queue) git(ctx context.Context, project string, args ...string) (*exec.Cmd, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, gitTimeout)
	cmd := proc.Command(ctx, syscall.SIGKILL, time.Second, "git",
		append([]string{"--git-dir", filepath.Join(q.cfg.ReposDir, project+".git")}, args...)...)
	cmd.Env = []string{"PATH=" + sandboxPath, "GIT_CONFIG_NOSYSTEM=1", "HOME=/nonexistent"}
	return cmd, cancel
}

// putBranchBack moves the branch of a pushed build that failed or was
// canceled back to where the push found it (deleting a branch the push
// created), and tells the pusher. Without it the branch would stay on the
// failed commit, and `git push` of the same commit after a fix of the
// settings would answer "Everything up-to-date" and build nothing.
//
// The move is a compare-and-swap by git itself (update-ref with the old
// value, under git's own ref lock): when another push moved the branch in
// the meantime, it stays where that push put it. before is empty for a
// build no push asked for; nothing moves then.
func (q *Queue) putBranchBack(ctx context.Context, b schema.Build, before string, out *buildLog) {
	if before == "" {
		out.detail(fmt.Sprintf("To build it again: minivercel deploy rebuild %s %s", b.ProjectName, b.Branch))
		return
	}
	var err error
	if q.hasRepo(b.ProjectName) {
		err = q.moveBranchBack(context.WithoutCancel(ctx), b, before)
	} else {
		// The repository is on a gitd node: it moves the branch.
		err = q.putBackRemotely(context.WithoutCancel(ctx), b, before)
	}
	if err != nil {
		// Most often a later push moved the branch: then it is right as it is.
		q.log.Info("branch not put back", "project", b.ProjectName, "branch", b.Branch, "build", b.ID, "err", err)
		out.detail(fmt.Sprintf("To build it again: minivercel deploy rebuild %s %s", b.ProjectName, short(b.CommitSHA)))
		return
	}
	where := "deleted on the server"
	if strings.Trim(before, "0") != "" {
		where = "back at " + short(before) + " on the server"
	}
	out.detail(fmt.Sprintf("Branch %s is %s: fix the cause and push again to build %s (or run: minivercel deploy rebuild %s %s)",
		b.Branch, where, short(b.CommitSHA), b.ProjectName, short(b.CommitSHA)))
}

// moveBranchBack is putBranchBack's compare-and-swap in this node's
// repository.
func (q *Queue) moveBranchBack(ctx context.Context, b schema.Build, before string) error {
	ref := "refs/heads/" + b.Branch
	args := []string{"update-ref", "-m", fmt.Sprintf("minivercel: build #%d did not succeed", b.ID)}
	if strings.Trim(before, "0") == "" {
		args = append(args, "-d", ref, b.CommitSHA)
	} else {
		args = append(args, ref, before, b.CommitSHA)
	}
	cmd, cancel := q.git(ctx, b.ProjectName, args...)
	defer cancel()
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git update-ref: %w: %s", err, strings.TrimSpace(string(msg)))
	}
	return nil
}

// putBackTimeout bounds how long a worker waits for a gitd node to put a
// branch back.
const putBackTimeout = 30 * time.Second

// putBackRemotely asks a gitd node to put the branch back and waits for it.
func (q *Queue) putBackRemotely(ctx context.Context, b schema.Build, before string) error {
	ctx, cancel := context.WithTimeout(ctx, putBackTimeout)
	defer cancel()
	res, err := q.client.Insert(ctx, PutBackArgs{BuildID: b.ID, Before: before}, nil)
	if err != nil {
		return err
	}
	return q.waitJob(ctx, res.Job.ID, "branch put-back")
}

// PutBackArgs is the River job, worked on a gitd node, that puts a failed
// build's branch back (putBranchBack) for a worker without the repository.
type PutBackArgs struct {
	BuildID int64  `json:"build_id"`
	Before  string `json:"before"`
}

// Kind names the job kind in River's table.
func (PutBackArgs) Kind() string { return "put_back" }

// InsertOpts puts the job on the git queue, tried once: a branch a later
// push moved stays where it is.
func (PutBackArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: gitQueue, MaxAttempts: 1}
}

type putBackWorker struct {
	river.WorkerDefaults[PutBackArgs]
	q *Queue
}

// Work moves the branch back in this node's repository.
func (w *putBackWorker) Work(ctx context.Context, job *river.Job[PutBackArgs]) error {
	b, err := w.q.store.BuildByID(ctx, job.Args.BuildID)
	if err != nil {
		return err
	}
	return w.q.moveBranchBack(ctx, b, job.Args.Before)
}

// Cancel stops a queued or running build. A queued build is marked canceled at
// once; a running one stops at its next step, its commands killed. A finished
// build is ErrConflict.
func (q *Queue) Cancel(ctx context.Context, buildID int64) error {
	b, err := q.store.BuildByID(ctx, buildID)
	if err != nil {
		return err
	}
	if b.Status.Done() {
		return fmt.Errorf("build %d already %s: %w", buildID, b.Status, schema.ErrConflict)
	}
	var jobID int64
	err = q.store.Pool().QueryRow(ctx, `SELECT id FROM river_job WHERE kind = 'build'
		AND (args->>'build_id')::bigint = $1 ORDER BY id DESC LIMIT 1`, buildID).Scan(&jobID)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("find job of build %d: %w", buildID, err)
	}
	if jobID != 0 {
		if _, err := q.client.JobCancel(ctx, jobID); err != nil {
			return fmt.Errorf("cancel job of build %d: %w", buildID, err)
		}
	}
	// A queued build never reaches a worker now; a running one is marked by
	// its worker when its context ends.
	_, err = q.store.Pool().Exec(ctx, `UPDATE builds SET status = 'canceled', error = 'canceled', finished_at = now()
		WHERE id = $1 AND status = 'queued'`, buildID)
	return schema.MapError(err)
}

// Activate makes a succeeded build serve production, through the activation
// queue, and waits for the result.
func (q *Queue) Activate(ctx context.Context, buildID int64) error {
	b, err := q.store.BuildByID(ctx, buildID)
	if err != nil {
		return err
	}
	if err := Activatable(b); err != nil {
		return err
	}
	job, err := q.RequestActivation(ctx, buildID)
	if err != nil {
		return err
	}
	return q.WaitActivation(ctx, job)
}

// DeleteProject cancels the project's unfinished builds, stops serving it,
// deletes its rows (builds, logs, deployments and variables go with them) and
// then its files: the repository, the artifacts and the extracted
// deployments. A later push of the same name starts from nothing.
func (q *Queue) DeleteProject(ctx context.Context, project schema.Project) error {
	builds, err := q.store.ListBuilds(ctx, project.ID)
	if err != nil {
		return err
	}
	for _, b := range builds {
		if !b.Status.Done() {
			if err := q.Cancel(ctx, b.ID); err != nil && !errors.Is(err, schema.ErrConflict) {
				q.log.Warn("cancel build of a deleted project", "build", b.ID, "err", err)
			}
		}
	}
	// Under the activation lock: an activation in flight finishes first,
	// and none can put the site back between the rows' removal and the
	// route's. The rows go first: if that fails, the site still serves what
	// the database says. (An activation still queued finds its build gone.)
	unlock, err := q.lockProject(ctx, project.ID)
	if err != nil {
		return err
	}
	err = q.store.DeleteProject(ctx, project.ID)
	if err == nil && q.act != nil {
		q.act.Deactivate(project.Name)
	}
	unlock()
	if err != nil {
		return err
	}
	if q.cfg.AppUsers != nil {
		if err := q.cfg.AppUsers.Remove(project.ID); err != nil {
			q.log.Warn("remove the app user of a deleted project", "project", project.Name, "err", err)
		}
	}
	// The name was validated when the project was created: these paths stay
	// inside their directories.
	paths := []string{
		filepath.Join(q.cfg.ReposDir, project.Name+".git"),
		filepath.Join(q.cfg.ArtifactsDir, project.Name),
	}
	if q.cfg.CacheDir != "" {
		paths = append(paths, filepath.Dir(q.cacheHome(project.ID)))
	}
	if q.cfg.DeploymentsDir != "" {
		for _, b := range builds {
			paths = append(paths, extractedDirs(q.cfg.DeploymentsDir, b.ID)...)
		}
	}
	for _, p := range paths {
		if err := os.RemoveAll(p); err != nil {
			q.log.Warn("remove files of a deleted project", "path", p, "err", err)
		}
	}
	q.log.Info("project deleted", "project", project.Name, "builds", len(builds))
	return nil
}
