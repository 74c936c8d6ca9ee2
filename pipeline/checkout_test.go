package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// runGit runs the system git with a clean environment, so neither the test
// runner's git config nor a hook's GIT_DIR can leak into the fixture.
func runGit(t *testing.T, dir string, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"HOME=" + dir,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com",
	}
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// testRepo is a bare repository and a work clone that pushes into it, the
// same shape as a project's repository on the server.
type testRepo struct {
	bare, work string
}

func newTestRepo(t *testing.T) testRepo {
	t.Helper()
	r := testRepo{bare: filepath.Join(t.TempDir(), "p.git"), work: t.TempDir()}
	runGit(t, ".", "", "init", "-q", "--bare", r.bare)
	runGit(t, r.work, "", "init", "-q", "-b", "main")
	runGit(t, r.work, "", "remote", "add", "origin", r.bare)
	return r
}

// commitAndPush commits everything in the work clone and returns the hash.
func (r testRepo) commitAndPush(t *testing.T) string {
	t.Helper()
	runGit(t, r.work, "", "add", "-A")
	runGit(t, r.work, "", "commit", "-q", "-m", "c")
	runGit(t, r.work, "", "push", "-q", "origin", "main")
	return runGit(t, r.work, "", "rev-parse", "HEAD")
}

// craftCommit writes a commit whose root tree has the given mktree lines
// straight into the bare repository; it makes trees that porcelain git
// refuses to create but a hostile push can contain.
func (r testRepo) craftCommit(t *testing.T, treeLines ...string) string {
	t.Helper()
	tree := runGit(t, r.bare, strings.Join(treeLines, "\n")+"\n", "mktree")
	return runGit(t, r.bare, "", "commit-tree", tree, "-m", "crafted")
}

func (r testRepo) blob(t *testing.T, content string) string {
	t.Helper()
	return runGit(t, r.bare, content, "hash-object", "-w", "--stdin")
}

func writeFile(t *testing.T, name, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(name, mode); err != nil {
		t.Fatal(err)
	}
}

