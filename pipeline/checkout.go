package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// maxSymlinkHops bounds symlink resolution, as the kernel's ELOOP limit does.
const maxSymlinkHops = 40

// Checkout writes the tree of commit, a full hex object name, from the git
// repository at repoPath (normally bare) into dst, which must exist and be
// empty. Regular files keep git's executable bit (0755 or 0644), submodules
// are skipped, and a symlink is written only when it resolves inside dst.
//
// The tree comes from a pushed repository, so it is untrusted: any path that
// would leave dst, or a symlink that points outside it, refuses the whole
// checkout with an error wrapping ErrUnsafePath rather than deploying a
// half-written tree. A missing commit wraps ErrCommitNotFound. After an
// error dst may hold part of the tree: the caller discards the workspace.
//
// go-git reads the repository in-process, so the GIT_DIR,
// GIT_QUARANTINE_PATH and similar variables a git hook inherits play no part.
//
// It returns the commit's committer time, which the artifact gives every
// file (see PackIn).
func Checkout(ctx context.Context, repoPath, commit, dst string) (time.Time, error) {
	return checkout(ctx, repoPath, commit, dst, MaxCheckoutFiles, MaxCheckoutBytes)
}

// checkout is Checkout within maxFiles entries and maxBytes of files; a
// commit over either wraps ErrTooLarge.
func checkout(ctx context.Context, repoPath, commit, dst string, maxFiles int, maxBytes int64) (time.Time, error) {
	if !plumbing.IsHash(commit) {
		return time.Time{}, fmt.Errorf("checkout %q: not a full commit hash", commit)
	}
	entries, err := os.ReadDir(dst)
	if err != nil {
		return time.Time{}, fmt.Errorf("checkout %s: %w", commit, err)
	}
	if len(entries) > 0 {
		return time.Time{}, fmt.Errorf("checkout %s: destination %s is not empty", commit, dst)
	}

	repo, err := git.PlainOpen(repoPath)
	if err != nil {
		return time.Time{}, fmt.Errorf("open repository %s: %w", repoPath, err)
	}
	c, err := repo.CommitObject(plumbing.NewHash(commit))
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return time.Time{}, fmt.Errorf("checkout %s: %w", commit, ErrCommitNotFound)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read commit %s: %w", commit, err)
	}
	tree, err := c.Tree()
	if err != nil {
		return time.Time{}, fmt.Errorf("read tree of %s: %w", commit, err)
	}

	// All writes go through os.Root: even if the checks below missed a
	// trick, the kernel-level walk refuses to follow anything out of dst.
	root, err := os.OpenRoot(dst)
	if err != nil {
		return time.Time{}, fmt.Errorf("checkout %s: %w", commit, err)
	}
	defer root.Close()

	// Symlinks are created last, after every file and directory exists, so
	// no write can ever pass through a symlink taken from the tree.
	w := treeWriter{ctx: ctx, repo: repo, root: root, links: map[string]string{}, maxFiles: maxFiles, maxBytes: maxBytes}
	if err := w.walk(tree, "", 0); err != nil {
		return time.Time{}, fmt.Errorf("checkout %s: %w", commit, err)
	}
	links, linkOrder := w.links, w.linkOrder

	lookup := func(p string) (string, bool) { t, ok := links[p]; return t, ok }
	for _, name := range linkOrder {
		target := links[name]
		if !symlinkStaysInside(name, target, lookup) {
			return time.Time{}, fmt.Errorf("checkout %s: symlink %s -> %s points outside the project or loops: %w", commit, name, target, ErrUnsafePath)
		}
		if err := mkdirParents(root, name); err != nil {
			return time.Time{}, fmt.Errorf("checkout %s: %w", commit, err)
		}
		if err := root.Symlink(target, name); err != nil {
			return time.Time{}, fmt.Errorf("checkout %s: create symlink %s: %w", commit, name, err)
		}
	}
	return c.Committer.When, nil
}

// maxTreeDepth bounds directory nesting so a hostile tree cannot exhaust
// the stack.
const maxTreeDepth = 1024

// Limits on what a checkout writes: a commit of millions of files, or of
// gigabytes, fails at once rather than filling the workspace.
const (
	MaxCheckoutFiles = 200_000
	MaxCheckoutBytes = 2 << 30
)

// treeWriter writes a git tree's files and collects its symlinks.
type treeWriter struct {
	ctx       context.Context
	repo      *git.Repository
	root      *os.Root
	links     map[string]string // symlink path -> target
	linkOrder []string
	files     int   // entries written or collected so far
	bytes     int64 // bytes of the blobs written so far
	maxFiles  int
	maxBytes  int64
}

// count takes one entry of size bytes against the checkout's limits.
func (w *treeWriter) count(name string, size int64) error {
	w.files++
	w.bytes += size
	switch {
	case w.files > w.maxFiles:
		return fmt.Errorf("the commit has more than %d files (at %s): %w", w.maxFiles, name, ErrTooLarge)
	case w.bytes > w.maxBytes:
		return fmt.Errorf("the commit's files add up to more than %s (at %s): %w", humanBytes(w.maxBytes), name, ErrTooLarge)
	}
	return nil
}

