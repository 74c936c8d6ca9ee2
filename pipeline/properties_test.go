package pipeline

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"minivercel/edge"
	"minivercel/schema"
	"minivercel/secret"
)

// fewChecks makes rapid run n checks in this test, because each one is a
// real build; an explicit -rapid.checks on the command line still wins.
func fewChecks(t *testing.T, n int) {
	t.Helper()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "rapid.checks" })
	if set {
		return
	}
	f := flag.Lookup("rapid.checks")
	old := f.Value.String()
	if err := f.Value.Set(strconv.Itoa(n)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Value.Set(old) })
}

// recordingActivator activates a build by recording its deployment, as the
// edge does once a build serves, without serving anything.
type recordingActivator struct{ store *schema.Store }

func (a recordingActivator) Activate(ctx context.Context, b schema.Build, _ func(string)) error {
	_, err := a.store.RecordActivation(ctx, b.ProjectID, b.ID)
	return err
}

// Deactivate has nothing to stop: nothing is served.
func (recordingActivator) Deactivate(string) {}

// buildEnv runs real builds (real git, PostgreSQL, sandbox) in the test's
// own goroutine: the queue's run, not a River worker, so a property check
// waits for nothing.
type buildEnv struct {
	*testQueue
	vars  *secret.Vars
	owner int64
}

