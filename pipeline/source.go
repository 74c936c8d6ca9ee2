package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"minivercel/schema"
)

// gitQueue is River's queue for work that needs the repositories: only
// nodes with the gitd role (they keep them) work it. A worker without the
// repository asks it for a snapshot of a commit's tree, and to put a
// branch back after a failed build.
const gitQueue = "git"

// Blobs is where the queue stores what other nodes fetch: artifacts and
// source snapshots, by the SHA-256 of their bytes (*blobs.Cache and
// blobs.Store, through cmd/minivercel). Put stores a local file whose
// SHA-256 and size the caller made as it wrote it (the store verifies them
// while it reads) and keeps it as this node's own copy; Fetch returns a local copy, downloading and
// verifying it first when this node has none; Extract unpacks a fetched
// archive safely (edge.Extract's rules: no path may leave dst). All are
// called concurrently and honour ctx.
type Blobs interface {
	Put(ctx context.Context, path, sha256 string, size int64) error
	Fetch(ctx context.Context, sha256 string) (path string, err error)
	Extract(archive, sha256, dst string) error
	// Release deletes a blob no build needs any more (collected, or a
	// finished build's source), here and in the database.
	Release(ctx context.Context, sha256 string)
	// Forget drops this node's copy of a blob it stored for others.
	Forget(sha256 string)
}

// SourceArgs is the River job, worked on a gitd node, that stores a
// snapshot of a build's commit for a worker without the repository.
type SourceArgs struct {
	BuildID int64 `json:"build_id"`
}

// Kind names the job kind in River's table.
func (SourceArgs) Kind() string { return "source" }

// InsertOpts puts the job on the git queue.
func (SourceArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: gitQueue, MaxAttempts: 3}
}

type sourceWorker struct {
	river.WorkerDefaults[SourceArgs]
	q *Queue
}

// Timeout bounds one snapshot: a checkout at its limits and its packing.
func (w *sourceWorker) Timeout(*river.Job[SourceArgs]) time.Duration { return 15 * time.Minute }

// Work checks the commit out exactly as a build does (Checkout: the same
// limits, symlink rules and file times), packs the tree and stores it.
func (w *sourceWorker) Work(ctx context.Context, job *river.Job[SourceArgs]) error {
	q := w.q
	b, err := q.store.BuildByID(ctx, job.Args.BuildID)
	if err != nil {
		return fmt.Errorf("snapshot of build %d: %w", job.Args.BuildID, err)
	}
	if b.SourceSHA256 != "" {
		return nil
	}
	tmp, err := os.MkdirTemp(q.cfg.WorkDir, "source-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Mkdir(filepath.Join(tmp, "src"), 0o755); err != nil {
		return err
	}
	committed, err := Checkout(ctx, q.repo(b.ProjectName), b.CommitSHA, filepath.Join(tmp, "src"))
	if err != nil {
		// Refused for good (too many files, an unsafe path): no retry.
		return river.JobCancel(fmt.Errorf("check out %s: %w", short(b.CommitSHA), err))
	}
	archive := filepath.Join(tmp, "source.tar.gz")
	sum, size, err := PackIn(ctx, tmp, "src", archive, PackOptions{MTime: committed})
	if err != nil {
		return river.JobCancel(fmt.Errorf("pack %s: %w", short(b.CommitSHA), err))
	}
	if err := q.cfg.Blobs.Put(ctx, archive, sum, size); err != nil {
		return fmt.Errorf("store the snapshot of %s: %w", short(b.CommitSHA), err)
	}
	if err := q.store.SetBuildSource(ctx, b.ID, sum); err != nil {
		return err
	}
	if err := q.storedAgain(ctx, archive, sum, size); err != nil {
		return err
	}
	q.cfg.Blobs.Forget(sum) // for the worker: this node builds from its repository
	return nil
}

