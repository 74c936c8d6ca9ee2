package toolchain

import (
	"context"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"minivercel/internal/testenv"
)

// registry returns the npm registry this machine is configured with, or
// skips the test when it does not answer.
func registry(t *testing.T) NPM {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	npm, err := NPMConfig(ctx, os.Getenv)
	if err != nil {
		testenv.Skipf(t, "needs npm and its registry: %v", err)
	}
	s := newStore(t, npm)
	if _, err := s.packument(ctx, "yarn"); err != nil {
		testenv.Skipf(t, "needs the npm registry %s: %v", npm.Registry, err)
	}
	return npm
}

func newStore(t *testing.T, npm NPM) *Store {
	t.Helper()
	s, err := New(Config{Dir: filepath.Join(t.TempDir(), "toolchains"), Registry: npm.Registry, CAFile: npm.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// run runs a launcher with the given node first in PATH and returns its
// trimmed output.
func run(t *testing.T, nodeBin, exe string, args ...string) string {
	t.Helper()
	cmd := exec.Command(exe, args...)
	cmd.Env = []string{"PATH=" + nodeBin + ":/usr/local/bin:/usr/bin:/bin", "HOME=" + t.TempDir()}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", exe, args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestResolveToolFromRegistry(t *testing.T) {
	t.Parallel()
	s := newStore(t, registry(t))
	ctx := context.Background()
	sys, err := s.SystemNode(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := Want{Spec: "1.22.22", Source: "package.json packageManager"}
	// The hash corepack writes into packageManager is the tarball's sha512.
	var said []string
	tool, err := s.ResolveTool(ctx, "yarn", want, "sha512."+hexIntegrity(t, s, "yarn", "1.22.22"), func(l string) { said = append(said, l) })
	if err != nil {
		t.Fatal(err)
	}
	if len(said) != 1 || said[0] != "Fetching yarn 1.22.22 from the npm registry" {
		t.Errorf("progress %q, want the one line about the download", said)
	}
	if !tool.Fetched || tool.Version.String() != "1.22.22" || tool.Package != "yarn" {
		t.Fatalf("got %+v, want yarn 1.22.22 fetched", tool)
	}
	if got := run(t, sys.BinDir, filepath.Join(tool.BinDir, "yarn"), "--version"); got != "1.22.22" {
		t.Errorf("yarn --version = %q", got)
	}
	again, err := s.ResolveTool(ctx, "yarn", Want{Spec: "^1.22", Source: "yarn.lock"}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.Fetched || again.BinDir != tool.BinDir {
		t.Errorf("second resolve %+v, want the cached %s", again, tool.BinDir)
	}
	_, err = s.ResolveTool(ctx, "yarn", Want{Spec: "99", Source: "package.json packageManager"}, "", nil)
	if !errors.Is(err, ErrNoVersion) || !strings.Contains(err.Error(), `package.json packageManager "99"`) {
		t.Errorf("yarn 99: %v, want ErrNoVersion naming the request", err)
	}
	// A packageManager hash is checked against the cached copy's digests,
	// not trusted because the version is cached.
	_, err = s.ResolveTool(ctx, "yarn", want, "sha512."+strings.Repeat("ab", 64), nil)
	if !errors.Is(err, ErrIntegrity) {
		t.Errorf("a wrong hash for a cached version: %v, want ErrIntegrity", err)
	}
	digests, err := os.ReadFile(filepath.Join(filepath.Dir(tool.BinDir), digestsFile))
	if err != nil {
		t.Fatal(err)
	}
	right, _, _ := strings.Cut(string(digests), "\n")
	if _, err := s.ResolveTool(ctx, "yarn", want, right, nil); err != nil {
		t.Errorf("the right hash for a cached version: %v", err)
	}
}

func TestResolveNodeFromRegistry(t *testing.T) {
	t.Parallel()
	s := newStore(t, registry(t))
	ctx := context.Background()
	sys, err := s.SystemNode(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.ResolveNode(ctx, Want{Spec: ">=" + sys.Version.String(), Source: "package.json engines.node"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !n.System || n.Fetched {
		t.Errorf("a request the system Node satisfies gave %+v, want the system's", n)
	}
	_, err = s.ResolveNode(ctx, Want{Spec: "99", Source: ".nvmrc"}, nil)
	if !errors.Is(err, ErrNoVersion) || !strings.Contains(err.Error(), `.nvmrc "99"`) {
		t.Errorf("node 99: %v, want ErrNoVersion naming .nvmrc", err)
	}
	other := sys.Version.Major + 2
	n, err = s.ResolveNode(ctx, Want{Spec: strconv.Itoa(other), Source: ".node-version"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n.System || !n.Fetched || n.Version.Major != other {
		t.Fatalf("got %+v, want Node %d fetched", n, other)
	}
	if got := run(t, n.BinDir, filepath.Join(n.BinDir, "node"), "-p", "process.version"); got != "v"+n.Version.String() {
		t.Errorf("node prints %q, want v%s", got, n.Version)
	}
	bin, err := s.NodeBin(ctx, n.Version.String())
	if err != nil || bin != n.BinDir {
		t.Errorf("NodeBin(%s) = %q, %v; want %s", n.Version, bin, err, n.BinDir)
	}
	fi, err := os.Stat(filepath.Join(n.BinDir, "node"))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("node's mode: %v, %v; want 0755 (apps and builds run as other users)", fi.Mode(), err)
	}
}

// hexIntegrity returns the published sha512 of a version's tarball in hex.
func hexIntegrity(t *testing.T, s *Store, pkg, version string) string {
	t.Helper()
	doc, err := s.packument(context.Background(), pkg)
	if err != nil {
		t.Fatal(err)
	}
	sri := doc.Versions[version].Dist.Integrity
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sri, "sha512-"))
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(raw)
}

// localRegistry serves one real tarball as version 1.22.22 of "yarn", with
// the integrity given (or its true one when integrity is empty), and counts
// tarball downloads.
type localRegistry struct {
	srv       *httptest.Server
	downloads atomic.Int32
}

func newLocalRegistry(t *testing.T, tarball []byte, integrity string) *localRegistry {
	t.Helper()
	if integrity == "" {
		sum := sha512.Sum512(tarball)
		integrity = "sha512-" + base64.StdEncoding.EncodeToString(sum[:])
	}
	lr := &localRegistry{}
	lr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/yarn":
			doc := map[string]any{"versions": map[string]any{"1.22.22": map[string]any{
				"dist": map[string]string{"tarball": lr.srv.URL + "/yarn.tgz", "integrity": integrity},
			}}}
			_ = json.NewEncoder(w).Encode(doc)
		case "/@yarnpkg/cli-dist": // yarn 2 and later: none here
			_, _ = w.Write([]byte(`{"versions":{}}`))
		case "/yarn.tgz":
			lr.downloads.Add(1)
			_, _ = w.Write(tarball)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(lr.srv.Close)
	return lr
}

// realTarball downloads yarn 1.22.22's real tarball (1.2 MB) once per test
// binary.
var realTarball = sync.OnceValues(func() ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	npm, err := NPMConfig(ctx, os.Getenv)
	if err != nil {
		return nil, err
	}
	client, err := httpClient(npm.CAFile)
	if err != nil {
		return nil, err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, npm.Registry+"yarn/-/yarn-1.22.22.tgz", nil)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
})

func tarballOrSkip(t *testing.T) []byte {
	t.Helper()
	registry(t)
	b, err := realTarball()
	if err != nil {
		testenv.Skipf(t, "needs yarn's tarball from the npm registry: %v", err)
	}
	return b
}

func TestIntegrityMismatchRefused(t *testing.T) {
	t.Parallel()
	tgz := tarballOrSkip(t)
	// The integrity of other bytes: what the registry would say if the
	// tarball had been swapped on the way.
	other := sha512.Sum512(append([]byte("x"), tgz...))
	lr := newLocalRegistry(t, tgz, "sha512-"+base64.StdEncoding.EncodeToString(other[:]))
	s := newStore(t, NPM{Registry: lr.srv.URL})
	_, err := s.ResolveTool(context.Background(), "yarn", Want{Spec: "1", Source: "yarn.lock"}, "", nil)
	if !errors.Is(err, ErrIntegrity) {
		t.Fatalf("got %v, want ErrIntegrity", err)
	}
	entries, _ := filepath.Glob(filepath.Join(s.Dir(), "yarn", "*"))
	for _, e := range entries {
		if !strings.HasSuffix(e, ".lock") {
			t.Errorf("%s left in the store after a failed check", e)
		}
	}
	// A packageManager hash that disagrees is refused too, even when the
	// registry's integrity matches.
	good := newLocalRegistry(t, tgz, "")
	s = newStore(t, NPM{Registry: good.srv.URL})
	_, err = s.ResolveTool(context.Background(), "yarn", Want{Spec: "1.22.22", Source: "package.json packageManager"}, "sha512."+strings.Repeat("00", 64), nil)
	if !errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), "packageManager") {
		t.Fatalf("got %v, want ErrIntegrity about the packageManager hash", err)
	}
}

// Builds and an edge sharing one directory, each with its own Store (as
// separate processes would), fetch one version at once: one download, one
// intact tree.
func TestConcurrentFetchOneVersion(t *testing.T) {
	t.Parallel()
	tgz := tarballOrSkip(t)
	lr := newLocalRegistry(t, tgz, "")
	dir := filepath.Join(t.TempDir(), "toolchains")
	var wg sync.WaitGroup
	const n = 6
	bins := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			s, err := New(Config{Dir: dir, Registry: lr.srv.URL})
			if err != nil {
				errs[i] = err
				return
			}
			tool, err := s.ResolveTool(context.Background(), "yarn", Want{Spec: "1", Source: "yarn.lock"}, "", nil)
			bins[i], errs[i] = tool.BinDir, err
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if bins[i] != bins[0] {
			t.Errorf("bin dirs differ: %s, %s", bins[i], bins[0])
		}
	}
	if got := lr.downloads.Load(); got != 1 {
		t.Errorf("%d downloads, want 1", got)
	}
	sys, err := newStore(t, NPM{Registry: lr.srv.URL}).SystemNode(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := run(t, sys.BinDir, filepath.Join(bins[0], "yarnpkg"), "--version"); got != "1.22.22" {
		t.Errorf("yarnpkg --version = %q", got)
	}

	// With the registry gone, the newest matching version in the store
	// serves; one that is not there is a clear error.
	lr.srv.Close()
	s, err := New(Config{Dir: dir, Registry: lr.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	tool, err := s.ResolveTool(context.Background(), "yarn", Want{Spec: "^1.2", Source: "yarn.lock"}, "", nil)
	if err != nil || !tool.Offline || tool.BinDir != bins[0] {
		t.Errorf("offline: %+v, %v; want the cached %s", tool, err, bins[0])
	}
	_, err = s.ResolveTool(context.Background(), "yarn", Want{Spec: "4", Source: "yarn.lock"}, "", nil)
	if !errors.Is(err, ErrRegistry) {
		t.Errorf("offline, a version not in the store: %v, want ErrRegistry", err)
	}
}

// A fetch whose process died leaves its temporary directory: the next
// start removes it once no fetch can still be writing it, and only then.
func TestStaleDownloadsRemoved(t *testing.T) {
	dir := t.TempDir()
	old, fresh := filepath.Join(dir, "yarn", ".tmp-1.22.22-1"), filepath.Join(dir, "yarn", ".tmp-1.22.22-2")
	for _, d := range []string{old, fresh} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	long := time.Now().Add(-24 * time.Hour)
	if err := os.Chtimes(old, long, long); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Dir: dir, Registry: "http://127.0.0.1:1/"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale %s still there: %v", old, err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a download in progress was removed: %v", err)
	}
}

// TestMissingPackageIsNoVersions: a registry (a mirror) that does not carry
// one of a tool's packages answers 404 for it; that package has no versions,
// and does not fail a request that does not need it. Its password never
// shows in messages.
func TestMissingPackageIsNoVersions(t *testing.T) {
	t.Parallel()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "broken") {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		http.NotFound(w, r)
	}))
	defer hs.Close()
	s := newStore(t, NPM{Registry: strings.Replace(hs.URL, "http://", "http://user:s3cret@", 1) + "/"})
	doc, err := s.packument(context.Background(), "@pnpm/exe.linux-x64")
	if err != nil || len(doc.releases()) != 0 {
		t.Fatalf("a package the registry lacks: %+v, %v; want no versions and no error", doc, err)
	}
	_, err = s.packument(context.Background(), "broken")
	if !errors.Is(err, ErrRegistry) || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("a failing registry: %v, want ErrRegistry without the password", err)
	}
}