// walk validates every entry name itself (rather than relying on go-git's
// walker) so that a hostile name is reported as ErrUnsafePath.
func (w *treeWriter) walk(tree *object.Tree, base string, depth int) error {
	if depth > maxTreeDepth {
		return fmt.Errorf("tree nested deeper than %d: %w", maxTreeDepth, ErrUnsafePath)
	}
	for _, e := range tree.Entries {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		name := e.Name
		if base != "" {
			name = base + "/" + e.Name
		}
		if strings.Contains(e.Name, "/") {
			return fmt.Errorf("path %q: %w", name, ErrUnsafePath)
		}
		if err := checkRelPath(name); err != nil {
			return err
		}
		switch e.Mode {
		case filemode.Submodule:
			// The submodule's commit lives in another repository.
			continue
		case filemode.Dir:
			sub, err := w.repo.TreeObject(e.Hash)
			if err != nil {
				return fmt.Errorf("read tree %s: %w", name, err)
			}
			if err := w.walk(sub, name, depth+1); err != nil {
				return err
			}
		case filemode.Symlink:
			if err := w.count(name, 0); err != nil {
				return err
			}
			f, err := tree.TreeEntryFile(&e)
			if err != nil {
				return fmt.Errorf("read symlink %s: %w", name, err)
			}
			target, err := f.Contents()
			if err != nil {
				return fmt.Errorf("read symlink %s: %w", name, err)
			}
			if _, dup := w.links[name]; dup {
				return fmt.Errorf("path %q appears twice: %w", name, ErrUnsafePath)
			}
			w.links[name] = target
			w.linkOrder = append(w.linkOrder, name)
		case filemode.Regular, filemode.Deprecated, filemode.Executable:
			f, err := tree.TreeEntryFile(&e)
			if err != nil {
				return fmt.Errorf("read blob %s: %w", name, err)
			}
			f.Name = name
			if err := w.count(name, f.Size); err != nil {
				return err
			}
			if err := writeBlob(w.root, f); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s has unsupported mode %v", name, e.Mode)
		}
	}
	return nil
}

// writeBlob writes one regular file. O_EXCL makes a tree that names the same
// path twice an error rather than a silent overwrite.
func writeBlob(root *os.Root, f *object.File) error {
	if err := mkdirParents(root, f.Name); err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if f.Mode == filemode.Executable {
		mode = 0o755
	}
	r, err := f.Reader()
	if err != nil {
		return fmt.Errorf("read blob %s: %w", f.Name, err)
	}
	defer r.Close()
	out, err := root.OpenFile(f.Name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("create %s: %w", f.Name, err)
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return fmt.Errorf("write %s: %w", f.Name, err)
	}
	// Chmod explicitly: the process umask must not decide what the build
	// user may execute.
	if err := out.Chmod(mode); err != nil {
		out.Close()
		return fmt.Errorf("chmod %s: %w", f.Name, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("write %s: %w", f.Name, err)
	}
	return nil
}

func mkdirParents(root *os.Root, name string) error {
	dir := path.Dir(name)
	if dir == "." {
		return nil
	}
	if err := root.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create directory %s: %w", dir, err)
	}
	return nil
}

// checkRelPath accepts a slash-separated path that names something strictly
// inside its root. ".git" is refused in any letter case because a nested git
// directory would let the checked-out code configure git commands (hooks,
// fsmonitor) that the build later runs in the workspace; git itself refuses
// such trees for the same reason.
func checkRelPath(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.ContainsRune(name, 0) {
		return fmt.Errorf("path %q: %w", name, ErrUnsafePath)
	}
	for _, part := range strings.Split(name, "/") {
		switch {
		case part == "", part == ".", part == "..":
			return fmt.Errorf("path %q: %w", name, ErrUnsafePath)
		case strings.EqualFold(part, ".git"):
			return fmt.Errorf("path %q: %w", name, ErrUnsafePath)
		}
	}
	return nil
}

// symlinkStaysInside reports whether the symlink at link (a slash path
// relative to the root) with the given target resolves to a location inside
// the root, following other symlinks of the tree through lookup. A purely
// lexical check is not enough: with a/b/l -> ../.. (the root) a second link
// a/b/x -> l/.. is lexically a/b but really the root's parent. Absolute
// targets are refused since the tree will be extracted elsewhere. A dangling
// target inside the root is accepted: it cannot reach anything outside.
func symlinkStaysInside(link, target string, lookup func(string) (string, bool)) bool {
	if target == "" || path.IsAbs(target) {
		return false
	}
	var stack []string // resolved components, from the root down
	// The link's own directory is resolved too: in a malformed tree it may
	// lie under another symlink.
	pending := strings.Split(target, "/")
	if d := path.Dir(link); d != "." {
		pending = append(strings.Split(d, "/"), pending...)
	}
	hops := 0
	for len(pending) > 0 {
		part := pending[0]
		pending = pending[1:]
		switch part {
		case "", ".":
			continue
		case "..":
			if len(stack) == 0 {
				return false
			}
			stack = stack[:len(stack)-1]
			continue
		}
		stack = append(stack, part)
		t, ok := lookup(strings.Join(stack, "/"))
		if !ok {
			continue
		}
		hops++
		if hops > maxSymlinkHops || t == "" || path.IsAbs(t) {
			return false
		}
		stack = stack[:len(stack)-1]
		pending = append(strings.Split(t, "/"), pending...)
	}
	return true
}
