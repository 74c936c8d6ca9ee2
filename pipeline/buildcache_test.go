package pipeline

import (
	"archive/tar"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"minivercel/internal/testenv"
	"minivercel/schema"
)

// needRegistry skips a test that installs from the npm registry under
// -short and when the registry cannot be reached (fails in strict mode).
func needRegistry(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping installs from the npm registry")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if exec.CommandContext(ctx, "npm", "view", "ms@2.1.3", "version").Run() != nil {
		testenv.Skipf(t, "the npm registry cannot be reached from this machine")
	}
}

// cacheProject is a tiny npm project with one small dependency (ms) and
// one devDependency (is-number), pinned in its package-lock.json. Whether
// the install ran is in the log ("Installing dependencies"): an install
// script of its own would keep it out of the cache. name changes the
// lockfile's bytes; fail makes the build fail; start makes it a server app.
func cacheProject(name string, fail, start bool) map[string]string {
	scripts := `"build":"node build.js"`
	if start {
		scripts += `,"start":"node server.js"`
	}
	build := `const fs = require('fs');
console.log('ms says ' + require('ms')('2h'));
console.log('is-number says ' + require('is-number')(5));
fs.mkdirSync('dist', {recursive: true}); fs.writeFileSync('dist/index.html', 'built ' + Date.now());
`
	if fail {
		build += "process.exit(1);\n"
	}
	return map[string]string{
		"package.json": fmt.Sprintf(`{"name":%q,"version":"1.0.0","scripts":{%s},
  "dependencies":{"ms":"2.1.3"},"devDependencies":{"is-number":"7.0.0"}}`, name, scripts),
		"package-lock.json": fmt.Sprintf(`{
  "name": %[1]q,
  "version": "1.0.0",
  "lockfileVersion": 3,
  "requires": true,
  "packages": {
    "": {
      "name": %[1]q,
      "version": "1.0.0",
      "dependencies": {"ms": "2.1.3"},
      "devDependencies": {"is-number": "7.0.0"}
    },
    "node_modules/is-number": {
      "version": "7.0.0",
      "resolved": "https://registry.npmjs.org/is-number/-/is-number-7.0.0.tgz",
      "integrity": "sha512-41Cifkg6e8TylSpdtTpeLVMqvSBEVzTttHvERD741+pnZ8ANv0004MRL43QKPDlK9cGvNp6NZWZUBlbGXYxxng==",
      "dev": true,
      "engines": {"node": ">=0.12.0"}
    },
    "node_modules/ms": {
      "version": "2.1.3",
      "resolved": "https://registry.npmjs.org/ms/-/ms-2.1.3.tgz",
      "integrity": "sha512-6FlzubTLZG3J2a/NVCAleEhjzq5oxgHyaCU9yYXvcLsvoVaHJq/s5xXI6/XXP6tz7R9xAOtHnSO/tXtF3WRTlA=="
    }
  }
}
`, name),
		"build.js":  build,
		"server.js": "require('http').createServer((q, s) => s.end(require('ms')('1d') + '')).listen(process.env.PORT);\n",
		// Each build is of a new commit: a source change.
		"src.txt": fmt.Sprint(time.Now().UnixNano()),
	}
}

// buildFiles pushes files as a new commit of p's feature branch and builds it.
func (q *testQueue) buildFiles(t *testing.T, p schema.Project, files map[string]string) (schema.Build, string) {
	t.Helper()
	ids := gitRepo(t, q.dirs.repos, p.Name, "feature", files)
	return q.build(t, p, ids[len(ids)-1])
}

// wantLog fails the test unless log has each of want and none of not.
func wantLog(t *testing.T, what, log string, want []string, not ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(log, w) {
			t.Errorf("%s: log lacks %q:\n%s", what, w, log)
		}
	}
	for _, n := range not {
		if strings.Contains(log, n) {
			t.Errorf("%s: log has %q:\n%s", what, n, log)
		}
	}
}

