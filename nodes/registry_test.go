package nodes_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"minivercel/nodes"
	"minivercel/schema"
	"minivercel/schema/schematest"
)

// logBuffer collects a registry's logs; Run writes from its own goroutine.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls cond until it holds, failing the test after ten seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
}

// node reads one node's row; ok is false when it has none.
func node(t *testing.T, store *schema.Store, id string) (n schema.Node, ok bool) {
	t.Helper()
	list, err := store.ListNodes(context.Background())
	if err != nil {
		return schema.Node{}, false // the database may be away on purpose
	}
	for _, n := range list {
		if n.ID == id {
			return n, true
		}
	}
	return schema.Node{}, false
}

// runRegistry starts a registry of self heartbeating every 20 ms; the
// returned stop ends it and waits for Run to return.
func runRegistry(t *testing.T, store *schema.Store, self schema.Node, logs *logBuffer) (stop func()) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg, err := nodes.NewRegistry(store, self, 20*time.Millisecond, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- reg.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Run did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestRegistry(t *testing.T) {
	t.Parallel()
	store := schematest.Store(t)
	ctx := context.Background()
	self := schema.Node{ID: "web-1", Roles: nodes.Roles{nodes.Gitd, nodes.Edge}.Strings(), Address: "10.0.0.1:443", Version: "v1.2.3"}
	var logs logBuffer
	stop := runRegistry(t, store, self, &logs)

	waitFor(t, "the node to register", func() bool { _, ok := node(t, store, "web-1"); return ok })
	first, _ := node(t, store, "web-1")
	if first.Address != self.Address || first.Version != self.Version || strings.Join(first.Roles, ",") != "gitd,edge" || first.StoppedAt != nil {
		t.Fatalf("registered %+v", first)
	}

	t.Run("heartbeats move last seen", func(t *testing.T) {
		waitFor(t, "a heartbeat", func() bool { n, _ := node(t, store, "web-1"); return n.LastSeen.After(first.LastSeen) })
		if live, err := store.LiveNodes(ctx, "", nodes.DeadAfter); err != nil || len(live) != 1 || live[0].ID != "web-1" {
			t.Fatalf("live nodes = %v, %v; want web-1", live, err)
		}
		if n, _ := node(t, store, "web-1"); !n.StartedAt.Equal(first.StartedAt) {
			t.Fatalf("a heartbeat moved started_at: %v, was %v", n.StartedAt, first.StartedAt)
		}
	})

	t.Run("a deleted row is registered again", func(t *testing.T) {
		if _, err := store.Pool().Exec(ctx, `DELETE FROM nodes WHERE id = 'web-1'`); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the node to register again", func() bool { _, ok := node(t, store, "web-1"); return ok })
		if !strings.Contains(logs.String(), "registering again") {
			t.Errorf("logs do not say the row was registered again:\n%s", logs.String())
		}
	})

	t.Run("the end of the context marks it stopped", func(t *testing.T) {
		stop()
		n, _ := node(t, store, "web-1")
		if n.StoppedAt == nil {
			t.Fatalf("after Run returned: %+v, want stopped", n)
		}
		now, err := store.Now(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := nodes.State(n, now); got != nodes.StateStopped {
			t.Fatalf("State = %q", got)
		}
	})
}

// TestRegistrySurvivesOutage: while the database refuses connections the
// registry logs (once as a warning) and keeps going; when the database is
// back the heartbeats go on, and the outage's end is logged.
func TestRegistrySurvivesOutage(t *testing.T) {
	t.Parallel()
	store := schematest.Store(t)
	ctx := context.Background()
	var dbName string
	if err := store.Pool().QueryRow(ctx, `SELECT current_database()`).Scan(&dbName); err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, schematest.Cluster(t).DSNFor("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	setAllowed := func(allowed bool) {
		t.Helper()
		_, err := admin.Exec(ctx, `ALTER DATABASE `+pgx.Identifier{dbName}.Sanitize()+` ALLOW_CONNECTIONS `+map[bool]string{true: "true", false: "false"}[allowed])
		if err != nil {
			t.Fatal(err)
		}
	}

	var logs logBuffer
	runRegistry(t, store, schema.Node{ID: "build-1", Roles: []string{"worker"}}, &logs)
	waitFor(t, "the node to register", func() bool { _, ok := node(t, store, "build-1"); return ok })

	before := len(logs.String())
	setAllowed(false)
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, dbName); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the outage to be logged", func() bool { return strings.Contains(logs.String(), "node heartbeat failed") })
	waitFor(t, "a few failed heartbeats", func() bool { return strings.Count(logs.String(), "node heartbeat failed") >= 3 })
	if n := strings.Count(logs.String()[before:], "level=WARN"); n != 1 {
		t.Errorf("%d warnings during one outage, want 1:\n%s", n, logs.String())
	}

	setAllowed(true)
	now, err := store.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "heartbeats after the outage", func() bool { n, _ := node(t, store, "build-1"); return n.LastSeen.After(now) })
	waitFor(t, "the end of the outage to be logged", func() bool { return strings.Contains(logs.String(), "node heartbeat restored") })
}

