package edge

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// The prepared-deployment tests run the real edge on real artifacts: a
// deployment is prepared (extracted, or its app started and healthy), then
// committed or discarded, and what production serves is read through the
// edge's handler as a browser would see it.

// countingSource is an ArtifactSource over artifacts written to disk: it
// answers the real path of an artifact by its sha256 and counts the
// fetches. An unknown sha256 is fs.ErrNotExist, as a blob cache answers
// for a blob the database does not hold.
type countingSource struct {
	mu      sync.Mutex
	paths   map[string]string // sha256 -> path
	fetches map[string]int
}

func (c *countingSource) add(s Site) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.paths == nil {
		c.paths = map[string]string{}
	}
	c.paths[s.SHA256] = s.ArtifactPath
}

func (c *countingSource) Fetch(ctx context.Context, sha string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fetches == nil {
		c.fetches = map[string]int{}
	}
	c.fetches[sha]++
	path, ok := c.paths[sha]
	if !ok {
		return "", fmt.Errorf("fetch blob %s: %w", sha, os.ErrNotExist)
	}
	return path, ctx.Err()
}

func (c *countingSource) count(sha string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fetches[sha]
}

// newSourcedEdge is an edge whose artifacts come from src.
func newSourcedEdge(t *testing.T, src ArtifactSource) *testEdge {
	t.Helper()
	lk := &fakeLookup{}
	e := newEdgeWith(t, lk, func(c *Config) { c.Artifacts = src })
	e.lookup = lk
	return e
}

// deployed is a static site of project under deployment id (the build has
// the same id).
func (e *testEdge) deployed(project string, id int64, body string) Site {
	s := e.site(project, id, map[string]string{"index.html": body})
	s.DeploymentID = id
	return s
}

func (e *testEdge) prepare(s Site) {
	e.t.Helper()
	if err := e.srv.Prepare(context.Background(), s, nil); err != nil {
		e.t.Fatalf("Prepare %s deployment %d: %v", s.Project, s.DeploymentID, err)
	}
}

func (e *testEdge) commit(id int64) {
	e.t.Helper()
	if err := e.srv.Commit(id); err != nil {
		e.t.Fatalf("Commit deployment %d: %v", id, err)
	}
}

func TestPrepareServesNothingUntilCommit(t *testing.T) {
	t.Parallel()
	t.Run("over a live build", func(t *testing.T) {
		t.Parallel()
		e := newTestEdge(t)
		v1, v2 := e.deployed("shop", 1, "v1"), e.deployed("shop", 2, "v2")
		e.activate(v1)
		e.prepare(v2)
		e.expect("shop.localhost", "/", 200, "v1")
		if id, _ := e.srv.Active("shop"); id != 1 {
			t.Fatalf("after Prepare the edge routes build %d, want 1", id)
		}
		e.commit(2)
		e.expect("shop.localhost", "/", 200, "v2")
		if site, ok := e.srv.ActiveSite("shop"); !ok || site.DeploymentID != 2 {
			t.Fatalf("ActiveSite = %+v, %v; want deployment 2", site, ok)
		}
		// What was committed is no longer prepared.
		if err := e.srv.Commit(2); !errors.Is(err, ErrNotPrepared) {
			t.Fatalf("second Commit = %v, want ErrNotPrepared", err)
		}
		e.expect("shop.localhost", "/", 200, "v2")
	})
	t.Run("first build of a project", func(t *testing.T) {
		t.Parallel()
		e := newTestEdge(t)
		e.prepare(e.deployed("fresh", 7, "first"))
		e.expect("fresh.localhost", "/", 404, "")
		if got := e.srv.Routed(); len(got) != 0 {
			t.Fatalf("Routed after Prepare = %v, want none", got)
		}
		e.commit(7)
		e.expect("fresh.localhost", "/", 200, "first")
	})
}