// newBuildEnv is the test queue with the real variables service and an
// activator that records deployments; sandbox commands time out after
// timeout (zero: DefaultTimeout).
func newBuildEnv(t *testing.T, timeout time.Duration) *buildEnv {
	t.Helper()
	tq := newTestQueue(t, false)
	keys, err := secret.LoadKeyring("", filepath.Join(t.TempDir(), "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	e := &buildEnv{testQueue: tq, vars: secret.NewVars(tq.store, keys)}
	sb := tq.sandbox
	sb.Timeout = timeout
	q, err := NewQueue(Config{ReposDir: tq.dirs.repos, WorkDir: tq.dirs.work, ArtifactsDir: tq.dirs.artifacts, Env: e.vars},
		tq.store, NewBroker(tq.store, nil), recordingActivator{tq.store}, sb, false)
	if err != nil {
		t.Fatal(err)
	}
	e.Queue = q
	u, err := tq.store.CreateUser(context.Background(), "builder", true)
	if err != nil {
		t.Fatal(err)
	}
	e.owner = u.ID
	return e
}

// project creates a project (production branch main) whose build is the
// shell command build, with output directory out.
func (e *buildEnv) project(t *testing.T, name, build, out string) schema.Project {
	t.Helper()
	ctx := context.Background()
	p, _, err := e.store.EnsureProject(ctx, name, e.owner)
	if err != nil {
		t.Fatal(err)
	}
	return e.settle(t, p, "", build, out)
}

// settle changes a project's install and build commands and output dir.
func (e *buildEnv) settle(t *testing.T, p schema.Project, install, build, out string) schema.Project {
	t.Helper()
	ps := p.Settings()
	ps.InstallCommand, ps.BuildCommand, ps.OutputDir = install, build, out
	p, err := e.store.UpdateProjectSettings(context.Background(), p.ID, ps)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// build pushes a commit with files to branch and runs its build to the end.
func (e *buildEnv) build(t *testing.T, p schema.Project, branch string, files map[string]string) (schema.Build, []string) {
	t.Helper()
	ctx := context.Background()
	ids := gitRepo(t, e.dirs.repos, p.Name, branch, files)
	b, err := e.Enqueue(ctx, schema.NewBuild{ProjectID: p.ID, Branch: branch, CommitSHA: ids[len(ids)-1]})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.run(ctx, b.ID, ""); err != nil {
		t.Fatalf("run build %d: %v", b.ID, err)
	}
	if b, err = e.store.BuildByID(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	lines, err := e.store.LogLines(ctx, b.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	log := make([]string, len(lines))
	for i, l := range lines {
		log[i] = l.Line
	}
	return b, log
}

// extract extracts a build's artifact as the edge does and returns where.
func extract(t *testing.T, b schema.Build) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "site")
	if err := edge.Extract(b.ArtifactPath, b.ArtifactSHA256, dst); err != nil {
		t.Fatalf("extract build %d: %v", b.ID, err)
	}
	return dst
}

// projectVar is one variable as a user sets it.
type projectVar struct{ name, target, value string }

// visible is what a build for target should see of vars set in this order:
// the values for that target and for all, the target's own winning.
func visible(vars []projectVar, target string) map[string]string {
	byKey := map[[2]string]string{} // a later Set of the same name and target replaces
	for _, v := range vars {
		byKey[[2]string{v.name, v.target}] = v.value
	}
	want := map[string]string{}
	for k, v := range byKey {
		if k[1] == schema.TargetAll {
			if _, own := byKey[[2]string{k[0], target}]; !own {
				want[k[0]] = v
			}
		} else if k[1] == target {
			want[k[0]] = v
		}
	}
	return want
}

// TestBuildsSeeTheirTargetsVariables is the seed's Property 4, variable
// propagation to builds: for any set of variables with targets production,
// preview and all, a build of the production branch sees exactly the
// production and all values (a variable for production wins over one of the
// same name for all), a build of any other branch sees preview and all, and
// neither sees anything of the server's own environment.
func TestBuildsSeeTheirTargetsVariables(t *testing.T) {
	e := newBuildEnv(t, 0)
	fewChecks(t, 10)
	// Stands for the server's own secrets (database URL, master key).
	t.Setenv("MINIVERCEL_SERVER_SECRET", "server-only")
	ctx := context.Background()
	n := 0
	rapid.Check(t, func(rt *rapid.T) {
		n++
		p := e.project(t, fmt.Sprintf("vars-%d", n), "mkdir -p out && env -0 > out/env", "out")
		vars := rapid.SliceOfN(rapid.Custom(func(rt *rapid.T) projectVar {
			return projectVar{
				name:   rapid.SampledFrom([]string{"API_URL", "TOKEN", "MODE", "FLAG"}).Draw(rt, "name"),
				target: rapid.SampledFrom([]string{schema.TargetProduction, schema.TargetPreview, schema.TargetAll}).Draw(rt, "target"),
				value:  rapid.StringMatching(`[ -~é€]{0,12}`).Draw(rt, "value"),
			}
		}), 0, 8).Draw(rt, "vars")
		for _, v := range vars {
			if _, err := e.vars.Set(ctx, p.ID, v.name, v.target, v.value); err != nil {
				rt.Fatalf("set %+v: %v", v, err)
			}
		}
		for branch, target := range map[string]string{"main": schema.TargetProduction, "feature": schema.TargetPreview} {
			b, log := e.build(t, p, branch, map[string]string{"README": "x"})
			if b.Status != schema.BuildSucceeded {
				rt.Fatalf("build of %s: %s %q\n%s", branch, b.Status, b.Error, strings.Join(log, "\n"))
			}
			raw, err := os.ReadFile(filepath.Join(extract(t, b), "env"))
			if err != nil {
				rt.Fatal(err)
			}
			got := map[string]string{}
			for _, kv := range strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00") {
				k, v, _ := strings.Cut(kv, "=")
				got[k] = v
			}
			want := visible(vars, target)
			// What the platform itself gives a build, and what sh adds.
			platform := map[string]bool{"MINIVERCEL_BRANCH": true, "MINIVERCEL_COMMIT": true, "NODE_ENV": true, "PWD": true, "SHLVL": true, "OLDPWD": true, "_": true}
			for _, kv := range MinimalEnv("/home") {
				k, _, _ := strings.Cut(kv, "=")
				platform[k] = true
			}
			for k, v := range got {
				if w, ok := want[k]; ok {
					if v != w {
						rt.Errorf("%s build: %s=%q, want %q", branch, k, v, w)
					}
				} else if !platform[k] {
					rt.Errorf("%s build sees %s=%q, which is neither its target's variable nor the platform's", branch, k, v)
				}
			}
			for k := range want {
				if _, ok := got[k]; !ok {
					rt.Errorf("%s build lacks %s", branch, k)
				}
			}
			if got["MINIVERCEL_BRANCH"] != branch {
				rt.Errorf("%s build: MINIVERCEL_BRANCH=%q", branch, got["MINIVERCEL_BRANCH"])
			}
		}
	})
}

// fileTree describes every path under dir: "dir", "link -> target", or a
// file's mode bits and content.
func fileTree(t testing.TB, dir string) map[string]string {
	t.Helper()
	tree := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.IsDir():
			tree[rel] = "dir"
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			tree[rel] = "link -> " + target
			return err
		default:
			fi, err := d.Info()
			if err != nil {
				return err
			}
			b, err := os.ReadFile(p)
			tree[rel] = fmt.Sprintf("%v %q", fi.Mode().Perm()&0o100, b)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// TestArtifactLifecycle is the seed's Property 11, artifact lifecycle: for
// any build output, the packed artifact's SHA-256 is the one Pack reports,
// it extracts to exactly that output (paths, contents, executable bits,
// relative symlinks), and an artifact with any one byte changed is refused.
func TestArtifactLifecycle(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		base, err := os.MkdirTemp("", "mvart")
		if err != nil {
			rt.Fatal(err)
		}
		defer os.RemoveAll(base)
		out := filepath.Join(base, "out")
		dirs := []string{"."}
		for i, d := range rapid.SliceOfN(rapid.StringMatching(`[a-z]{1,6}`), 0, 3).Draw(rt, "dirs") {
			dirs = append(dirs, filepath.Join(dirs[rapid.IntRange(0, i).Draw(rt, "parent")], d))
		}
		var files []string
		for i := range rapid.IntRange(1, 8).Draw(rt, "files") {
			rel := filepath.Join(rapid.SampledFrom(dirs).Draw(rt, "dir"), fmt.Sprintf("f%d.%s", i, rapid.SampledFrom([]string{"html", "js", "bin"}).Draw(rt, "ext")))
			mode := os.FileMode(rapid.SampledFrom([]int{0o644, 0o755}).Draw(rt, "mode"))
			os.MkdirAll(filepath.Join(out, filepath.Dir(rel)), 0o755)
			if err := os.WriteFile(filepath.Join(out, rel), rapid.SliceOfN(rapid.Byte(), 0, 3000).Draw(rt, "content"), mode); err != nil {
				rt.Fatal(err)
			}
			os.Chmod(filepath.Join(out, rel), mode) // not masked by the umask
			files = append(files, rel)
		}
		if rapid.Bool().Draw(rt, "symlink") {
			target := rapid.SampledFrom(files).Draw(rt, "target")
			if err := os.Symlink(filepath.Base(target), filepath.Join(out, filepath.Dir(target), "link")); err != nil {
				rt.Fatal(err)
			}
		}
		artifact := filepath.Join(base, "a.tar.gz")
		sum, size, err := Pack(out, artifact)
		if err != nil {
			rt.Fatalf("Pack: %v", err)
		}
		data, err := os.ReadFile(artifact)
		if err != nil || int64(len(data)) != size {
			rt.Fatalf("artifact of %d bytes, Pack said %d (%v)", len(data), size, err)
		}
		extracted := filepath.Join(base, "site")
		if err := edge.Extract(artifact, sum, extracted); err != nil {
			rt.Fatalf("Extract: %v", err)
		}
		if got, want := fileTree(t, extracted), fileTree(t, out); fmt.Sprint(got) != fmt.Sprint(want) {
			rt.Fatalf("extracted %v\nwant %v", got, want)
		}

		i := rapid.IntRange(0, len(data)-1).Draw(rt, "offset")
		bad := bytes.Clone(data)
		bad[i] ^= byte(rapid.IntRange(1, 255).Draw(rt, "flip"))
		if err := os.WriteFile(artifact, bad, 0o644); err != nil {
			rt.Fatal(err)
		}
		err = edge.Extract(artifact, sum, filepath.Join(base, "tampered"))
		if !errors.Is(err, edge.ErrChecksumMismatch) {
			rt.Fatalf("artifact with byte %d changed: Extract = %v, want ErrChecksumMismatch", i, err)
		}
		if _, err := os.Lstat(filepath.Join(base, "tampered")); !errors.Is(err, fs.ErrNotExist) {
			rt.Fatalf("a refused artifact left %v", err)
		}
	})
}

// TestFailedBuildIsReportedAndLeavesProductionAlone is the seed's Property
// 27, build error reporting: whatever step fails (install, build, a missing
// output, a timeout), the build is recorded failed with a one-line reason
// naming the step, its log ends with a line starting "error:" that gives
// the reason, and the deployment serving before stays the active one.
func TestFailedBuildIsReportedAndLeavesProductionAlone(t *testing.T) {
	e := newBuildEnv(t, 0)
	// The timeout case gets a queue of its own whose commands time out
	// quickly; every other command has DefaultTimeout, so the outcome of
	// the others never depends on the machine's speed.
	quick := newBuildEnv(t, 500*time.Millisecond)
	fewChecks(t, 12)
	ctx := context.Background()

	type failure struct {
		stage          schema.Stage
		install, build string
		out            string
		quick          bool
	}
	failures := map[string]failure{
		"install": {schema.StageInstall, "echo installing; exit 3", "true", "out", false},
		"build":   {schema.StageBuild, "", "echo compiling; echo 'no such module' >&2; exit 4", "out", false},
		"output":  {schema.StageBuild, "", "mkdir -p dist && echo x > dist/index.html", "out", false},
		"timeout": {schema.StageBuild, "", "echo starting; sleep 1000", "out", true},
	}
	n := 0
	rapid.Check(t, func(rt *rapid.T) {
		n++
		kind := rapid.SampledFrom([]string{"install", "build", "output", "timeout"}).Draw(rt, "failure")
		f := failures[kind]
		env := e
		if f.quick {
			env = quick
		}
		p := env.project(t, fmt.Sprintf("fail-%d", n), "mkdir -p out && echo live > out/index.html", "out")
		good, log := env.build(t, p, "main", map[string]string{"README": "v1"})
		if good.Status != schema.BuildSucceeded {
			rt.Fatalf("first build: %s %q\n%s", good.Status, good.Error, strings.Join(log, "\n"))
		}

		p = env.settle(t, p, f.install, f.build, f.out)
		b, log := env.build(t, p, "main", map[string]string{"README": "v2"})
		if b.Status != schema.BuildFailed {
			rt.Fatalf("%s failure: build %s, want failed\n%s", kind, b.Status, strings.Join(log, "\n"))
		}
		if !strings.HasPrefix(b.Error, string(f.stage)+" failed") || strings.Contains(b.Error, "\n") {
			rt.Errorf("%s failure: reason %q, want one line starting %q", kind, b.Error, string(f.stage)+" failed")
		}
		if kind == "timeout" && !strings.Contains(b.Error, "timed out") {
			rt.Errorf("timeout: reason %q does not say so", b.Error)
		}
		// The reason, then how to build the commit again.
		if len(log) < 2 || log[len(log)-2] != "error: "+b.Error || !strings.Contains(log[len(log)-1], "minivercel deploy rebuild "+p.Name) {
			rt.Errorf("%s failure: log ends %q, want %q and how to rebuild", kind, log[max(len(log)-3, 0):], "error: "+b.Error)
		}
		if b.ArtifactPath != "" {
			rt.Errorf("%s failure left an artifact %s", kind, b.ArtifactPath)
		}
		active, err := env.store.ActiveBuild(ctx, p.ID)
		if err != nil || active.ID != good.ID {
			rt.Errorf("%s failure: active build %d (%v), want the previous %d", kind, active.ID, err, good.ID)
		}
		if ds, _ := env.store.ListDeployments(ctx, p.ID); slices.ContainsFunc(ds, func(d schema.Deployment) bool { return d.BuildID == b.ID }) {
			rt.Errorf("%s failure: the failed build got a deployment", kind)
		}
	})
}

// TestHugeBuildOutputIsBounded: a build printing 200,000 lines, a NUL and
// bytes that are not UTF-8 keeps its first lines up to the budget, a count
// of the rest and their last lines (the error), stores every byte of what it
// keeps, and records its result.
func TestHugeBuildOutputIsBounded(t *testing.T) {
	t.Parallel()
	e := newBuildEnv(t, 0)
	e.cfg.MaxLogLines = 500
	p := e.project(t, "loud", `printf 'nul\000here \377\n'; seq 1 200000; echo the-very-end >&2; exit 7`, "out")
	b, log := e.build(t, p, "main", map[string]string{"README": "x"})
	if b.Status != schema.BuildFailed || !strings.Contains(b.Error, "exited with code 7") {
		t.Fatalf("build %s %q, want failed with code 7", b.Status, b.Error)
	}
	if len(log) > 500+tailLines+50 {
		t.Errorf("stored %d lines, want about the budget of 500 and the tail", len(log))
	}
	text := strings.Join(log, "\n")
	for _, want := range []string{`nul\x00here \xff`, "lines of output left out", "200000", "the-very-end", "error: build failed"} {
		if !strings.Contains(text, want) {
			t.Errorf("stored log lacks %q", want)
		}
	}
	if strings.Contains(text, "\n       100000\n") {
		t.Error("a line from the middle of the output was kept")
	}
}

// panickingActivator stands in for an activator with a bug: a panic is a
// fault no real input causes on purpose, so this one fake is the test.
type panickingActivator struct{}

func (panickingActivator) Activate(context.Context, schema.Build, func(string)) error {
	var m map[string]int
	m["boom"]++ // a nil map write: a real runtime panic
	return nil
}

func (panickingActivator) Deactivate(string) {}

// TestPanickingActivationFailsThatBuildAlone: a panic while a build goes
// live fails that build with a clear reason, the worker survives, and the
// next build of another project is built as usual.
func TestPanickingActivationFailsThatBuildAlone(t *testing.T) {
	t.Parallel()
	e := newBuildEnv(t, 0)
	e.act = panickingActivator{}
	p := e.project(t, "buggy", "mkdir -p out && echo x > out/index.html", "out")
	b, log := e.build(t, p, "main", map[string]string{"README": "v1"})
	if b.Status != schema.BuildFailed || !strings.Contains(b.Error, "internal error") {
		t.Fatalf("build %s %q, want failed with an internal error\n%s", b.Status, b.Error, strings.Join(log, "\n"))
	}
	e.act = recordingActivator{e.store}
	q := e.project(t, "next", "mkdir -p out && echo y > out/index.html", "out")
	if b, log := e.build(t, q, "main", map[string]string{"README": "v1"}); b.Status != schema.BuildSucceeded {
		t.Fatalf("the next build after a panic: %s %q\n%s", b.Status, b.Error, strings.Join(log, "\n"))
	}
}

// TestWorkspaceOverItsLimitStopsTheBuild: a build that keeps writing into
// its workspace past the limit is stopped while it runs, and fails with
// the reason.
func TestWorkspaceOverItsLimitStopsTheBuild(t *testing.T) {
	t.Parallel()
	e := newBuildEnv(t, 0)
	e.cfg.MaxWorkspaceBytes = 16 << 20
	p := e.project(t, "hog", "mkdir -p out && dd if=/dev/zero of=out/big bs=1M count=64 && sleep 600", "out")
	start := time.Now()
	b, log := e.build(t, p, "main", map[string]string{"README": "x"})
	if b.Status != schema.BuildFailed || !strings.Contains(b.Error, "workspace uses more than 16.0 MB of disk") {
		t.Fatalf("build %s %q, want failed for its workspace's size\n%s", b.Status, b.Error, strings.Join(log, "\n"))
	}
	t.Logf("stopped %s after it began", time.Since(start).Round(100*time.Millisecond))
}
