package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func TestFunctionRouteOf(t *testing.T) {
	cases := []struct {
		file string
		want string // route path; "" when the file is no route
		err  string // part of the error
	}{
		{"api/hello.js", "/api/hello", ""},
		{"api/time.mjs", "/api/time", ""},
		{"api/legacy.cjs", "/api/legacy", ""},
		{"api/typed.ts", "/api/typed", ""},
		{"api/typed.mts", "/api/typed", ""},
		{"api/index.js", "/api", ""},
		{"api/users/index.js", "/api/users", ""},
		{"api/users/[id].js", "/api/users/:id", ""},
		{"api/[org]/repos/[repo].ts", "/api/:org/repos/:repo", ""},
		{"api/hello world.js", "/api/hello world", ""},
		{"api/_helper.js", "", ""},
		{"api/.hidden.js", "", ""},
		{"api/_lib/db.js", "", ""},
		{"api/data.json", "", ""},
		{"api/types.d.ts", "", ""},
		{"api/README.md", "", ""},
		{"api/node_modules/x/index.js", "", ""},
		{"lib/hello.js", "", ""},
		{"api/[...slug].js", "", "catch-all"},
		{"api/[[...slug]].js", "", "catch-all"},
		{"api/[a-b].js", "", "not a dynamic segment"},
		{"api/x[id].js", "", "not a dynamic segment"},
		{"api/[id]/[id].js", "", "appears twice"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			r, ok, err := FunctionRouteOf(c.file)
			if c.err != "" {
				if err == nil || !errors.Is(err, ErrInvalidFunctions) || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), c.file) {
					t.Fatalf("err = %v, want one naming %s and saying %q", err, c.file, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := map[bool]string{true: r.Path}[ok]; got != c.want {
				t.Fatalf("route = %q (ok %v), want %q", got, ok, c.want)
			}
		})
	}
}

func TestFindFunctions(t *testing.T) {
	static := Plan{Kind: KindStatic, OutputDir: "."}
	cases := []struct {
		name  string
		files map[string]string
		plan  Plan
		want  []string // routes in order; nil: no functions
		ts    bool
		err   string
	}{
		{"none", map[string]string{"index.html": "x"}, static, nil, false, ""},
		{"helpers only", map[string]string{"api/_db.js": "x"}, static, nil, false, ""},
		{"static site", map[string]string{
			"index.html": "x", "api/hello.js": "x", "api/time.mjs": "x", "api/_db.js": "x",
			"api/users/[id].js": "x", "api/users/me.js": "x", "api/users/index.js": "x",
		}, static, []string{"/api/hello", "/api/time", "/api/users", "/api/users/me", "/api/users/:id"}, false, ""},
		{"typescript", map[string]string{"api/a.ts": "x"}, static, []string{"/api/a"}, true, ""},
		{"npm build", map[string]string{"api/a.js": "x"}, Plan{Kind: KindNPM}, []string{"/api/a"}, false, ""},
		{"next has its own", map[string]string{"api/a.js": "x"}, Plan{Kind: KindNextJS, Start: "next start"}, nil, false, ""},
		{"server app serves its own", map[string]string{"api/a.js": "x"}, Plan{Kind: KindNode, Start: "node ."}, nil, false, ""},
		{"same route twice", map[string]string{"api/a.js": "x", "api/a.ts": "x"}, static, nil, false, "api/a.js and api/a.ts both answer /api/a"},
		{"index and file", map[string]string{"api/u.js": "x", "api/u/index.js": "x"}, static, nil, false, "both answer /api/u"},
		{"two parameters in one place", map[string]string{"api/[a].js": "x", "api/[b].js": "x"}, static, nil, false, "both answer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fns, err := FindFunctions(tree(t, c.files), c.plan)
			if c.err != "" {
				if !errors.Is(err, ErrInvalidFunctions) || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.want == nil {
				if fns != nil {
					t.Fatalf("found %s, want none", fns.Describe())
				}
				return
			}
			if fns == nil || fns.Describe() != strings.Join(c.want, ", ") || fns.TypeScript != c.ts {
				t.Fatalf("found %+v, want %v (typescript %v)", fns, c.want, c.ts)
			}
		})
	}
}

func TestFindFunctionsIgnoresSymlinkedAPI(t *testing.T) {
	dir := tree(t, map[string]string{"index.html": "x", "elsewhere/a.js": "x"})
	symlink(t, "elsewhere", filepath.Join(dir, "api"))
	fns, err := FindFunctions(dir, Plan{Kind: KindStatic, OutputDir: "."})
	if err != nil || fns != nil {
		t.Fatalf("FindFunctions = %v, %v; want nothing for a symlinked api/", fns, err)
	}
}

