package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
	"time"
)

// DefaultMaxWorkspaceBytes bounds the disk one build's workspace (its
// checkout, installed dependencies, build output and HOME) may use.
const DefaultMaxWorkspaceBytes = 10 << 30

// workspaceCheckEvery is how often a running command's workspace is
// measured at most; a measure that takes long (a node_modules of 100,000
// files) waits ten times its own duration before the next, so the watch
// never costs more than a tenth of a core.
const workspaceCheckEvery = 2 * time.Second

// watchWorkspace returns a context that ends, with a cause wrapping
// ErrTooLarge, when the workspace ws uses more than limit bytes of disk
// while a command runs; stop ends the watch. Disk use is what the files
// occupy (their blocks), so a sparse file of terabytes costs what it
// writes. A command that fills the disk then stops within a check's time,
// instead of when the disk is full.
func watchWorkspace(ctx context.Context, ws string, limit int64) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		wait := workspaceCheckEvery
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			began := time.Now()
			if used := diskUse(ws, limit); used > limit {
				cancel(fmt.Errorf("the build's workspace uses more than %s of disk: %w", humanBytes(limit), ErrTooLarge))
				return
			}
			wait = max(workspaceCheckEvery, 10*time.Since(began))
		}
	}()
	return ctx, func() {
		close(done)
		cancel(nil)
	}
}

// diskUse adds up the blocks of the files under dir, stopping once the
// sum passes max. Files it cannot see (a race with the build) count as
// empty.
func diskUse(dir string, max int64) int64 {
	var used int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			used += st.Blocks * 512
		}
		if used > max {
			return filepath.SkipAll
		}
		return nil
	})
	return used
}

// workspaceErr returns the reason ctx (from watchWorkspace) ended when it
// was the workspace's size, and err otherwise.
func workspaceErr(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); err != nil && errors.Is(cause, ErrTooLarge) {
		return cause
	}
	return err
}