func TestCommitWithoutPrepare(t *testing.T) {
	t.Parallel()
	t.Run("unknown deployment", func(t *testing.T) {
		t.Parallel()
		e := newTestEdge(t)
		e.activate(e.deployed("shop", 1, "v1"))
		if err := e.srv.Commit(42); !errors.Is(err, ErrNotPrepared) {
			t.Fatalf("Commit of a deployment never prepared = %v, want ErrNotPrepared", err)
		}
		e.expect("shop.localhost", "/", 200, "v1")
	})
	t.Run("discarded", func(t *testing.T) {
		t.Parallel()
		e := newTestEdge(t)
		e.activate(e.deployed("shop", 1, "v1"))
		e.prepare(e.deployed("shop", 2, "v2"))
		e.srv.Discard(2)
		if err := e.srv.Commit(2); !errors.Is(err, ErrNotPrepared) {
			t.Fatalf("Commit after Discard = %v, want ErrNotPrepared", err)
		}
		e.expect("shop.localhost", "/", 200, "v1")
		// Discarding what is not prepared (twice, or never) is harmless.
		e.srv.Discard(2)
		e.srv.Discard(99)
		e.expect("shop.localhost", "/", 200, "v1")
	})
}

func TestPrepareNeedsADeploymentID(t *testing.T) {
	t.Parallel()
	src := &countingSource{}
	e := newSourcedEdge(t, src)
	s := e.deployed("shop", 1, "v1")
	src.add(s)
	s.DeploymentID = 0
	if err := e.srv.Prepare(context.Background(), s, nil); err == nil {
		t.Fatal("Prepare of a site without a deployment id succeeded")
	}
	if n := src.count(s.SHA256); n != 0 {
		t.Fatalf("the refused Prepare fetched the artifact %d times", n)
	}
	if _, err := os.Stat(filepath.Join(e.tmp, "deployments", "1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused Prepare extracted the build: %v", err)
	}
	if err := e.srv.Commit(0); !errors.Is(err, ErrNotPrepared) {
		t.Fatalf("Commit(0) = %v, want ErrNotPrepared", err)
	}
	e.expect("shop.localhost", "/", 404, "")
}

// TestPrepareFetchesTheArtifact: a site whose artifact is not on this
// machine (ArtifactPath empty, as a build of another node) is fetched by
// its sha256 through Config.Artifacts.
func TestPrepareFetchesTheArtifact(t *testing.T) {
	t.Parallel()
	src := &countingSource{}
	e := newSourcedEdge(t, src)
	s := e.deployed("remote", 3, "built elsewhere")
	src.add(s)
	s.ArtifactPath = ""
	e.prepare(s)
	if n := src.count(s.SHA256); n != 1 {
		t.Fatalf("the artifact was fetched %d times, want 1", n)
	}
	e.commit(3)
	e.expect("remote.localhost", "/", 200, "built elsewhere")

	// An artifact the source does not have fails the preparation, and
	// nothing is prepared.
	missing := e.deployed("remote", 4, "never stored")
	missing.ArtifactPath = ""
	if err := e.srv.Prepare(context.Background(), missing, nil); err == nil {
		t.Fatal("Prepare of an artifact no source has succeeded")
	}
	if err := e.srv.Commit(4); !errors.Is(err, ErrNotPrepared) {
		t.Fatalf("Commit after a failed Prepare = %v, want ErrNotPrepared", err)
	}
	e.expect("remote.localhost", "/", 200, "built elsewhere")
}

// TestConcurrentPreparesShareOne: an activator and an agent (or two
// notifications) preparing one deployment at once extract it once.
func TestConcurrentPreparesShareOne(t *testing.T) {
	t.Parallel()
	src := &countingSource{}
	e := newSourcedEdge(t, src)
	s := e.deployed("shop", 5, "once")
	src.add(s)
	s.ArtifactPath = ""
	const n = 8
	start := make(chan struct{})
	errs := make(chan error, n)
	for range n {
		go func() {
			<-start
			errs <- e.srv.Prepare(context.Background(), s, nil)
		}()
	}
	close(start)
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("Prepare: %v", err)
		}
	}
	// A deployment prepared already is not prepared again.
	e.prepare(s)
	if got := src.count(s.SHA256); got != 1 {
		t.Fatalf("%d Prepares fetched the artifact %d times, want 1", n+1, got)
	}
	e.commit(5)
	e.expect("shop.localhost", "/", 200, "once")
}