func TestCheckoutWritesTree(t *testing.T) {
	r := newTestRepo(t)
	writeFile(t, filepath.Join(r.work, "index.html"), "<h1>hi</h1>", 0o644)
	writeFile(t, filepath.Join(r.work, "bin", "run.sh"), "#!/bin/sh\necho ok\n", 0o755)
	writeFile(t, filepath.Join(r.work, "assets", "css", "a.css"), "body{}", 0o644)
	if err := os.Symlink("assets/css", filepath.Join(r.work, "css")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../index.html", filepath.Join(r.work, "assets", "home.html")); err != nil {
		t.Fatal(err)
	}
	// A submodule is a gitlink entry pointing at a commit that is not in
	// this repository; the checkout must skip it, not fail on it.
	runGit(t, r.work, "", "update-index", "--add", "--cacheinfo",
		"160000,1111111111111111111111111111111111111111,vendor/lib")
	commit := r.commitAndPush(t)

	dst := t.TempDir()
	if _, err := Checkout(context.Background(), r.bare, commit, dst); err != nil {
		t.Fatalf("Checkout: %v", err)
	}

	got, err := os.ReadFile(filepath.Join(dst, "css", "a.css"))
	if err != nil || string(got) != "body{}" {
		t.Errorf("css/a.css through symlink = %q, %v", got, err)
	}
	got, err = os.ReadFile(filepath.Join(dst, "assets", "home.html"))
	if err != nil || string(got) != "<h1>hi</h1>" {
		t.Errorf("assets/home.html through symlink = %q, %v", got, err)
	}
	modes := map[string]os.FileMode{
		"index.html":       0o644,
		"bin/run.sh":       0o755,
		"assets/css/a.css": 0o644,
		"css":              os.ModeSymlink,
		"assets/home.html": os.ModeSymlink,
		"assets/css":       os.ModeDir | 0o755,
		"assets":           os.ModeDir | 0o755,
		"bin":              os.ModeDir | 0o755,
	}
	for name, want := range modes {
		fi, err := os.Lstat(filepath.Join(dst, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		mode := fi.Mode()
		if mode&os.ModeSymlink != 0 {
			mode = os.ModeSymlink
		}
		if mode != want {
			t.Errorf("%s mode = %v, want %v", name, mode, want)
		}
	}
	if _, err := os.Lstat(filepath.Join(dst, "vendor")); !os.IsNotExist(err) {
		t.Errorf("submodule vendor/lib was written: %v", err)
	}
}

func TestCheckoutRefuses(t *testing.T) {
	r := newTestRepo(t)
	writeFile(t, filepath.Join(r.work, "index.html"), "x", 0o644)
	good := r.commitAndPush(t)

	page := r.blob(t, "x")
	tree := func(lines ...string) string { return r.craftCommit(t, lines...) }
	link := func(name, target string) string { return "120000 blob " + r.blob(t, target) + "\t" + name }
	sub := func(name string, lines ...string) string {
		return "040000 tree " + runGit(t, r.bare, strings.Join(lines, "\n")+"\n", "mktree") + "\t" + name
	}

	cases := []struct {
		name   string
		commit string
		unsafe bool // the error must wrap ErrUnsafePath
	}{
		{"absolute symlink", tree(link("passwd", "/etc/passwd")), true},
		{"symlink to parent", tree(link("up", "..")), true},
		{"symlink climbing out", tree(sub("a", link("l", "../../etc"))), true},
		// Each link is lexically inside, but a/b/l is the root, so a/b/x
		// (l/..) is the root's parent.
		{"symlink chain escape", tree(sub("a", sub("b", link("l", "../.."), link("x", "l/.."))), "100644 blob "+page+"\tindex.html"), true},
		{"symlink loop", tree(link("p", "q"), link("q", "p")), true},
		{"dot-git directory", tree(sub(".GIT", "100644 blob "+page+"\tconfig")), true},
		{"dot-dot file", tree("100644 blob " + page + "\t.."), true},
		{"dot-dot directory", tree(sub("..", "100644 blob "+page+"\tevil")), true},
		{"unknown commit", "2222222222222222222222222222222222222222", false},
		{"not a hash", "main", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dst := t.TempDir()
			_, err := Checkout(context.Background(), r.bare, tc.commit, dst)
			if err == nil {
				t.Fatal("Checkout succeeded, want an error")
			}
			if tc.unsafe && !errors.Is(err, ErrUnsafePath) {
				t.Errorf("error %v does not wrap ErrUnsafePath", err)
			}
			if tc.name == "unknown commit" && !errors.Is(err, ErrCommitNotFound) {
				t.Errorf("error %v does not wrap ErrCommitNotFound", err)
			}
		})
	}

	t.Run("non-empty destination", func(t *testing.T) {
		dst := t.TempDir()
		writeFile(t, filepath.Join(dst, "old"), "x", 0o644)
		if _, err := Checkout(context.Background(), r.bare, good, dst); err == nil {
			t.Fatal("Checkout into a non-empty directory succeeded")
		}
	})
	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := Checkout(ctx, r.bare, good, t.TempDir()); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}

// TestCheckoutIgnoresGitEnv is the regression test for hooks: git runs the
// post-receive hook with GIT_DIR set to the pushed repo, and a checkout must
// read the repository it was given.
func TestCheckoutIgnoresGitEnv(t *testing.T) {
	r := newTestRepo(t)
	writeFile(t, filepath.Join(r.work, "index.html"), "right", 0o644)
	commit := r.commitAndPush(t)
	t.Setenv("GIT_DIR", t.TempDir())
	t.Setenv("GIT_QUARANTINE_PATH", t.TempDir())
	dst := t.TempDir()
	if _, err := Checkout(context.Background(), r.bare, commit, dst); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "index.html")); string(b) != "right" {
		t.Fatalf("index.html = %q", b)
	}
}