var cacheHit = regexp.MustCompile(`Dependencies: cache hit \(package-lock\.json unchanged, npm \d+\.\d+\.\d+, Node \d+\.\d+\.\d+\): install skipped`)

// TestBuildCacheSkipsUnchangedInstalls: a build whose lockfile (and
// tools) are the last successful build's restores its node_modules and
// skips the install; a changed lockfile installs again; a failed build does
// not replace the cache; another project never gets it.
func TestBuildCacheSkipsUnchangedInstalls(t *testing.T) {
	t.Parallel()
	needRegistry(t)
	q := newTestQueue(t, true)
	needIsolated(t, q)
	p := q.project(t, "deps")
	step := func(what string, files map[string]string, status schema.BuildStatus, want []string, not ...string) {
		t.Helper()
		start := time.Now()
		b, log := q.buildFiles(t, p, files)
		if b.Status != status {
			t.Fatalf("%s: build %s (%s), want %s:\n%s", what, b.Status, b.Error, status, log)
		}
		wantLog(t, what, log, want, not...)
		t.Logf("%s: %s", what, time.Since(start).Round(time.Millisecond))
	}
	step("cold", cacheProject("deps", false, false), schema.BuildSucceeded,
		[]string{"Dependencies: cache miss: no cache yet", "Installing dependencies: npm ci", "Installing dependencies: npm ci", "ms says 7200000"})
	b, log := q.buildFiles(t, p, cacheProject("deps", false, false))
	if b.Status != schema.BuildSucceeded || !cacheHit.MatchString(log) {
		t.Fatalf("warm: build %s (%s), want a cache hit:\n%s", b.Status, b.Error, log)
	}
	wantLog(t, "warm", log, []string{"ms says 7200000", "is-number says true"}, "Installing dependencies")

	step("changed lockfile", cacheProject("deps2", false, false), schema.BuildSucceeded,
		[]string{"Dependencies: cache miss: package-lock.json changed", "Installing dependencies: npm ci"})
	// The cache is deps2's now; a failing build of another lockfile
	// does not replace it.
	step("failing", cacheProject("deps", true, false), schema.BuildFailed,
		[]string{"Dependencies: cache miss: package-lock.json changed", "Installing dependencies: npm ci"})
	step("after the failure", cacheProject("deps2", false, false), schema.BuildSucceeded,
		[]string{"cache hit (package-lock.json unchanged", "ms says"}, "Installing dependencies")

	other := q.project(t, "deps-other")
	b, log = q.buildFiles(t, other, cacheProject("deps2", false, false))
	if b.Status != schema.BuildSucceeded {
		t.Fatalf("other project: build %s (%s):\n%s", b.Status, b.Error, log)
	}
	wantLog(t, "other project", log, []string{"Dependencies: cache miss: no cache yet", "Installing dependencies: npm ci"}, "cache hit")
}

// TestBuildCacheNoLockfile: without a lockfile nothing is cached, and the
// log says the install runs every time.
func TestBuildCacheNoLockfile(t *testing.T) {
	t.Parallel()
	needRegistry(t)
	q := newTestQueue(t, true)
	needIsolated(t, q)
	p := q.project(t, "nolock")
	files := cacheProject("nolock", false, false)
	delete(files, "package-lock.json")
	for i := range 2 {
		b, log := q.buildFiles(t, p, files)
		if b.Status != schema.BuildSucceeded {
			t.Fatalf("build %d: %s (%s):\n%s", i, b.Status, b.Error, log)
		}
		wantLog(t, fmt.Sprint("build ", i), log, []string{"Dependencies: no lockfile: install runs every time", "Installing dependencies: npm install"}, "cache hit")
	}
}