// countingJS appends its pid to $STARTS before it listens, so that each
// start of the app is on disk by the time it is healthy.
const countingJS = `const fs = require('fs');
fs.appendFileSync(process.env.STARTS, process.pid + '\n');
require('http').createServer((req, res) => res.end(%q)).listen(process.env.PORT, process.env.HOST);
`

// countedApp is a server app under deployment id that records its starts
// in the file it returns.
func (e *testEdge) countedApp(project string, id int64, version string) (Site, string) {
	s := e.site(project, id, map[string]string{"server.js": fmt.Sprintf(countingJS, version)})
	starts := filepath.Join(e.tmp, "starts-"+strconv.FormatInt(id, 10))
	s.Start, s.DeploymentID, s.Health = "node server.js", id, patientHealth
	s.Env = []string{"STARTS=" + starts}
	return s, starts
}

// pids reads the pids an app recorded.
func pids(t *testing.T, file string) []int {
	t.Helper()
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		out = append(out, pid)
	}
	return out
}

// processGone reports whether the process pid has ended.
func processGone(pid int) bool { return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) }

func TestPrepareApp(t *testing.T) {
	t.Parallel()
	t.Run("concurrent prepares start one process", func(t *testing.T) {
		t.Parallel()
		e, _ := newAppEdge(t, &logSink{})
		s, starts := e.countedApp("app", 1, "one")
		const n = 6
		var wg sync.WaitGroup
		var failed atomic.Int32
		start := make(chan struct{})
		for range n {
			wg.Go(func() {
				<-start
				if err := e.srv.Prepare(context.Background(), s, nil); err != nil {
					t.Errorf("Prepare: %v", err)
					failed.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		if failed.Load() > 0 {
			t.FailNow()
		}
		if got := pids(t, starts); len(got) != 1 {
			t.Fatalf("%d concurrent Prepares started %d processes (%v), want 1", n, len(got), got)
		}
		// Prepared, healthy, not routed.
		e.expect("app.localhost", "/", 404, "")
		e.commit(1)
		e.expect("app.localhost", "/", 200, "one")
		if got := pids(t, starts); len(got) != 1 {
			t.Fatalf("Commit started the app again: %v", got)
		}
	})
	t.Run("discard stops the process", func(t *testing.T) {
		t.Parallel()
		e, _ := newAppEdge(t, &logSink{})
		live := e.deployed("app", 1, "static live")
		e.activate(live)
		s, starts := e.countedApp("app", 2, "never live")
		e.prepare(s)
		running := pids(t, starts)
		if len(running) != 1 {
			t.Fatalf("Prepare started %d processes, want 1", len(running))
		}
		e.expect("app.localhost", "/", 200, "static live")
		e.srv.Discard(2)
		waitFor(t, func() bool { return processGone(running[0]) })
		if err := e.srv.Commit(2); !errors.Is(err, ErrNotPrepared) {
			t.Fatalf("Commit after Discard = %v, want ErrNotPrepared", err)
		}
		e.expect("app.localhost", "/", 200, "static live")
	})
}

// TestPreparedExpires: a deployment prepared and never committed (its
// coordinator died) is discarded after preparedTTL. The bubble's fake
// clock passes the 15 minutes at once; the extraction is real.
func TestPreparedExpires(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		e := newTestEdge(t)
		e.activate(e.deployed("shop", 1, "v1"))
		e.prepare(e.deployed("shop", 2, "v2"))
		e.prepare(e.deployed("shop", 3, "v3"))
		time.Sleep(preparedTTL - time.Second)
		synctest.Wait()
		e.commit(2) // still prepared just before the limit
		e.expect("shop.localhost", "/", 200, "v2")
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if err := e.srv.Commit(3); !errors.Is(err, ErrNotPrepared) {
			t.Fatalf("Commit after preparedTTL = %v, want ErrNotPrepared", err)
		}
		e.expect("shop.localhost", "/", 200, "v2")
	})
}