// matchRoute is the runner's matching, for the properties: the first route
// whose segments match.
func matchRoute(routes []FunctionRoute, segs []string) (FunctionRoute, bool) {
outer:
	for _, r := range routes {
		if len(r.Segments) != len(segs) {
			continue
		}
		for i, s := range r.Segments {
			if s.Param == "" && s.Static != segs[i] {
				continue outer
			}
		}
		return r, true
	}
	return FunctionRoute{}, false
}

// TestFunctionRoutesProperty: for any api/ tree that FindFunctions accepts,
// a request for a route's own path (its parameters filled with anything)
// reaches that route's file unless a route with a fixed name in a
// parameter's place claims it, and every route path is /api or below it.
func TestFunctionRoutesProperty(t *testing.T) {
	seg := rapid.SampledFrom([]string{"a", "b", "users", "index", "[id]", "[slug]", "_x", "[...all]"})
	ext := rapid.SampledFrom([]string{".js", ".ts", ".mjs", ".json", ".d.ts"})
	rapid.Check(t, func(rt *rapid.T) {
		files := map[string]string{}
		for _, p := range rapid.SliceOfN(rapid.SliceOfN(seg, 1, 3), 1, 6).Draw(rt, "files") {
			files["api/"+strings.Join(p, "/")+ext.Draw(rt, "ext")] = "x"
		}
		dir, err := os.MkdirTemp("", "fns")
		if err != nil {
			rt.Fatal(err)
		}
		defer os.RemoveAll(dir)
		for name := range files {
			p := filepath.Join(dir, name)
			if os.MkdirAll(filepath.Dir(p), 0o755) != nil || os.WriteFile(p, nil, 0o644) != nil {
				rt.Skip("a file and a folder of the same name")
			}
		}
		fns, err := FindFunctions(dir, Plan{Kind: KindStatic, OutputDir: "."})
		if err != nil {
			if !errors.Is(err, ErrInvalidFunctions) {
				rt.Fatal(err)
			}
			return
		}
		if fns == nil {
			return
		}
		for _, r := range fns.Routes {
			if r.Path != "/api" && !strings.HasPrefix(r.Path, "/api/") {
				rt.Fatalf("route %s of %s is outside /api", r.Path, r.File)
			}
			segs := make([]string, len(r.Segments))
			for i, s := range r.Segments {
				segs[i] = s.Static
				if s.Param != "" {
					segs[i] = "value-" + s.Param
				}
			}
			got, ok := matchRoute(fns.Routes, segs)
			if !ok || got.File != r.File {
				rt.Fatalf("%v reaches %s, want %s (routes %s)", segs, got.File, r.File, fns.Describe())
			}
		}
	})
}

func TestCheckNode(t *testing.T) {
	ts := &Functions{TypeScript: true}
	for _, c := range []struct {
		version string
		ok      bool
	}{
		{"v20.20.2", false}, {"v22.5.1", false}, {"v22.6.0", true}, {"v22.18.0", true}, {"v24.1.0", true}, {"nonsense", false},
	} {
		err := ts.CheckNode(c.version)
		if (err == nil) != c.ok {
			t.Errorf("CheckNode(%s) = %v, want ok %v", c.version, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "engines.node") && c.version != "nonsense" {
			t.Errorf("CheckNode(%s) = %v, want advice on engines.node", c.version, err)
		}
	}
	if err := (&Functions{}).CheckNode("v18.0.0"); err != nil {
		t.Errorf("JavaScript functions on Node 18: %v", err)
	}
}

func TestPlanFunctionsInstall(t *testing.T) {
	for _, c := range []struct {
		name  string
		files map[string]string
		s     Settings
		want  []string
	}{
		{"no package.json", map[string]string{"index.html": "x"}, Settings{}, nil},
		{"no dependencies", map[string]string{"package.json": `{}`}, Settings{}, nil},
		{"dependencies", map[string]string{"package.json": `{"dependencies":{"ms":"2"}}`}, Settings{}, []string{"npm", "install"}},
		{"lockfile", map[string]string{"package.json": `{"dependencies":{"ms":"2"}}`, "package-lock.json": "{}"}, Settings{}, []string{"npm", "ci"}},
		{"setting", map[string]string{"package.json": `{"dependencies":{"ms":"2"}}`}, Settings{InstallCommand: "npm i"}, []string{"sh", "-c", "npm i"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := Plan{Kind: KindStatic, OutputDir: "."}
			if err := PlanFunctionsInstall(tree(t, c.files), &p, c.s); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.Install, c.want) {
				t.Fatalf("install = %v, want %v", p.Install, c.want)
			}
		})
	}
}

