package edge

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// deployments is the directory of extracted builds, one directory per build
// id. It is where the edge reads artifacts: the static cache and the app
// runtime both get a build's tree from extract.
type deployments struct {
	dir       string
	limits    Limits
	retry     backoff
	artifacts ArtifactSource // nil: Site.ArtifactPath is local
}

// extractFunc returns the directory holding a build's extracted tree,
// extracting its artifact first if needed. It is safe for concurrent use and
// honours ctx while it waits between attempts.
type extractFunc func(ctx context.Context, site Site) (dir string, err error)

func newDeployments(dir string, limits Limits, artifacts ArtifactSource) *deployments {
	return &deployments{dir: dir, limits: limits, retry: artifactRetry, artifacts: artifacts}
}

// extract makes the build's directory hold its extracted artifact. An
// artifact that is briefly missing, unreadable or does not match its checksum
// is read again with exponential backoff: builds are written by another
// process (possibly on another machine through shared storage), and the edge
// may be told about one just before its bytes are all there. Everything else
// (an unsafe or oversized archive, a malformed recorded checksum) fails at
// once.
func (d *deployments) extract(ctx context.Context, site Site) (string, error) {
	dst := filepath.Join(d.dir, strconv.FormatInt(site.BuildID, 10))
	if _, err := decodeDigest(site.SHA256); err != nil {
		return "", fmt.Errorf("verify artifact %s: %w", site.ArtifactPath, err)
	}
	err := d.retry.do(ctx, transientArtifactError, func() error {
		path := site.ArtifactPath
		if d.artifacts != nil && !isExtracted(dst) {
			var err error
			if path, err = d.artifacts.Fetch(ctx, site.SHA256); err != nil {
				return fmt.Errorf("fetch artifact of build %d: %w", site.BuildID, err)
			}
		}
		return d.limits.EnsureExtracted(path, site.SHA256, dst)
	})
	if err != nil {
		return "", err
	}
	return dst, nil
}

// isExtracted reports whether a build's directory is there already: its
// artifact need not be fetched again.
func isExtracted(dst string) bool {
	ok, err := isDir(dst)
	return ok && err == nil
}

// transientArtifactError reports the failures of reading an artifact that
// may heal on their own: the file not there yet, not readable yet, or not
// completely written yet (its bytes do not hash to the recorded sum).
func transientArtifactError(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) || errors.Is(err, ErrChecksumMismatch)
}

// removeUnfinished deletes the temporary directories of extractions that a
// crash interrupted; a finished extraction is always renamed away from its
// temporary name.
func (d *deployments) removeUnfinished(log *slog.Logger) {
	tmps, _ := filepath.Glob(filepath.Join(d.dir, ".*.tmp-*"))
	for _, t := range tmps {
		if err := os.RemoveAll(t); err != nil {
			log.Warn("remove unfinished extraction", "dir", t, "err", err)
			continue
		}
		log.Info("removed leftover of an earlier run", "what", "unfinished extraction", "path", t)
	}
}

// artifactRetry waits 50 ms, 100 ms, 200 ms, 400 ms between five attempts:
// under a second in all, enough for a writer to finish, short enough that a
// build whose artifact is really gone fails an activation quickly.
var artifactRetry = backoff{first: 50 * time.Millisecond, max: time.Second, tries: 5, sleep: sleepCtx}

// backoff retries an operation with exponentially growing waits.
type backoff struct {
	first time.Duration // wait after the first failure
	max   time.Duration // cap on one wait
	tries int           // attempts in all, at least 1
	// sleep waits d or until ctx ends, returning ctx's error then; a field so
	// that tests see the schedule without waiting.
	sleep func(ctx context.Context, d time.Duration) error
}

// errGaveUp is wrapped, together with the last failure, by the error of a
// retried operation that kept failing transiently.
var errGaveUp = errors.New("gave up")

// do runs op until it succeeds, fails with an error transient does not
// accept, ctx ends, or tries attempts failed. The error of the last attempt
// is wrapped so errors.Is still finds its cause.
func (b backoff) do(ctx context.Context, transient func(error) bool, op func() error) error {
	wait := b.first
	for try := 1; ; try++ {
		err := op()
		if err == nil || !transient(err) {
			return err
		}
		if try >= b.tries {
			return fmt.Errorf("%w after %d attempts: %w", errGaveUp, try, err)
		}
		if serr := b.sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%w: %w (last attempt: %w)", errGaveUp, serr, err)
		}
		wait = min(wait*2, b.max)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
