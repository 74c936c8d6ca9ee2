package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"pgregory.net/rapid"

	"minivercel/internal/testenv"
	"minivercel/schema"
	"minivercel/schema/schematest"
)

// TestMain gives every test database River's tables too: the template is
// migrated once, not each test's database.
func TestMain(m *testing.M) { schematest.MainWith(m, schematest.Options{Migrate: MigrateQueue}) }

// TestStagesRunInOrderAndStopAtFirstFailure is the seed's Property 7: clone,
// install and build (then artifact and activate) run in that order, and nothing
// after the first failing stage runs.
func TestStagesRunInOrderAndStopAtFirstFailure(t *testing.T) {
	t.Parallel()
	all := []schema.Stage{schema.StageClone, schema.StageInstall, schema.StageBuild, schema.StageArtifact, schema.StageActivate}
	rapid.Check(t, func(t *rapid.T) {
		failAt := rapid.IntRange(-1, len(all)-1).Draw(t, "failAt")
		var ran, entered []schema.Stage
		var steps []step
		for i, s := range all {
			steps = append(steps, step{s, func(context.Context) error {
				ran = append(ran, s)
				if i == failAt {
					return errors.New("boom")
				}
				return nil
			}})
		}
		failed, err := runSteps(context.Background(), steps, func(s schema.Stage) { entered = append(entered, s) })
		want := all
		if failAt >= 0 {
			want = all[:failAt+1]
			if err == nil || failed != all[failAt] {
				t.Fatalf("failed=%q err=%v, want failure in %q", failed, err, all[failAt])
			}
		} else if err != nil {
			t.Fatalf("unexpected error %v", err)
		}
		if fmt.Sprint(ran) != fmt.Sprint(want) || fmt.Sprint(entered) != fmt.Sprint(want) {
			t.Fatalf("ran %v entered %v, want %v", ran, entered, want)
		}
	})
}

// gitRepo makes a bare repository with one commit per content map on branch and
// returns its path and the commit ids.
func gitRepo(t *testing.T, reposDir, project, branch string, commits ...map[string]string) []string {
	t.Helper()
	bare := filepath.Join(reposDir, project+".git")
	work := t.TempDir()
	run := func(dir string, args ...string) string { return runGit(t, dir, "", args...) }
	if _, err := os.Stat(bare); err != nil {
		run(reposDir, "init", "-q", "--bare", bare)
	}
	run(work, "init", "-q", "-b", branch)
	var ids []string
	for i, files := range commits {
		for name, content := range files {
			p := filepath.Join(work, name)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		run(work, "add", "-A")
		run(work, "commit", "-q", "-m", fmt.Sprintf("commit %d", i))
		ids = append(ids, run(work, "rev-parse", "HEAD"))
	}
	run(work, "push", "-q", "-f", bare, branch)
	return ids
}

type testQueue struct {
	*Queue
	store *schema.Store
	dirs  struct{ repos, work, artifacts string }
}

// newTestQueue starts a queue on a fresh database and data directory;
// configure changes its Config first.
func newTestQueue(t *testing.T, work bool, configure ...func(*Config)) *testQueue {
	t.Helper()
	return newTestQueueSandbox(t, work, nil, configure...)
}

// newTestQueueSandbox is newTestQueue with the build user's Sandbox
// changed by sandbox first (when not nil).
func newTestQueueSandbox(t *testing.T, work bool, sandbox func(*Sandbox), configure ...func(*Config)) *testQueue {
	t.Helper()
	store := schematest.Store(t)
	root := testenv.ShortDir(t, "mvq")
	os.Chmod(root, 0o711)
	tq := &testQueue{store: store}
	tq.dirs.repos = filepath.Join(root, "repos")
	tq.dirs.work = filepath.Join(root, "builds")
	tq.dirs.artifacts = filepath.Join(root, "artifacts")
	for _, d := range []string{tq.dirs.repos, tq.dirs.work, tq.dirs.artifacts} {
		os.MkdirAll(d, 0o711)
	}
	sb, err := BuildUser()
	if err != nil {
		t.Fatal(err)
	}
	if sandbox != nil {
		sandbox(&sb)
	}
	cfg := Config{ReposDir: tq.dirs.repos, WorkDir: tq.dirs.work, ArtifactsDir: tq.dirs.artifacts, CacheDir: filepath.Join(root, "cache"),
		DeploymentsDir: filepath.Join(root, "deployments")}
	for _, c := range configure {
		c(&cfg)
	}
	q, err := NewQueue(cfg, store, NewBroker(store, nil), nil, sb, work)
	if err != nil {
		t.Fatal(err)
	}
	tq.Queue = q
	if work {
		ctx, cancel := context.WithCancel(context.Background())
		if err := q.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer scancel()
			q.Shutdown(sctx)
			cancel()
		})
	}
	return tq
}