func TestStageFunctions(t *testing.T) {
	pkg := func(deps string) string { return `{"name":"x","dependencies":{` + deps + `}}` }
	files := map[string]string{
		"index.html":         "<h1>home</h1>",
		"api/hello.js":       "export default (req, res) => res.send('hi')",
		"api/_db.js":         "export const db = 1",
		"api/data/list.json": "[]",
		"package.json":       `{"type":"module","dependencies":{"a":"1","@s/b":"1","missing":"1"},"devDependencies":{"vite":"1"}}`,
		// a needs c, which npm nested under a because of a conflict
		// with the top-level c that nothing in production needs.
		"node_modules/a/package.json":                pkg(`"c":"2"`),
		"node_modules/a/index.js":                    "a",
		"node_modules/a/node_modules/c/package.json": pkg(""),
		"node_modules/c/package.json":                pkg(""),
		"node_modules/@s/b/package.json":             `{"peerDependencies":{"a":"1"},"optionalDependencies":{"d":"1"}}`,
		"node_modules/d/package.json":                pkg(""),
		"node_modules/vite/package.json":             pkg(`"esbuild":"1"`),
		"node_modules/esbuild/package.json":          pkg(""),
		"node_modules/.bin/vite":                     "#!/bin/sh",
		"secret.txt":                                 "outside the functions",
	}
	plan := Plan{Kind: KindStatic, OutputDir: "."}

	t.Run("output at the root", func(t *testing.T) {
		dir := tree(t, files)
		symlink(t, "../secret.txt", filepath.Join(dir, "api", "leak.txt"))
		symlink(t, "/etc", filepath.Join(dir, "node_modules", "a", "etc"))
		fns, err := FindFunctions(dir, plan)
		if err != nil {
			t.Fatal(err)
		}
		if err := fns.Stage(dir, "."); err != nil {
			t.Fatal(err)
		}
		got := fileTree(t, dir)
		fn := ".minivercel/functions/"
		for _, want := range []string{
			fn + "runner.mjs", fn + "routes.json", fn + "package.json", fn + "api/hello.js", fn + "api/_db.js", fn + "api/data/list.json",
			fn + "node_modules/a/index.js", fn + "node_modules/a/node_modules/c/package.json", fn + "node_modules/@s/b/package.json",
			fn + "node_modules/d/package.json", "index.html",
		} {
			if _, ok := got[want]; !ok {
				t.Errorf("%s is missing after staging", want)
			}
		}
		for _, bad := range []string{"api", "node_modules", fn + "node_modules/vite", fn + "node_modules/esbuild",
			fn + "node_modules/c", fn + "node_modules/.bin", fn + "api/leak.txt", fn + "node_modules/a/etc"} {
			if _, ok := got[bad]; ok {
				t.Errorf("%s is in the output", bad)
			}
		}
		if !strings.Contains(got[fn+"routes.json"], `/api/hello`) {
			t.Errorf("routes.json = %s", got[fn+"routes.json"])
		}
	})

	t.Run("built output", func(t *testing.T) {
		dir := tree(t, files)
		writeFile(t, filepath.Join(dir, "dist", "index.html"), "built", 0o644)
		fns, err := FindFunctions(dir, Plan{Kind: KindNPM})
		if err != nil {
			t.Fatal(err)
		}
		if err := fns.Stage(dir, "dist"); err != nil {
			t.Fatal(err)
		}
		got := fileTree(t, dir)
		if _, ok := got["dist/.minivercel/functions/api/hello.js"]; !ok {
			t.Error("the function was not staged into dist/")
		}
		if _, ok := got["api/hello.js"]; !ok {
			t.Error("the source api/ was removed though it is not in the output")
		}
	})
}

// TestStageFunctionsPnpmLayout: with pnpm's symlinked node_modules, the
// links and the directories they lead to are staged, and a dependency's own
// dependencies are found next to its real directory, as Node finds them.
func TestStageFunctionsPnpmLayout(t *testing.T) {
	store := "node_modules/.pnpm/"
	dir := tree(t, map[string]string{
		"index.html":   "x",
		"api/a.js":     "x",
		"package.json": `{"dependencies":{"a":"1"}}`,
		store + "a@1/node_modules/a/package.json":       `{"dependencies":{"b":"1"}}`,
		store + "b@1/node_modules/b/package.json":       `{}`,
		store + "vite@1/node_modules/vite/package.json": `{}`,
		"outside/package.json":                          `{}`,
	})
	symlink(t, ".pnpm/a@1/node_modules/a", filepath.Join(dir, "node_modules", "a"))
	symlink(t, "../../b@1/node_modules/b", filepath.Join(dir, "node_modules", ".pnpm", "a@1", "node_modules", "b"))
	symlink(t, ".pnpm/vite@1/node_modules/vite", filepath.Join(dir, "node_modules", "vite"))
	fns, err := FindFunctions(dir, Plan{Kind: KindNPM})
	if err != nil {
		t.Fatal(err)
	}
	if err := fns.Stage(dir, "dist"); err != nil {
		t.Fatal(err)
	}
	got := fileTree(t, filepath.Join(dir, "dist", ".minivercel", "functions"))
	for name, want := range map[string]string{
		"node_modules/a":                          "link -> .pnpm/a@1/node_modules/a",
		"node_modules/.pnpm/a@1/node_modules/b":   "link -> ../../b@1/node_modules/b",
		store + "a@1/node_modules/a/package.json": "",
		store + "b@1/node_modules/b/package.json": "",
	} {
		if v, ok := got[name]; !ok || want != "" && v != want {
			t.Errorf("%s = %q, want %q", name, v, want)
		}
	}
	for name := range got {
		if strings.Contains(name, "vite") {
			t.Errorf("the dev dependency %s was staged", name)
		}
	}
	if _, _, err := PackIn(context.Background(), dir, "dist", filepath.Join(t.TempDir(), "a.tar.gz"), PackOptions{MTime: time.Unix(1, 0)}); err != nil {
		t.Fatalf("the staged links do not pack: %v", err)
	}
}