// storedAgain stores a blob again once a build names it: the first Put
// may have found it stored by another build, which released it before
// this build's reference was recorded. From now on the reference keeps
// it (ReleaseBlob checks references in the same statement); a Put of a
// blob stored already reads nothing.
func (q *Queue) storedAgain(ctx context.Context, path, sum string, size int64) error {
	if q.cfg.Blobs == nil {
		return nil
	}
	if err := q.cfg.Blobs.Put(ctx, path, sum, size); err != nil {
		return fmt.Errorf("store %s: %w", filepath.Base(path), err)
	}
	return nil
}

// releaseSource lets the source snapshot of a finished build go.
func (q *Queue) releaseSource(ctx context.Context, buildID int64) {
	if q.cfg.Blobs == nil {
		return
	}
	if b, err := q.store.BuildByID(ctx, buildID); err == nil && b.SourceSHA256 != "" {
		q.cfg.Blobs.Release(ctx, b.SourceSHA256)
	}
}

// repo is the path of a project's bare repository on this node.
func (q *Queue) repo(project string) string {
	return filepath.Join(q.cfg.ReposDir, project+".git")
}

// hasRepo reports whether this node keeps the project's repository.
func (q *Queue) hasRepo(project string) bool {
	if q.cfg.ReposDir == "" {
		return false
	}
	fi, err := os.Stat(q.repo(project))
	return err == nil && fi.IsDir()
}

// checkout writes the build's commit into src and returns the commit's
// time: from the repository when this node has it, else from a snapshot a
// gitd node made (asked for here, if no earlier attempt did).
func (q *Queue) checkout(ctx context.Context, b schema.Build, src string, out *buildLog) (time.Time, error) {
	if q.hasRepo(b.ProjectName) || q.cfg.Blobs == nil {
		return Checkout(ctx, q.repo(b.ProjectName), b.CommitSHA, src)
	}
	sum := b.SourceSHA256
	if sum == "" {
		out.detail("Fetching the source from the git node")
		res, err := q.client.Insert(ctx, SourceArgs{BuildID: b.ID}, nil)
		if err != nil {
			return time.Time{}, fmt.Errorf("ask for the source: %w", err)
		}
		if err := q.waitJob(ctx, res.Job.ID, "source snapshot"); err != nil {
			return time.Time{}, err
		}
		now, err := q.store.BuildByID(ctx, b.ID)
		if err != nil {
			return time.Time{}, err
		}
		if sum = now.SourceSHA256; sum == "" {
			return time.Time{}, errors.New("the git node stored no source")
		}
	}
	archive, err := q.cfg.Blobs.Fetch(ctx, sum)
	if err != nil {
		return time.Time{}, fmt.Errorf("fetch the source: %w", err)
	}
	if err := os.Remove(src); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, err
	}
	if err := q.cfg.Blobs.Extract(archive, sum, src); err != nil {
		return time.Time{}, fmt.Errorf("unpack the source: %w", err)
	}
	return treeTime(src), nil
}

// treeTime returns the time every file of a snapshot carries (the
// commit's), or the zero time for an empty tree.
func treeTime(dir string) time.Time {
	var t time.Time
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := os.Lstat(path); err == nil {
			t = fi.ModTime()
		}
		return fs.SkipAll
	})
	return t
}

// waitJob waits until a job this queue inserted ends: nil when it
// completed, else the error its worker reported.
func (q *Queue) waitJob(ctx context.Context, jobID int64, what string) error {
	for {
		job, err := q.client.JobGet(ctx, jobID)
		if err != nil {
			return fmt.Errorf("read %s job %d: %w", what, jobID, err)
		}
		switch job.State {
		case rivertype.JobStateCompleted:
			return nil
		case rivertype.JobStateDiscarded, rivertype.JobStateCancelled:
			msg := what + " failed"
			if n := len(job.Errors); n > 0 {
				msg = job.Errors[n-1].Error
			}
			// River names its own wrapper; the reason is what follows.
			return errors.New(strings.TrimSpace(strings.TrimPrefix(msg, "JobCancelError: ")))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", what, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