// TestBuildCacheFrameworkDirs: what a build writes in .next/cache is there
// for the branch's next build; a failed build does not keep it.
func TestBuildCacheFrameworkDirs(t *testing.T) {
	t.Parallel()
	q := newTestQueue(t, true)
	needIsolated(t, q)
	p := q.project(t, "fw")
	build := func(fail bool) string {
		t.Helper()
		script := `const fs = require('fs');
const f = '.next/cache/count';
const n = fs.existsSync(f) ? Number(fs.readFileSync(f, 'utf8')) + 1 : 1;
fs.mkdirSync('.next/cache', {recursive: true}); fs.writeFileSync(f, String(n));
console.log('framework cache count ' + n);
fs.mkdirSync('dist', {recursive: true}); fs.writeFileSync('dist/index.html', 'x');`
		if fail {
			script += "\nprocess.exit(1);"
		}
		_, log := q.buildFiles(t, p, map[string]string{
			"package.json": `{"name":"fw","scripts":{"build":"node build.js"}}`,
			"build.js":     script + fmt.Sprintf("\n// %d", time.Now().UnixNano()),
		})
		return log
	}
	wantLog(t, "first", build(false), []string{"framework cache count 1"}, "Framework cache: restored")
	wantLog(t, "second", build(false), []string{"Framework cache: restored .next/cache", "framework cache count 2"})
	wantLog(t, "failing", build(true), []string{"framework cache count 3"})
	wantLog(t, "after the failure", build(false), []string{"framework cache count 1"})
}

// TestBuildCachePrunesServerApps: a server app's artifact has its
// dependencies but not its devDependencies, while the cache keeps the whole
// tree for the next build, which skips its install.
func TestBuildCachePrunesServerApps(t *testing.T) {
	t.Parallel()
	needRegistry(t)
	q := newTestQueue(t, true)
	needIsolated(t, q)
	p := q.project(t, "srv")
	for i, what := range []string{"cold", "warm"} {
		b, log := q.buildFiles(t, p, cacheProject("srv", false, true))
		if b.Status != schema.BuildSucceeded {
			t.Fatalf("%s: build %s (%s):\n%s", what, b.Status, b.Error, log)
		}
		wantLog(t, what, log, []string{"Pruning devDependencies: npm prune --omit=dev", "saved)", "is-number says true"})
		if i == 1 && !cacheHit.MatchString(log) {
			t.Errorf("warm: no cache hit:\n%s", log)
		}
		names := artifactNames(t, b.ArtifactPath)
		if !names["node_modules/ms/package.json"] || names["node_modules/is-number/package.json"] || !names["server.js"] {
			t.Errorf("%s: artifact has ms %v, is-number %v, server.js %v; want ms and server.js only",
				what, names["node_modules/ms/package.json"], names["node_modules/is-number/package.json"], names["server.js"])
		}
	}
}

// artifactNames lists the entries of a packed artifact.
func artifactNames(t *testing.T, name string) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	walkArchive(t, name, func(h *tar.Header, _ []byte) { names[strings.TrimPrefix(h.Name, "./")] = true })
	return names
}

// needIsolated skips a cache test where builds run without bubblewrap:
// there the cache is off (TestBuildCacheOffWithoutBubblewrap).
func needIsolated(t *testing.T, q *testQueue) {
	t.Helper()
	if !q.sandbox.Isolated() {
		testenv.Skipf(t, "bubblewrap is not available: the build cache is off")
	}
}

// TestBuildCacheOffWithoutBubblewrap: without bubblewrap no build cache is
// used (a process of the build user could outlive its command and swap
// the paths the server moves), and the log says why.
func TestBuildCacheOffWithoutBubblewrap(t *testing.T) {
	t.Parallel()
	needRegistry(t)
	q := newTestQueueSandbox(t, true, func(sb *Sandbox) { sb.Bwrap = "" })
	p := q.project(t, "nobwrap")
	for i := range 2 {
		b, log := q.buildFiles(t, p, cacheProject("nobwrap", false, false))
		if b.Status != schema.BuildSucceeded {
			t.Fatalf("build %d: %s (%s):\n%s", i, b.Status, b.Error, log)
		}
		wantLog(t, fmt.Sprint("build ", i), log, []string{
			"Dependencies: no cache: the build sandbox (bubblewrap) is not available here",
			"Installing dependencies: npm ci"}, "cache hit", "cache miss")
	}
	if ents, _ := os.ReadDir(filepath.Join(q.cfg.CacheDir, fmt.Sprint(p.ID), modulesCache)); len(ents) > 0 {
		t.Errorf("node_modules cached without bubblewrap: %v", ents)
	}
}