func TestNewRegistryRefuses(t *testing.T) {
	t.Parallel()
	store := schematest.Store(t)
	for name, self := range map[string]schema.Node{
		"bad id":  {ID: "Web 1", Roles: []string{"edge"}},
		"no role": {ID: "web-1"},
	} {
		if _, err := nodes.NewRegistry(store, self, 0, nil); err == nil {
			t.Errorf("%s: NewRegistry accepted %+v", name, self)
		}
	}
	if _, err := nodes.NewRegistry(store, schema.Node{ID: "web-1"}, 0, nil); !errors.Is(err, nodes.ErrInvalidRoles) {
		t.Errorf("no role: %v, want ErrInvalidRoles", err)
	}
}

func TestStateAndAgo(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	stopped := now.Add(-time.Minute)
	for _, c := range []struct {
		name string
		n    schema.Node
		want string
	}{
		{"just seen", schema.Node{LastSeen: now}, nodes.StateLive},
		{"seen at the limit", schema.Node{LastSeen: now.Add(-nodes.DeadAfter)}, nodes.StateLive},
		{"seen in the future", schema.Node{LastSeen: now.Add(time.Second)}, nodes.StateLive},
		{"past the limit", schema.Node{LastSeen: now.Add(-nodes.DeadAfter - time.Millisecond)}, nodes.StateStale},
		{"stopped", schema.Node{LastSeen: now.Add(-time.Hour), StoppedAt: &stopped}, nodes.StateStopped},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := nodes.State(c.n, now); got != c.want {
				t.Fatalf("State = %q, want %q", got, c.want)
			}
		})
	}
	for _, c := range []struct {
		ago  time.Duration
		want string
	}{
		{-time.Second, "0s ago"},
		{3*time.Second + 900*time.Millisecond, "3s ago"},
		{90 * time.Second, "1m ago"},
		{3 * time.Hour, "3h ago"},
		{47 * time.Hour, "47h ago"},
		{72 * time.Hour, "3d ago"},
	} {
		if got := nodes.Ago(now.Add(-c.ago), now); got != c.want {
			t.Errorf("Ago(%v) = %q, want %q", c.ago, got, c.want)
		}
	}
}

// TestTwoProcessesWithOneID: two processes heartbeating one node id (a
// copied data directory) each say so in their log, loudly.
func TestTwoProcessesWithOneID(t *testing.T) {
	t.Parallel()
	store := schematest.Store(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs [2]*logBuffer
	var done sync.WaitGroup
	for i := range logs {
		logs[i] = &logBuffer{}
		r, err := nodes.NewRegistry(store, schema.Node{ID: "twin", Roles: []string{"edge"}}, 20*time.Millisecond,
			slog.New(slog.NewTextHandler(logs[i], nil)))
		if err != nil {
			t.Fatal(err)
		}
		done.Go(func() { r.Run(ctx) })
	}
	for i, l := range logs {
		waitFor(t, "process "+string(rune('a'+i))+" to notice the other", func() bool {
			return strings.Contains(l.String(), "another process runs with this node id")
		})
	}
	cancel()
	done.Wait()
}