// project creates a project with an owner of its own.
func (q *testQueue) project(t *testing.T, name string) schema.Project {
	t.Helper()
	return schematest.Project(t, q.store, name)
}

// build enqueues a build of commit on the feature branch, waits for it to
// finish and returns it with its stored log.
func (q *testQueue) build(t *testing.T, p schema.Project, commit string) (schema.Build, string) {
	t.Helper()
	ctx := context.Background()
	b, err := q.Enqueue(ctx, schema.NewBuild{ProjectID: p.ID, Branch: "feature", CommitSHA: commit})
	if err != nil {
		t.Fatal(err)
	}
	b = waitBuild(t, q.store, b.ID)
	lines, _ := q.store.LogLines(ctx, b.ID, 0)
	var log strings.Builder
	for _, l := range lines {
		log.WriteString(l.Line + "\n")
	}
	return b, log.String()
}

// TestEnqueueCreatesBuildAndJob is the seed's Property 6: every build request
// leaves exactly one queued build row and one job that names it.
func TestEnqueueCreatesBuildAndJob(t *testing.T) {
	t.Parallel()
	q := newTestQueue(t, false)
	ctx := context.Background()
	p := q.project(t, "site")
	rapid.Check(t, func(t *rapid.T) {
		branch := rapid.StringMatching(`[a-z][a-z0-9/_-]{0,30}`).Draw(t, "branch")
		sha := rapid.StringMatching(`[0-9a-f]{40}`).Draw(t, "sha")
		b, err := q.Enqueue(ctx, schema.NewBuild{ProjectID: p.ID, Branch: branch, CommitSHA: sha, CreatedBy: p.OwnerID})
		if err != nil {
			t.Fatal(err)
		}
		got, err := q.store.BuildByID(ctx, b.ID)
		if err != nil || got.Status != schema.BuildQueued || got.Branch != branch || got.CommitSHA != sha || got.Slug == "" {
			t.Fatalf("build row %+v, %v", got, err)
		}
		var jobs int
		err = q.store.Pool().QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'build' AND (args->>'build_id')::bigint = $1`, b.ID).Scan(&jobs)
		if err != nil || jobs != 1 {
			t.Fatalf("jobs for build %d = %d, %v; want 1", b.ID, jobs, err)
		}
	})
}

func waitBuild(t *testing.T, store *schema.Store, id int64) schema.Build {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		b, err := store.BuildByID(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if b.Status.Done() {
			return b
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("build %d did not finish", id)
	return schema.Build{}
}

// TestSuccessfulBuildsProduceArtifacts is the seed's Property 8, on real builds:
// a static site and an npm build succeed with an artifact whose checksum is the
// file's; a failing build has none and says why. (Preview branches: activation
// is the edge's and is covered end to end.)
func TestSuccessfulBuildsProduceArtifacts(t *testing.T) {
	t.Parallel()
	q := newTestQueue(t, true)
	cases := []struct {
		name    string
		files   map[string]string
		ok      bool
		kind    string
		reason  string
		logLine string
	}{
		{"static", map[string]string{"index.html": "<h1>hi</h1>"}, true, "static", "", "Detected: static site"},
		{"npm", map[string]string{
			"package.json": `{"name":"x","scripts":{"build":"node build.js"}}`,
			"build.js":     `require('fs').mkdirSync('dist',{recursive:true}); require('fs').writeFileSync('dist/index.html','built'); console.log('built ok')`,
		}, true, "npm", "", "built ok"},
		{"failing", map[string]string{
			"package.json": `{"name":"x","scripts":{"build":"node build.js"}}`,
			"build.js":     `console.error('something broke'); process.exit(3)`,
		}, false, "", "build failed", "something broke"},
		{"empty", map[string]string{"README.md": "nothing"}, false, "", "clone failed", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := q.project(t, "p-"+tc.name)
			ids := gitRepo(t, q.dirs.repos, p.Name, "feature", tc.files)
			b, log := q.build(t, p, ids[0])
			if tc.logLine != "" && !strings.Contains(log, tc.logLine) {
				t.Errorf("log lacks %q:\n%s", tc.logLine, log)
			}
			if !tc.ok {
				if b.Status != schema.BuildFailed || !strings.HasPrefix(b.Error, tc.reason) || b.ArtifactPath != "" {
					t.Fatalf("build = %s %q artifact %q, want failed with %q", b.Status, b.Error, b.ArtifactPath, tc.reason)
				}
				if !strings.Contains(log, "error: "+b.Error) {
					t.Errorf("log lacks the one-line reason:\n%s", log)
				}
				return
			}
			if b.Status != schema.BuildSucceeded || b.Kind != tc.kind {
				t.Fatalf("build = %s kind %q error %q\n%s", b.Status, b.Kind, b.Error, log)
			}
			data, err := os.ReadFile(b.ArtifactPath)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(data)
			if hex.EncodeToString(sum[:]) != b.ArtifactSHA256 || int64(len(data)) != b.ArtifactSize {
				t.Fatalf("artifact checksum/size do not match the file")
			}
			if _, err := os.Stat(filepath.Join(q.dirs.work, fmt.Sprint(b.ID))); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("workspace left behind: %v", err)
			}
		})
	}
}

// TestDependencyCacheSurvivesBuilds: what a build leaves in its HOME (where
// package managers keep their download caches) is there for the project's next
// build, a failed build's included; other projects never see it.
func TestDependencyCacheSurvivesBuilds(t *testing.T) {
	t.Parallel()
	q := newTestQueue(t, true)
	p := q.project(t, "cached")
	build := func(fail bool) string {
		t.Helper()
		script := `const fs = require('fs'), path = require('path');
const f = path.join(process.env.HOME, '.fake-cache');
const n = fs.existsSync(f) ? Number(fs.readFileSync(f, 'utf8')) + 1 : 1;
fs.writeFileSync(f, String(n));
console.log('cache count ' + n);
fs.mkdirSync('dist', {recursive: true}); fs.writeFileSync('dist/index.html', 'x');`
		if fail {
			script += "\nprocess.exit(1);"
		}
		ids := gitRepo(t, q.dirs.repos, p.Name, "feature", map[string]string{
			"package.json": `{"name":"c","scripts":{"build":"node build.js"}}`,
			"build.js":     script + fmt.Sprintf("\n// %d", time.Now().UnixNano()),
		})
		_, log := q.build(t, p, ids[len(ids)-1])
		return log
	}
	if log := build(false); !strings.Contains(log, "cache count 1") || strings.Contains(log, "Restored the dependency cache") {
		t.Fatalf("first build:\n%s", log)
	}
	if log := build(false); !strings.Contains(log, "cache count 2") || !strings.Contains(log, "Restored the dependency cache") {
		t.Fatalf("second build:\n%s", log)
	}
	if log := build(true); !strings.Contains(log, "cache count 3") {
		t.Fatalf("failing build:\n%s", log)
	}
	if log := build(false); !strings.Contains(log, "cache count 4") {
		t.Fatalf("after a failed build:\n%s", log)
	}
	p = q.project(t, "other")
	if log := build(false); !strings.Contains(log, "cache count 1") {
		t.Fatalf("another project saw the cache:\n%s", log)
	}
	// A project deleted during a build, and made again under its name,
	// starts afresh: the build that ends after the deletion saves its HOME
	// (as the worker does), which then goes.
	if err := q.DeleteProject(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	late := filepath.Join(t.TempDir(), "home")
	if err := os.MkdirAll(late, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(late, ".fake-cache"), []byte("41"), 0o644); err != nil {
		t.Fatal(err)
	}
	q.saveCache(context.Background(), p.ID, late)
	if _, err := os.Stat(filepath.Dir(q.cacheHome(p.ID))); !os.IsNotExist(err) {
		t.Errorf("the deleted project's cache was kept: %v", err)
	}
	owner := *p.OwnerID
	p, _, err := q.store.EnsureProject(context.Background(), "other", owner)
	if err != nil {
		t.Fatal(err)
	}
	if log := build(false); !strings.Contains(log, "cache count 1") {
		t.Fatalf("a new project of a deleted one's name got its cache:\n%s", log)
	}
}

// TestAnyCommitMessageCanBeBuilt: a commit whose subject the 200-byte cut
// splits inside a character, with bytes that are not UTF-8 (a Latin-1
// editor) is queued like any other, by branch and by its short id, and its
// stored subject is valid text that keeps what it can.
func TestAnyCommitMessageCanBeBuilt(t *testing.T) {
	t.Parallel()
	q := newTestQueue(t, false)
	ctx := context.Background()
	p := q.project(t, "msgs")
	gitRepo(t, q.dirs.repos, p.Name, "main", map[string]string{"index.html": "x"})
	bare := filepath.Join(q.dirs.repos, p.Name+".git")
	subject := strings.Repeat("a", 199) + "é and more"
	msgFile := filepath.Join(t.TempDir(), "msg")
	if err := os.WriteFile(msgFile, []byte("caf\xe9 "+subject[5:]+"\n\nbody"), 0o644); err != nil {
		t.Fatal(err)
	}
	tree := runGit(t, bare, "", "rev-parse", "main^{tree}")
	commit := runGit(t, bare, "", "-c", "i18n.commitEncoding=ISO-8859-1", "commit-tree", tree, "-p", "main", "-F", msgFile)
	runGit(t, bare, "", "update-ref", "refs/heads/main", commit)

	for _, ref := range []string{"main", commit[:7]} {
		b, err := q.Rebuild(ctx, p, ref, 0)
		if err != nil {
			t.Fatalf("Rebuild(%s) of a commit with an awkward message: %v", ref, err)
		}
		if b.CommitSHA != commit || b.Branch != "main" {
			t.Errorf("Rebuild(%s) queued %s on %s, want %s on main", ref, b.CommitSHA, b.Branch, commit)
		}
		if want := `caf\xe9 ` + strings.Repeat("a", 194); b.CommitMessage != want || !utf8.ValidString(b.CommitMessage) {
			t.Errorf("stored subject %q, want %q", b.CommitMessage, want)
		}
	}
	if _, err := q.Rebuild(ctx, p, "main~1", 0); !errors.Is(err, schema.ErrNotFound) {
		t.Errorf("Rebuild of a revision expression = %v, want ErrNotFound", err)
	}
	// A commit never built on any branch is not guessed onto one.
	loose := runGit(t, bare, "", "commit-tree", tree, "-m", "never pushed to a branch")
	if _, err := q.Rebuild(ctx, p, loose[:10], 0); !errors.Is(err, schema.ErrNotFound) || !strings.Contains(err.Error(), "never built") {
		t.Errorf("Rebuild of a commit never built = %v, want ErrNotFound saying so", err)
	}
}
