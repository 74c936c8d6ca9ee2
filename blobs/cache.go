package blobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sync/singleflight"
)

// Cache is one node's verified copies of blobs, kept as <dir>/<sha>. A file
// appears there only whole and verified (renamed from a temporary file whose
// name starts with "."), or adopted from the node's own output. It is safe for
// concurrent use; several processes must not share one dir.
type Cache struct {
	dir   string
	st    Store
	sem   chan struct{} // a slot per download allowed at once
	group singleflight.Group
}

// NewCache returns a cache in dir, created with mode 0700 when missing,
// filled from st with at most maxConcurrent downloads at once (below 1: one).
// Call RemoveTemporary before the first Fetch.
func NewCache(dir string, st Store, maxConcurrent int) (*Cache, error) {
	// Blobs are other projects' artifacts, and builds run user code as other
	// users: the cache is its owner's alone, even when dir existed before.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create blob cache: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create blob cache: %w", err)
	}
	return &Cache{dir: dir, st: st, sem: make(chan struct{}, max(maxConcurrent, 1))}, nil
}

// path returns where blob sha is kept; sha must have passed checkSHA.
func (c *Cache) path(sha string) string { return filepath.Join(c.dir, sha) }

// present reports whether blob sha is in the cache.
func (c *Cache) present(sha string) (bool, error) {
	fi, err := os.Lstat(c.path(sha))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("stat cached blob: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return false, fmt.Errorf("cached blob %s is not a regular file", sha)
	}
	return true, nil
}

// Fetch returns the path of blob sha in the cache, downloading it from the
// Store first when it is not there. Concurrent Fetches of one sha share one
// download; a caller whose ctx ends stops waiting, and when it was the one
// whose ctx the download ran with, the others start it again. Bytes that do not match sha
// fail with ErrCorrupt and leave nothing behind; a blob the Store does not
// have is ErrNotFound.
func (c *Cache) Fetch(ctx context.Context, sha string) (string, error) {
	if err := checkSHA(sha); err != nil {
		return "", fmt.Errorf("fetch blob: %w", err)
	}
	if ok, err := c.present(sha); err != nil {
		return "", fmt.Errorf("fetch blob %s: %w", sha, err)
	} else if ok {
		return c.path(sha), nil
	}
	for {
		ch := c.group.DoChan(sha, func() (any, error) { return nil, c.download(ctx, sha) })
		var err error
		select {
		case r := <-ch:
			err = r.Err
		case <-ctx.Done():
			return "", fmt.Errorf("fetch blob %s: %w", sha, ctx.Err())
		}
		// The download ran with the context of the caller that started it;
		// when that one gave up, a caller still waiting starts it again.
		if err != nil && ctx.Err() == nil &&
			(errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("fetch blob %s: %w", sha, err)
		}
		return c.path(sha), nil
	}
}

// download puts blob sha into the cache unless it is there.
func (c *Cache) download(ctx context.Context, sha string) error {
	if ok, err := c.present(sha); err != nil || ok {
		return err
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.sem }()
	rc, size, err := c.st.Open(ctx, sha)
	if err != nil {
		return err
	}
	defer rc.Close()
	return c.install(sha, size, rc)
}

// install writes r to a temporary file, checks that it is size bytes hashing
// to sha, syncs it and renames it to sha's path, so the cache never holds a
// partial or unverified file under a blob's name.
func (c *Cache) install(sha string, size int64, r io.Reader) error {
	f, err := os.CreateTemp(c.dir, "."+sha+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	// One byte past size is read so that a longer stream is caught.
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, size+1))
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	if n != size {
		return fmt.Errorf("%w: got %d bytes, want %d", ErrCorrupt, n, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sha {
		return fmt.Errorf("%w: the bytes hash to %s", ErrCorrupt, got)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	if err := os.Rename(f.Name(), c.path(sha)); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	done = true
	return nil
}

// Adopt puts the file at path, which the caller knows to be blob sha (it
// hashed it while producing it), into the cache, so that the node that built
// an artifact never downloads it. It hard-links the file, and copies it when
// it cannot (another file system, a file of another owner); a copy is
// verified like a download. The file must not change afterwards: a link
// shares its bytes.
func (c *Cache) Adopt(path, sha string) error {
	if err := checkSHA(sha); err != nil {
		return fmt.Errorf("adopt blob: %w", err)
	}
	err := os.Link(path, c.path(sha))
	if err == nil || errors.Is(err, fs.ErrExist) {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("adopt blob %s: %w", sha, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("adopt blob %s: %w", sha, err)
	}
	if err := c.install(sha, fi.Size(), f); err != nil {
		return fmt.Errorf("adopt blob %s: %w", sha, err)
	}
	return nil
}

// Remove deletes blob sha from the cache; an absent blob is no error.
func (c *Cache) Remove(sha string) error {
	if err := checkSHA(sha); err != nil {
		return fmt.Errorf("remove blob: %w", err)
	}
	if err := os.Remove(c.path(sha)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove blob %s: %w", sha, err)
	}
	return nil
}

// RemoveTemporary deletes the temporary files of downloads that a crash
// interrupted: every file in dir whose name starts with ".". Call it before
// the first Fetch, as it would also delete the file of a download at work.
func (c *Cache) RemoveTemporary() error {
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return fmt.Errorf("list blob cache: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") && e.Type().IsRegular() {
			if err := os.Remove(filepath.Join(c.dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove temporary blobs: %w", err)
	}
	return nil
}

// Prune removes this node's copies of the blobs the store no longer holds
// (their builds were collected or deleted while this node was away, or
// another node released them), and returns how many it removed. A copy
// whose blob cannot be checked now is kept.
func (c *Cache) Prune(ctx context.Context) (int, error) {
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return 0, fmt.Errorf("list blob cache: %w", err)
	}
	n := 0
	for _, e := range entries {
		sha := e.Name()
		if !e.Type().IsRegular() || checkSHA(sha) != nil {
			continue
		}
		if ok, err := c.st.Exists(ctx, sha); err != nil || ok {
			continue
		}
		if err := c.Remove(sha); err == nil {
			n++
		}
	}
	return n, ctx.Err()
}