// TestBuildCacheInstallEffects: an install that does more than the key
// covers (a root postinstall script) is not cached, and a changed .npmrc
// is a miss.
func TestBuildCacheInstallEffects(t *testing.T) {
	t.Parallel()
	needRegistry(t)
	q := newTestQueue(t, true)
	needIsolated(t, q)
	p := q.project(t, "effects")
	build := func(what string, files map[string]string, want []string, not ...string) {
		t.Helper()
		b, log := q.buildFiles(t, p, files)
		if b.Status != schema.BuildSucceeded {
			t.Fatalf("%s: build %s (%s):\n%s", what, b.Status, b.Error, log)
		}
		wantLog(t, what, log, want, not...)
	}
	withNpmrc := func(npmrc string) map[string]string {
		f := cacheProject("effects", false, false)
		f[".npmrc"] = npmrc
		return f
	}
	build("cold", withNpmrc("fund=false\n"), []string{"Dependencies: cache miss: no cache yet", "Installing dependencies"})
	build("warm", withNpmrc("fund=false\n"), []string{"cache hit"}, "Installing dependencies")
	build(".npmrc changed", withNpmrc("fund=false\naudit=false\n"),
		[]string{"Dependencies: cache miss: .npmrc changed", "Installing dependencies"}, "cache hit")

	f := withNpmrc("fund=false\naudit=false\n")
	f["package.json"] = strings.Replace(f["package.json"], `"scripts":{`, `"scripts":{"postinstall":"node -e 0",`, 1)
	for _, what := range []string{"postinstall", "postinstall again"} {
		build(what, f, []string{
			"Dependencies: no cache: package.json has a postinstall script, which the install runs",
			"Installing dependencies: npm ci"}, "cache hit", "cache miss")
	}
}

// TestBuildCacheKeepsDevToolsOfStart: a start script run by a tool from
// devDependencies (here a local file: package with a bin) keeps its
// devDependencies in the artifact; TestBuildCachePrunesServerApps has a
// `node server.js` app pruned.
func TestBuildCacheKeepsDevToolsOfStart(t *testing.T) {
	t.Parallel()
	q := newTestQueue(t, true)
	p := q.project(t, "devstart")
	b, log := q.buildFiles(t, p, map[string]string{
		"package.json": `{"name":"devstart","version":"1.0.0","scripts":{"start":"PORT_HINT=1 devtool server.js"},
  "devDependencies":{"devtool":"file:tools/devtool"}}`,
		"package-lock.json": `{
  "name": "devstart", "version": "1.0.0", "lockfileVersion": 3, "requires": true,
  "packages": {
    "": {"name": "devstart", "version": "1.0.0", "devDependencies": {"devtool": "file:tools/devtool"}},
    "node_modules/devtool": {"resolved": "tools/devtool", "link": true},
    "tools/devtool": {"version": "1.0.0", "dev": true, "bin": {"devtool": "cli.js"}}
  }
}
`,
		"tools/devtool/package.json": `{"name":"devtool","version":"1.0.0","bin":{"devtool":"cli.js"}}`,
		"tools/devtool/cli.js":       "#!/usr/bin/env node\nrequire(require('path').resolve(process.argv[2]));\n",
		"server.js":                  "require('http').createServer((q, s) => s.end('ok')).listen(process.env.PORT);\n",
	})
	if b.Status != schema.BuildSucceeded {
		t.Fatalf("build %s (%s):\n%s", b.Status, b.Error, log)
	}
	wantLog(t, "dev tool start", log, []string{"devDependencies kept: the start command runs devtool"}, "Pruning devDependencies")
	if names := artifactNames(t, b.ArtifactPath); !names["node_modules/devtool"] || !names["node_modules/.bin/devtool"] {
		t.Errorf("artifact lacks the devDependency the start script runs: devtool %v, .bin/devtool %v",
			names["node_modules/devtool"], names["node_modules/.bin/devtool"])
	}
}

