package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"minivercel/nodes"
	"minivercel/schema"
)

// deadAfter is how long the reapers of these tests wait for a heartbeat.
const deadAfter = 30 * time.Second

// pushedBuild is a build a push of branch from before asked for, claimed
// by node, which wrote lines to its log before it stopped answering.
func pushedBuild(t *testing.T, q *testQueue, p schema.Project, before, node string, lines ...string) schema.Build {
	t.Helper()
	ctx := t.Context()
	b, err := q.enqueue(ctx, schema.NewBuild{ProjectID: p.ID, Branch: "main", CommitSHA: strings.Repeat("b", 40)}, before)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.store.ClaimBuild(ctx, b.ID, node); err != nil {
		t.Fatal(err)
	}
	if err := q.store.AppendLogLines(ctx, b.ID, 1, lines); err != nil {
		t.Fatal(err)
	}
	if b, err = q.store.BuildByID(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	return b
}

// registerNode records a live node with roles; stale makes it one that
// stopped heartbeating a minute ago (killed, its machine lost), without
// saying it stopped.
func registerNode(t *testing.T, store *schema.Store, id string, stale bool, roles ...string) {
	t.Helper()
	if err := store.RegisterNode(t.Context(), schema.Node{ID: id, Roles: roles, Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	if stale {
		if _, err := store.Pool().Exec(t.Context(), `UPDATE nodes SET last_seen = now() - interval '1 minute' WHERE id = $1`, id); err != nil {
			t.Fatal(err)
		}
	}
}

// buildJobs returns the Before of every River build job of the build, oldest first.
func buildJobs(t *testing.T, store *schema.Store, id int64) []string {
	t.Helper()
	rows, err := store.Pool().Query(t.Context(), `SELECT args FROM river_job WHERE kind = 'build'
		AND (args->>'build_id')::bigint = $1 ORDER BY id`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var befores []string
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			t.Fatal(err)
		}
		var args BuildArgs
		if err := json.Unmarshal(raw, &args); err != nil {
			t.Fatal(err)
		}
		befores = append(befores, args.Before)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return befores
}

// storedLog returns the build's stored log lines, checking they are
// numbered 1, 2, ... without gaps.
func storedLog(t *testing.T, store *schema.Store, id int64) []string {
	t.Helper()
	lines, err := store.LogLines(t.Context(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i, l := range lines {
		if l.Seq != i+1 {
			t.Fatalf("build %d: line %d has seq %d", id, i+1, l.Seq)
		}
		out = append(out, l.Line)
	}
	return out
}

func TestReaperRequeuesBuildOfDeadWorker(t *testing.T) {
	t.Parallel()
	q := newTestQueue(t, false, func(c *Config) { c.Node = "reaper-1" })
	ctx := t.Context()
	p := q.project(t, "orphan")
	registerNode(t, q.store, "reaper-1", false, "gitd", "edge")
	registerNode(t, q.store, "live-1", false, "worker")
	registerNode(t, q.store, "dead-1", true, "worker")
	before := strings.Repeat("a", 40)
	b := pushedBuild(t, q, p, before, "dead-1", "-----> Cloning", "-----> Installing dependencies")
	alive := pushedBuild(t, q, p, before, "live-1", "-----> Cloning")
	// The dead worker had begun to activate the build.
	d, err := q.store.StartDeployment(ctx, p.ID, b.ID)
	if err != nil {
		t.Fatal(err)
	}

	n, err := q.reap(ctx, nodes.View{Store: q.store}, deadAfter)
	if err != nil || n != 1 {
		t.Fatalf("reap = %d, %v; want the one build of dead-1", n, err)
	}
	got, err := q.store.BuildByID(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != schema.BuildQueued || got.NodeID != "" || got.FinishedAt != nil {
		t.Fatalf("the reaped build: status %s on %q finished %v; want queued on no node", got.Status, got.NodeID, got.FinishedAt)
	}
	log := storedLog(t, q.store, b.ID)
	if len(log) != 3 || log[0] != "-----> Cloning" || log[1] != "-----> Installing dependencies" ||
		!strings.Contains(log[2], "dead-1") || !strings.Contains(log[2], "runs again on another worker") {
		t.Fatalf("the reaped build's log:\n%s", strings.Join(log, "\n"))
	}
	// A new job runs it, and a failure then still puts the branch back
	// where the push found it.
	if jobs := buildJobs(t, q.store, b.ID); len(jobs) != 2 || jobs[1] != before {
		t.Fatalf("build jobs' Before = %q, want the first and a new one with %q", jobs, before)
	}
	dep, err := q.store.DeploymentByID(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if dep.Status != schema.DeploymentFailed || !strings.Contains(dep.Error, "interrupted") {
		t.Fatalf("the activation the dead worker began: %s %q; want failed as interrupted", dep.Status, dep.Error)
	}
	// The build of the live worker is its own.
	if got, _ := q.store.BuildByID(ctx, alive.ID); got.Status != schema.BuildRunning || got.NodeID != "live-1" {
		t.Fatalf("the live worker's build: status %s on %q", got.Status, got.NodeID)
	}
	if jobs := buildJobs(t, q.store, alive.ID); len(jobs) != 1 {
		t.Fatalf("the live worker's build has %d jobs", len(jobs))
	}

	// Queued again, it is no orphan: the next pass leaves it alone.
	if n, err := q.reap(ctx, nodes.View{Store: q.store}, deadAfter); err != nil || n != 0 {
		t.Fatalf("second reap = %d, %v; want 0", n, err)
	}
	if log := storedLog(t, q.store, b.ID); len(log) != 3 {
		t.Fatalf("the second pass wrote to the log:\n%s", strings.Join(log, "\n"))
	}
	if jobs := buildJobs(t, q.store, b.ID); len(jobs) != 2 {
		t.Fatalf("the second pass queued %d jobs", len(jobs))
	}

	// The next worker continues the attempt count and the log; dead-1,
	// should it come back, can no longer record a result.
	attempt, err := q.store.ClaimBuild(ctx, b.ID, "live-1")
	if err != nil || attempt != 2 {
		t.Fatalf("claim by live-1 = %d, %v; want attempt 2", attempt, err)
	}
	if seq, err := q.store.LastLogSeq(ctx, b.ID); err != nil || seq != 3 {
		t.Fatalf("LastLogSeq = %d, %v; want 3", seq, err)
	}
	if err := q.store.FinishAttempt(ctx, b.ID, 1, schema.BuildSucceeded, ""); err == nil {
		t.Fatal("dead-1's attempt recorded a result after the build was taken over")
	}
	// Nor may it deploy the build: its activation is refused before the
	// activator is asked.
	stale, err := q.store.BuildByID(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	stale.Attempt = 1
	if err := q.activate(ctx, stale, func(string) {}, true); !errors.Is(err, ErrTakenOver) {
		t.Fatalf("activation by the attempt taken over = %v, want ErrTakenOver", err)
	}
}

func TestReaperFailsBuildWhenNoWorkerIsAlive(t *testing.T) {
	t.Parallel()
	q := newTestQueue(t, false, func(c *Config) { c.Node = "web-1" })
	ctx := t.Context()
	p := q.project(t, "stranded")
	// web-1 runs the reaper but builds nothing; the only worker died, and
	// a stopped one is not alive either.
	registerNode(t, q.store, "web-1", false, "gitd", "edge", "panel")
	registerNode(t, q.store, "dead-1", true, "worker")
	registerNode(t, q.store, "gone-1", false, "worker")
	if err := q.store.StopNode(ctx, "gone-1"); err != nil {
		t.Fatal(err)
	}
	b := pushedBuild(t, q, p, strings.Repeat("a", 40), "dead-1", "-----> Cloning")

	n, err := q.reap(ctx, nodes.View{Store: q.store}, deadAfter)
	if err != nil || n != 1 {
		t.Fatalf("reap = %d, %v; want 1", n, err)
	}
	got, err := q.store.BuildByID(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != schema.BuildFailed || got.FinishedAt == nil ||
		!strings.Contains(got.Error, "dead-1") || !strings.Contains(got.Error, "no other worker is alive") {
		t.Fatalf("the stranded build: status %s, error %q, finished %v; want failed saying no other worker is alive",
			got.Status, got.Error, got.FinishedAt)
	}
	log := storedLog(t, q.store, b.ID)
	if len(log) != 3 || log[0] != "-----> Cloning" || !strings.HasPrefix(log[1], "error: ") ||
		!strings.Contains(log[1], "no other worker is alive") || !strings.Contains(log[2], "goes back to where the push found it") {
		t.Fatalf("the stranded build's log:\n%s", strings.Join(log, "\n"))
	}
	if jobs := buildJobs(t, q.store, b.ID); len(jobs) != 1 {
		t.Fatalf("a failed build got another job: %d jobs", len(jobs))
	}
	if n, err := q.reap(ctx, nodes.View{Store: q.store}, deadAfter); err != nil || n != 0 {
		t.Fatalf("second reap = %d, %v; want 0", n, err)
	}
}

func TestReaperNeverReapsItsOwnNode(t *testing.T) {
	t.Parallel()
	q := newTestQueue(t, false, func(c *Config) { c.Node = "self-1" })
	ctx := t.Context()
	p := q.project(t, "mine")
	// self-1's own row looks stale (its heartbeat is late, the database
	// was slow), but the node is running this reaper: it is alive, and its
	// build with it.
	registerNode(t, q.store, "self-1", true, "worker")
	registerNode(t, q.store, "live-1", false, "worker")
	registerNode(t, q.store, "dead-1", true, "worker")
	mine := pushedBuild(t, q, p, "", "self-1", "-----> Cloning")
	theirs := pushedBuild(t, q, p, "", "dead-1", "-----> Cloning")

	n, err := q.reap(ctx, nodes.View{Store: q.store}, deadAfter)
	if err != nil || n != 1 {
		t.Fatalf("reap = %d, %v; want dead-1's build only", n, err)
	}
	got, err := q.store.BuildByID(ctx, mine.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != schema.BuildRunning || got.NodeID != "self-1" || got.Attempt != 1 {
		t.Fatalf("the reaper's own build: status %s on %q attempt %d", got.Status, got.NodeID, got.Attempt)
	}
	if log := storedLog(t, q.store, mine.ID); len(log) != 1 {
		t.Fatalf("the reaper wrote to its own build's log:\n%s", strings.Join(log, "\n"))
	}
	if jobs := buildJobs(t, q.store, mine.ID); len(jobs) != 1 {
		t.Fatalf("the reaper's own build has %d jobs", len(jobs))
	}
	if got, _ := q.store.BuildByID(ctx, theirs.ID); got.Status != schema.BuildQueued {
		t.Fatalf("dead-1's build: status %s, want queued", got.Status)
	}
	// However often it looks.
	if n, err := q.reap(ctx, nodes.View{Store: q.store}, deadAfter); err != nil || n != 0 {
		t.Fatalf("second reap = %d, %v; want 0", n, err)
	}
}

// TestReapersTakeEachBuildOnce: the reapers of several nodes running at
// once take each orphaned build exactly once: one log line, one new job.
func TestReapersTakeEachBuildOnce(t *testing.T) {
	t.Parallel()
	q := newTestQueue(t, false, func(c *Config) { c.Node = "reaper-1" })
	ctx := t.Context()
	p := q.project(t, "race")
	registerNode(t, q.store, "live-1", false, "worker")
	registerNode(t, q.store, "dead-1", true, "worker")
	registerNode(t, q.store, "dead-2", true, "worker")
	others := make([]*Queue, 3)
	for i := range others {
		o, err := NewQueue(Config{Node: fmt.Sprintf("reaper-%d", i+2)}, q.store, NewBroker(q.store, nil), nil, Sandbox{}, false)
		if err != nil {
			t.Fatal(err)
		}
		others[i] = o
	}
	reapers := append([]*Queue{q.Queue}, others...)

	for round := range 5 {
		var builds []schema.Build
		for i := range 8 {
			builds = append(builds, pushedBuild(t, q, p, fmt.Sprintf("%040d", round*8+i), fmt.Sprintf("dead-%d", i%2+1), "-----> Cloning"))
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		total := 0
		start := make(chan struct{})
		for _, r := range reapers {
			wg.Go(func() {
				<-start
				n, err := r.reap(ctx, nodes.View{Store: q.store}, deadAfter)
				if err != nil {
					t.Errorf("round %d: reaper %s: %v", round, r.cfg.Node, err)
				}
				mu.Lock()
				total += n
				mu.Unlock()
			})
		}
		close(start)
		wg.Wait()
		if total != len(builds) {
			t.Fatalf("round %d: the reapers took %d builds, want %d", round, total, len(builds))
		}
		for i, b := range builds {
			if log := storedLog(t, q.store, b.ID); len(log) != 2 || !strings.Contains(log[1], "runs again on another worker") {
				t.Fatalf("round %d: build %d's log:\n%s", round, b.ID, strings.Join(log, "\n"))
			}
			if jobs := buildJobs(t, q.store, b.ID); len(jobs) != 2 || jobs[1] != fmt.Sprintf("%040d", round*8+i) {
				t.Fatalf("round %d: build %d's jobs: %q", round, b.ID, jobs)
			}
			if got, _ := q.store.BuildByID(ctx, b.ID); got.Status != schema.BuildQueued {
				t.Fatalf("round %d: build %d is %s", round, b.ID, got.Status)
			}
		}
	}
}

// TestReaperFailedBuildPutsBranchBack: a pushed build the reaper fails
// (its worker died, no other is alive) puts its branch back where the push
// found it, as every failed pushed build does (BuildArgs.Before,
// putBranchBack): else `git push` of the same commit answers
// "Everything up-to-date" and nothing builds it again.
func TestReaperFailedBuildPutsBranchBack(t *testing.T) {
	t.Parallel()
	q := newTestQueue(t, false, func(c *Config) { c.Node = "web-1"; c.Git = true })
	ctx := t.Context()
	p := q.project(t, "putback")
	ids := gitRepo(t, q.dirs.repos, "putback", "main", map[string]string{"index.html": "one"}, map[string]string{"index.html": "two"})
	registerNode(t, q.store, "web-1", false, "gitd", "edge", "panel")
	registerNode(t, q.store, "dead-1", true, "worker")
	b, err := q.enqueue(ctx, schema.NewBuild{ProjectID: p.ID, Branch: "main", CommitSHA: ids[1]}, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.store.ClaimBuild(ctx, b.ID, "dead-1"); err != nil {
		t.Fatal(err)
	}
	if n, err := q.reap(ctx, nodes.View{Store: q.store}, deadAfter); err != nil || n != 1 {
		t.Fatalf("reap = %d, %v; want 1", n, err)
	}
	if got, _ := q.store.BuildByID(ctx, b.ID); got.Status != schema.BuildFailed {
		t.Fatalf("build %s, want failed", got.Status)
	}
	if log := storedLog(t, q.store, b.ID); !strings.Contains(strings.Join(log, "\n"), "goes back to where the push found it") {
		t.Errorf("the log does not say the branch goes back:\n%s", strings.Join(log, "\n"))
	}
	// A gitd node (this queue: Config.Git) moves it, through the git queue.
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Shutdown(context.Background()) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		head := runGit(t, q.dirs.repos, "", "--git-dir", "putback.git", "rev-parse", "refs/heads/main")
		if head == ids[0] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("branch main is at %.7s, the failed build's commit; want it back at %.7s where the push found it", head, ids[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTakenOverAttemptStops: a running build whose attempt was given to
// another worker stops on this one (its context ends with ErrTakenOver),
// rather than use the machine for nothing; one still its own runs on.
func TestTakenOverAttemptStops(t *testing.T) {
	t.Parallel()
	q := newTestQueue(t, false, func(c *Config) { c.Node = "live-1"; c.AttemptCheck = 20 * time.Millisecond })
	ctx := t.Context()
	p := q.project(t, "watched")
	b, err := q.enqueue(ctx, schema.NewBuild{ProjectID: p.ID, Branch: "main", CommitSHA: strings.Repeat("c", 40)}, "")
	if err != nil {
		t.Fatal(err)
	}
	attempt, err := q.store.ClaimBuild(ctx, b.ID, "live-1")
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := q.watchAttempt(ctx, b.ID, attempt)
	defer stop()
	select {
	case <-wctx.Done():
		t.Fatal("the watch ended while the attempt was still this one's")
	case <-time.After(200 * time.Millisecond): // ten checks
	}
	// Taken over: queued again and claimed by another worker.
	if err := q.store.RequeueBuild(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := q.store.ClaimBuild(ctx, b.ID, "other-1"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wctx.Done():
		if cause := context.Cause(wctx); !errors.Is(cause, ErrTakenOver) {
			t.Fatalf("ended with %v, want ErrTakenOver", cause)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the taken-over attempt did not stop")
	}
}