func TestFunctionsOnlyPlan(t *testing.T) {
	undetectable := fmt.Errorf("detect: nothing: %w", ErrUndetectable)
	t.Run("functions only", func(t *testing.T) {
		dir := tree(t, map[string]string{"api/ping.js": "x", functionsOnlyDir + "/planted.html": "x"})
		p, err := FunctionsOnlyPlan(dir, undetectable)
		if err != nil || p.Kind != KindStatic || p.OutputDir != functionsOnlyDir {
			t.Fatalf("FunctionsOnlyPlan = %+v, %v", p, err)
		}
		if entries, err := os.ReadDir(filepath.Join(dir, functionsOnlyDir)); err != nil || len(entries) != 0 {
			t.Fatalf("the output is not empty: %v, %v", entries, err)
		}
		if err := ResolveOutput(dir, &p); err != nil {
			t.Fatal(err)
		}
		fns, err := FindFunctions(dir, p)
		if err != nil || fns == nil {
			t.Fatal(fns, err)
		}
		if err := fns.Stage(dir, p.OutputDir); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, functionsOnlyDir, FunctionsDir, "api", "ping.js")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("nothing at all", func(t *testing.T) {
		if _, err := FunctionsOnlyPlan(tree(t, map[string]string{"README": "x", "api/_x.js": "x"}), undetectable); err != undetectable {
			t.Fatalf("err = %v, want Detect's", err)
		}
	})
	t.Run("another error", func(t *testing.T) {
		other := fmt.Errorf("detect: %w", ErrInvalidSettings)
		if _, err := FunctionsOnlyPlan(tree(t, map[string]string{"api/ping.js": "x"}), other); err != other {
			t.Fatalf("err = %v, want Detect's", err)
		}
	})
	t.Run("invalid functions", func(t *testing.T) {
		if _, err := FunctionsOnlyPlan(tree(t, map[string]string{"api/[...x].js": "x"}), undetectable); !errors.Is(err, ErrInvalidFunctions) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestStageRefusesOversizedFunctions(t *testing.T) {
	dir := tree(t, map[string]string{"index.html": "x", "api/a.js": "x"})
	big, err := os.Create(filepath.Join(dir, "api", "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: the size counts, the disk does not.
	if err := big.Truncate(maxFunctionsBytes + 1); err != nil {
		t.Fatal(err)
	}
	big.Close()
	fns, err := FindFunctions(dir, Plan{Kind: KindStatic, OutputDir: "."})
	if err != nil {
		t.Fatal(err)
	}
	if err := fns.Stage(dir, "."); !errors.Is(err, ErrInvalidFunctions) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("Stage = %v, want a size error", err)
	}
}

// TestStageRefusesAHugePackageJSON: a package.json the build made sparse and
// huge counts against the functions' size limit: it is neither copied nor
// read into the server's memory.
func TestStageRefusesAHugePackageJSON(t *testing.T) {
	dir := tree(t, map[string]string{"index.html": "x", "api/a.js": "x", "package.json": "{}"})
	if err := os.Truncate(filepath.Join(dir, "package.json"), maxFunctionsBytes+1); err != nil {
		t.Fatal(err)
	}
	fns, err := FindFunctions(dir, Plan{Kind: KindStatic, OutputDir: "."})
	if err != nil {
		t.Fatal(err)
	}
	if err := fns.Stage(dir, "."); !errors.Is(err, ErrInvalidFunctions) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("Stage = %v, want a size error", err)
	}
	var m dependencyManifest
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if err := readManifest(root, "package.json", &m); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("readManifest of a huge package.json = %v, want refused", err)
	}
}