// TestStartProgram: the program a start command runs, through the
// package.json scripts it names.
func TestStartProgram(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"scripts":{
  "start":"NODE_OPTIONS=--x node dist/server.js","dev":"tsx src/server.ts","serve":"npm run dev",
  "prod":"cross-env A=1 nest start"}}`), 0o644)
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for start, want := range map[string]string{
		"node server.js":          "node",
		"PORT=1 HOST=x node a.js": "node",
		"npm start":               "node",
		"npm run dev":             "tsx",
		"pnpm run serve":          "tsx",
		"yarn dev":                "tsx",
		"ts-node src/index.ts":    "ts-node",
		"nodemon server.js":       "nodemon",
		"./bin/www.js":            "./bin/www.js",
		"npm run missing":         "npm",
		"exec node server.js":     "node",
		`node_modules/.bin/next start -p "$PORT"`: "node_modules/.bin/next",
	} {
		got := startProgram(root, start)
		if got != want {
			t.Errorf("startProgram(%q) = %q, want %q", start, got, want)
		}
		if runsNode(got) != (want == "node" || want == "./bin/www.js") {
			t.Errorf("runsNode(%q) = %v", got, runsNode(got))
		}
	}
}

// TestBuildCacheConcurrentTakes: builds of one project saving and taking
// the branch's node_modules at once never take a tree under another
// tree's key.
func TestBuildCacheConcurrentTakes(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	q := &Queue{cfg: Config{CacheDir: filepath.Join(base, "cache")}, log: slog.New(slog.DiscardHandler)}
	keys := []depsKey{{Lockfile: "package-lock.json", LockSHA: "a"}, {Lockfile: "package-lock.json", LockSHA: "b"}}
	var wg sync.WaitGroup
	var build atomic.Int64
	var took atomic.Int64
	for w := range 8 {
		wg.Go(func() {
			key := keys[w%2]
			for range 40 {
				id := build.Add(1)
				c := q.newBuildCache(1, id, "feature", false, Sandbox{Bwrap: "/usr/bin/bwrap"})
				ws := filepath.Join(base, fmt.Sprint("ws", id))
				src := filepath.Join(ws, "src")
				if err := os.MkdirAll(src, 0o755); err != nil {
					t.Error(err)
					return
				}
				ok, _, err := c.takeModules(c.slot, key, src)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					took.Add(1)
					data, err := os.ReadFile(filepath.Join(src, "node_modules", "tree"))
					if err != nil || string(data) != key.LockSHA {
						t.Errorf("took the tree of %q (%v) under the key %q", data, err, key.LockSHA)
					}
				}
				// Save: a tree made under key, staged with its key.
				stage := filepath.Join(q.cfg.CacheDir, "1", modulesCache, fmt.Sprintf(".build-%d", id))
				if err := os.MkdirAll(filepath.Join(stage, "node_modules"), 0o700); err != nil {
					t.Error(err)
					return
				}
				os.WriteFile(filepath.Join(stage, "node_modules", "tree"), []byte(key.LockSHA), 0o600)
				if err := writeDepsKey(stage, key); err != nil {
					t.Error(err)
					return
				}
				c.staged[modulesCache] = stage
				c.commit()
				os.RemoveAll(ws)
			}
		})
	}
	wg.Wait()
	if took.Load() == 0 {
		t.Error("no build took an entry")
	}
	t.Logf("%d takes", took.Load())
}
