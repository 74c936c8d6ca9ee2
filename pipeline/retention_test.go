package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"minivercel/internal/testenv"
	"minivercel/proc"
	"minivercel/schema"
	"minivercel/schema/schematest"
)

// retentionDirs is a data directory's artifacts and deployments.
type retentionDirs struct{ artifacts, deployments string }

func (d retentionDirs) extracted(id int64) string {
	return filepath.Join(d.deployments, strconv.FormatInt(id, 10))
}

// recordBuild records a finished build of a branch, with an artifact and an
// extracted tree on disk when status is succeeded or failed after packing
// (withFiles), as the worker and the edge leave them.
func recordBuild(t testing.TB, store *schema.Store, d retentionDirs, p schema.Project, branch string, status schema.BuildStatus, withFiles bool) schema.Build {
	t.Helper()
	ctx := context.Background()
	b, err := store.CreateBuild(ctx, schema.NewBuild{ProjectID: p.ID, Branch: branch, CommitSHA: strings.Repeat("a", 40)})
	if err != nil {
		t.Fatal(err)
	}
	if status != schema.BuildQueued {
		if err := store.StartBuild(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
	}
	if withFiles {
		art := filepath.Join(d.artifacts, p.Name, strconv.FormatInt(b.ID, 10)+".tar.gz")
		if err := os.MkdirAll(filepath.Dir(art), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(art, []byte("artifact"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(d.extracted(b.ID), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d.extracted(b.ID), "index.html"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := store.SetBuildArtifact(ctx, b.ID, schema.Artifact{Kind: "static", Path: art, SHA256: strings.Repeat("0", 64), Size: 8}); err != nil {
			t.Fatal(err)
		}
	}
	if status.Done() {
		if err := store.FinishBuild(ctx, b.ID, status, ""); err != nil {
			t.Fatal(err)
		}
	}
	b, err = store.BuildByID(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hasFiles reports whether a build's artifact and extracted tree exist; it
// fails the test when only one of them does.
func hasFiles(t testing.TB, d retentionDirs, b schema.Build) bool {
	t.Helper()
	_, aerr := os.Stat(b.ArtifactPath)
	_, xerr := os.Stat(d.extracted(b.ID))
	if (aerr == nil) != (xerr == nil) {
		t.Fatalf("build %d: artifact %v, extracted tree %v: want both or neither", b.ID, aerr, xerr)
	}
	return aerr == nil
}

// TestCollectKeepsWhatServes is the retention property, on a real database
// and real files: after Collect of a project, its live build and each
// branch's latest succeeded build keep their files; at most keep other
// builds do, and a succeeded build is collected only when keep newer ones
// are kept; a collected build has no files and says how many were kept;
// builds still running and every build of another project are untouched;
// a second Collect collects nothing.
func TestCollectKeepsWhatServes(t *testing.T) {
	t.Parallel()
	store := schematest.Store(t)
	root := testenv.ShortDir(t, "mvret")
	d := retentionDirs{artifacts: filepath.Join(root, "artifacts"), deployments: filepath.Join(root, "deployments")}
	ctx := context.Background()
	iteration := 0
	rapid.Check(t, func(rt *rapid.T) {
		iteration++
		keep := rapid.IntRange(1, 4).Draw(rt, "keep")
		q, err := NewQueue(Config{ArtifactsDir: d.artifacts, DeploymentsDir: d.deployments, KeepBuilds: keep,
			Logger: slog.New(slog.DiscardHandler)}, store, NewBroker(store, nil), nil, Sandbox{}, false)
		if err != nil {
			rt.Fatal(err)
		}
		var projects [2]schema.Project
		var builds [2][]schema.Build
		for i := range projects {
			projects[i] = schematest.Project(t, store, fmt.Sprintf("r%d-%d", iteration, i))
			n := rapid.IntRange(0, 12).Draw(rt, "builds")
			for range n {
				branch := rapid.SampledFrom([]string{"main", "feature", "fix"}).Draw(rt, "branch")
				status := rapid.SampledFrom([]schema.BuildStatus{schema.BuildSucceeded, schema.BuildSucceeded, schema.BuildSucceeded,
					schema.BuildFailed, schema.BuildCanceled, schema.BuildRunning}).Draw(rt, "status")
				files := status == schema.BuildSucceeded || rapid.Bool().Draw(rt, "files")
				builds[i] = append(builds[i], recordBuild(t, store, d, projects[i], branch, status, files))
			}
			var succeeded []schema.Build
			for _, b := range builds[i] {
				if b.Status == schema.BuildSucceeded {
					succeeded = append(succeeded, b)
				}
			}
			// Any succeeded build may be live, as after a rollback.
			if len(succeeded) > 0 && rapid.Bool().Draw(rt, "live") {
				live := rapid.SampledFrom(succeeded).Draw(rt, "live build")
				if _, err := store.RecordActivation(ctx, projects[i].ID, live.ID); err != nil {
					rt.Fatal(err)
				}
			}
		}
		if _, err := q.Collect(ctx, projects[0].ID); err != nil {
			rt.Fatal(err)
		}
		for _, b := range builds[1] {
			if b.ArtifactPath != "" && !hasFiles(t, d, b) {
				rt.Fatalf("collecting project %s removed files of build %d of project %s", projects[0].Name, b.ID, projects[1].Name)
			}
		}
		for i, p := range projects {
			if i == 1 {
				if _, err := q.Collect(ctx, p.ID); err != nil {
					rt.Fatal(err)
				}
			}
			checkRetention(t, rt, store, d, p, keep)
			if n, err := q.Collect(ctx, p.ID); err != nil || n != 0 {
				rt.Fatalf("second Collect of %s collected %d, %v; want 0", p.Name, n, err)
			}
		}
	})
}

// checkRetention checks one project's builds after a Collect.
func checkRetention(t testing.TB, rt *rapid.T, store *schema.Store, d retentionDirs, p schema.Project, keep int) {
	ctx := context.Background()
	now, err := store.ListBuilds(ctx, p.ID) // newest first
	if err != nil {
		rt.Fatal(err)
	}
	live, err := store.ActiveBuild(ctx, p.ID)
	if err != nil && !errors.Is(err, schema.ErrNotFound) {
		rt.Fatal(err)
	}
	branchLatest := map[string]int64{}
	for _, b := range now {
		if _, seen := branchLatest[b.Branch]; !seen && b.Status == schema.BuildSucceeded {
			branchLatest[b.Branch] = b.ID
		}
	}
	others, newerKept := 0, 0
	for _, b := range now {
		collected := b.CollectedAt != nil
		if files := hasFiles(t, d, b); (collected && files) || (!collected && b.ArtifactPath != "" && !files) {
			rt.Fatalf("build %d (%s): collected %v, files present %v", b.ID, b.Status, collected, files)
		}
		switch {
		case b.ID == live.ID && collected:
			rt.Fatalf("the live build %d was collected", b.ID)
		case branchLatest[b.Branch] == b.ID && collected:
			rt.Fatalf("build %d, the latest of branch %s, was collected", b.ID, b.Branch)
		case !b.Status.Done() && collected:
			rt.Fatalf("build %d still %s was collected", b.ID, b.Status)
		case collected && b.CollectedKeep != keep:
			rt.Fatalf("build %d collected with keep %d, want %d", b.ID, b.CollectedKeep, keep)
		case collected && CollectedReason(b) != fmt.Sprintf("This build was removed to save space: it was one of more than %d builds kept for %s.", keep, p.Name):
			rt.Fatalf("reason %q", CollectedReason(b))
		case collected && b.Status == schema.BuildSucceeded && newerKept < keep:
			rt.Fatalf("build %d collected with only %d newer succeeded builds kept (keep %d)", b.ID, newerKept, keep)
		}
		if collected && Activatable(b) == nil {
			rt.Fatalf("collected build %d is activatable", b.ID)
		}
		if !collected && b.Status == schema.BuildSucceeded {
			newerKept++
			if b.ID != live.ID && branchLatest[b.Branch] != b.ID {
				others++
			}
		}
		if !collected && b.Status.Done() && b.Status != schema.BuildSucceeded && b.ArtifactPath != "" {
			rt.Fatalf("the artifact of %s build %d was kept", b.Status, b.ID)
		}
	}
	if others > keep {
		rt.Fatalf("%d builds kept besides the live one and branches' latest, want at most %d", others, keep)
	}
}

// TestRealBuildsAreCollectedAsTheyFinish: with KeepBuilds 2, each real
// build that finishes collects what falls out of the window: after five
// builds of one branch and one of another, the two newest and the other
// branch's keep their artifacts, the rest are marked and their files gone,
// and activating one of them is refused with the reason; another project's
// builds are untouched.
func TestRealBuildsAreCollectedAsTheyFinish(t *testing.T) {
	t.Parallel()
	q := newTestQueue(t, true, func(c *Config) { c.KeepBuilds = 2 })
	ctx := context.Background()
	p, other := q.project(t, "many"), q.project(t, "bystander")
	build := func(p schema.Project, branch string, n int) schema.Build {
		t.Helper()
		ids := gitRepo(t, q.dirs.repos, p.Name, branch, map[string]string{"index.html": fmt.Sprintf("<h1>%s %d</h1>", branch, n)})
		b, err := q.Enqueue(ctx, schema.NewBuild{ProjectID: p.ID, Branch: branch, CommitSHA: ids[0]})
		if err != nil {
			t.Fatal(err)
		}
		if b = waitBuild(t, q.store, b.ID); b.Status != schema.BuildSucceeded {
			t.Fatalf("build %d: %s %s", b.ID, b.Status, b.Error)
		}
		return b
	}
	first := build(other, "feature", 0)
	side := build(p, "side", 0)
	var feature []schema.Build
	for i := range 5 {
		feature = append(feature, build(p, "feature", i))
	}
	// The collection runs right after a build is recorded: wait for it.
	wantGone := feature[:3]
	deadline := time.Now().Add(30 * time.Second)
	for _, b := range wantGone {
		for {
			now, err := q.store.BuildByID(ctx, b.ID)
			if err != nil {
				t.Fatal(err)
			}
			if now.CollectedAt != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("build %d was not collected", b.ID)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if _, err := os.Stat(b.ArtifactPath); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("artifact of collected build %d: %v", b.ID, err)
		}
	}
	for _, b := range []schema.Build{side, feature[3], feature[4], first} {
		now, err := q.store.BuildByID(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		if now.CollectedAt != nil {
			t.Errorf("build %d (%s of %s) was collected", b.ID, b.Branch, b.ProjectName)
		}
		if _, err := os.Stat(b.ArtifactPath); err != nil {
			t.Errorf("artifact of kept build %d: %v", b.ID, err)
		}
	}
	err := q.Activate(ctx, wantGone[0].ID)
	if !errors.Is(err, ErrCollected) || !strings.Contains(err.Error(), "removed to save space") || !strings.Contains(err.Error(), "more than 2 builds kept for many") {
		t.Errorf("Activate of a collected build = %v, want the reason", err)
	}
	if lines, _ := q.store.LogLines(ctx, wantGone[0].ID, 0); len(lines) == 0 {
		t.Error("the collected build's log is gone")
	}
}

// TestStartRemovesWhatACrashLeft: a server killed during a build leaves its
// workspace, a half-written artifact, a half-made repository, and files and
// the app user of a project deleted meanwhile; the next start removes them
// and nothing else.
func TestStartRemovesWhatACrashLeft(t *testing.T) {
	t.Parallel()
	users := proc.NewAppUsers(t.Name() + "/" + strconv.FormatInt(time.Now().UnixNano(), 10))
	t.Cleanup(func() { users.RemoveAll() })
	q := newTestQueue(t, false, func(c *Config) { c.AppUsers = users })
	ctx := context.Background()
	p := q.project(t, "crashed")
	var keptUID, goneUID uint32
	if os.Geteuid() == 0 {
		var err error
		if keptUID, _, err = users.For(p.ID); err != nil {
			t.Fatal(err)
		}
		if goneUID, _, err = users.For(p.ID + 1000); err != nil {
			t.Fatal(err)
		}
	}
	d := retentionDirs{artifacts: q.dirs.artifacts, deployments: q.cfg.DeploymentsDir}
	kept := recordBuild(t, q.store, d, p, "main", schema.BuildSucceeded, true)
	gone := recordBuild(t, q.store, d, p, "main", schema.BuildSucceeded, true)
	if _, err := q.store.Pool().Exec(ctx, `DELETE FROM builds WHERE id = $1`, gone.ID); err != nil {
		t.Fatal(err)
	}
	leftovers := []string{
		filepath.Join(q.dirs.work, "9999"),
		filepath.Join(q.dirs.artifacts, p.Name, ".pack-123.tmp"),
		filepath.Join(q.dirs.repos, ".tmp-0123abcd"),
		gone.ArtifactPath,
		d.extracted(gone.ID),
	}
	for _, f := range []string{filepath.Join(leftovers[0], "src", "index.html"), leftovers[1], filepath.Join(leftovers[2], "HEAD")} {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte("left"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// What this run makes after its start is not a leftover.
	fresh := filepath.Join(q.dirs.repos, ".tmp-fresh")
	if err := os.WriteFile(fresh, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(fresh, time.Time{}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := q.cleanUp(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, l := range leftovers {
		if _, err := os.Lstat(l); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there: %v", l, err)
		}
	}
	if !hasFiles(t, d, kept) {
		t.Error("the files of a kept build were removed")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a repository this run is making was removed: %v", err)
	}
	if uids := users.UIDs(); os.Geteuid() == 0 && (!slices.Contains(uids, keptUID) || slices.Contains(uids, goneUID)) {
		t.Errorf("app users after the start: %v; want %d (an existing project's) and not %d (a deleted one's)", uids, keptUID, goneUID)
	}
}