func TestSymlinkStaysInside(t *testing.T) {
	links := map[string]string{
		"a/b/l": "../..",
		"dir":   "a/b",
		"self":  ".",
	}
	lookup := func(p string) (string, bool) { t, ok := links[p]; return t, ok }
	cases := []struct {
		name, link, target string
		want               bool
	}{
		{"sibling", "x", "index.html", true},
		{"down", "x", "a/b/c", true},
		{"up inside", "a/b/x", "../../index.html", true},
		{"dangling inside", "x", "missing/file", true},
		{"through dir link", "x", "dir/..", true},
		{"parent", "x", "..", false},
		{"absolute", "x", "/etc", false},
		{"empty", "x", "", false},
		{"chain", "a/b/x", "l/..", false},
		{"under link", "self/x", "..", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := symlinkStaysInside(tc.link, tc.target, lookup); got != tc.want {
				t.Errorf("symlinkStaysInside(%q, %q) = %v, want %v", tc.link, tc.target, got, tc.want)
			}
		})
	}
}

// TestSymlinkStaysInsideProperty checks symlinkStaysInside against the
// kernel: random trees of directories and symlinks are built on disk inside
// an outer directory, and whenever a link resolves to an existing place that
// is outside the root, the check must have refused it.
func TestSymlinkStaysInsideProperty(t *testing.T) {
	base := t.TempDir()
	parts := []string{"..", ".", "a", "b", "l", "m"}
	rapid.Check(t, func(rt *rapid.T) {
		outer, err := os.MkdirTemp(base, "outer-")
		if err != nil {
			rt.Fatal(err)
		}
		defer os.RemoveAll(outer)
		root := filepath.Join(outer, "root")
		// Directories that exist both inside and outside the root, so
		// that escapes land somewhere that opens.
		for _, d := range []string{"root/a/b", "root/b/a", "a/b", "b"} {
			if err := os.MkdirAll(filepath.Join(outer, d), 0o755); err != nil {
				rt.Fatal(err)
			}
		}
		links := map[string]string{}
		dirs := []string{"", "a", "a/b", "b", "b/a"}
		n := rapid.IntRange(1, 5).Draw(rt, "links")
		for i := range n {
			dir := rapid.SampledFrom(dirs).Draw(rt, "dir")
			name := path.Join(dir, rapid.SampledFrom([]string{"l", "m"}).Draw(rt, "name"))
			if _, dup := links[name]; dup {
				continue
			}
			comps := rapid.SliceOfN(rapid.SampledFrom(parts), 1, 5).Draw(rt, fmt.Sprintf("target%d", i))
			target := strings.Join(comps, "/")
			links[name] = target
			if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
				rt.Fatal(err)
			}
		}
		lookup := func(p string) (string, bool) { t, ok := links[p]; return t, ok }
		for name, target := range links {
			inside := symlinkStaysInside(name, target, lookup)
			real, ok := resolveByKernel(filepath.Join(root, name))
			if !ok {
				continue // dangling or a loop: nothing is reached
			}
			if inside && real != root && !strings.HasPrefix(real, root+"/") {
				rt.Fatalf("%s -> %s judged inside but resolves to %s (links %v)", name, target, real, links)
			}
		}
	})
}

// resolveByKernel opens p and asks the kernel where it really is.
func resolveByKernel(p string) (string, bool) {
	f, err := os.Open(p)
	if err != nil {
		return "", false
	}
	defer f.Close()
	real, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	return real, err == nil
}

// TestCheckoutLimits: a commit with more files, or more bytes of files,
// than the checkout's limits fails with ErrTooLarge before it fills the
// workspace; within them it is checked out.
func TestCheckoutLimits(t *testing.T) {
	t.Parallel()
	r := newTestRepo(t)
	for i := range 30 {
		if err := os.WriteFile(filepath.Join(r.work, fmt.Sprintf("f%02d.txt", i)), []byte(strings.Repeat("x", 100)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	commit := r.commitAndPush(t)
	for _, tc := range []struct {
		name     string
		files    int
		bytes    int64
		tooLarge bool
	}{
		{"too many files", 10, 1 << 20, true},
		{"too many bytes", 1000, 1000, true},
		{"within both", 1000, 1 << 20, false},
	} {
		_, err := checkout(context.Background(), r.bare, commit, t.TempDir(), tc.files, tc.bytes)
		if got := errors.Is(err, ErrTooLarge); got != tc.tooLarge || !tc.tooLarge && err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}
