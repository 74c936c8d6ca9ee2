package schema_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"

	"minivercel/internal/testwait"
	"minivercel/schema"
	"minivercel/schema/schematest"
)

// runListener starts a Listener on channels in store's database and returns
// it once it listens, with the pid of its backend. It stops at the test's end.
func runListener(t *testing.T, store *schema.Store, channels ...string) (*schema.Listener, int32) {
	t.Helper()
	l := schema.NewListener(store, slog.New(slog.DiscardHandler), channels...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return l, listenerBackend(t, store, channels[len(channels)-1], 0)
}

// listenerBackend waits for the backend of the test's database whose
// latest statement was the LISTEN on channel, finished (idle): the
// Listener's connection, listening on every channel (it LISTENs on them in
// order). A backend other than not is waited for; not 0 accepts any.
// pg_stat_activity.query shows the last statement a backend ran, and the
// Listener runs none after its LISTENs until its 30 s ping.
func listenerBackend(t *testing.T, store *schema.Store, channel string, not int32) int32 {
	t.Helper()
	var pid int32
	testwait.Until(t, "the listener's backend listens on "+channel, func() bool {
		err := store.Pool().QueryRow(t.Context(), `SELECT pid FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> $2
			AND state = 'idle' AND query = $1`, "LISTEN "+pgx.Identifier{channel}.Sanitize(), not).Scan(&pid)
		if errors.Is(err, pgx.ErrNoRows) {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		return true
	})
	return pid
}

func TestListenerDeliversNotifications(t *testing.T) {
	ctx, store, p := schematest.ProjectTest(t, "notify")
	l, _ := runListener(t, store, schema.ChannelLogs, schema.ChannelRoutes, schema.ChannelDeploy)
	logs, stopLogs := l.Subscribe(schema.ChannelLogs)
	defer stopLogs()
	routes, stopRoutes := l.Subscribe(schema.ChannelRoutes)
	defer stopRoutes()
	routes2, stopRoutes2 := l.Subscribe(schema.ChannelRoutes)
	defer stopRoutes2()
	deploys, stopDeploys := l.Subscribe(schema.ChannelDeploy)
	defer stopDeploys()

	t.Run("Notify reaches every subscriber of its channel only", func(t *testing.T) {
		if err := store.Notify(ctx, schema.ChannelRoutes, "shop"); err != nil {
			t.Fatal(err)
		}
		for i, ch := range []<-chan string{routes, routes2} {
			if got := testwait.Recv(t, ch, "the routes notification"); got != "shop" {
				t.Fatalf("subscriber %d got %q, want shop", i, got)
			}
		}
		// The next notification on the logs channel is the one sent there
		// after: the routes one never reached it.
		if err := store.Notify(ctx, schema.ChannelLogs, "42"); err != nil {
			t.Fatal(err)
		}
		if got := testwait.Recv(t, logs, "the logs notification"); got != "42" {
			t.Fatalf("logs subscriber got %q, want 42", got)
		}
	})

	t.Run("a notification of a rolled back transaction is never sent", func(t *testing.T) {
		errRollback := errors.New("roll back")
		err := store.InTx(ctx, func(tx pgx.Tx) error {
			if err := store.WithTx(tx).Notify(ctx, schema.ChannelRoutes, "rolled-back"); err != nil {
				return err
			}
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			t.Fatal(err)
		}
		if err := store.Notify(ctx, schema.ChannelRoutes, "committed"); err != nil {
			t.Fatal(err)
		}
		// Notifications arrive in commit order: the first to arrive after
		// the rollback is the committed one.
		if got := testwait.Recv(t, routes, "the committed notification"); got != "committed" {
			t.Fatalf("got %q, want committed", got)
		}
		if got := testwait.Recv(t, routes2, "the committed notification"); got != "committed" {
			t.Fatalf("second subscriber got %q, want committed", got)
		}
	})

	t.Run("log lines and a build's end name the build", func(t *testing.T) {
		b := queuedBuild(t, store, p)
		id := strconv.FormatInt(b.ID, 10)
		if err := store.AppendLogLines(ctx, b.ID, 1, []string{"-----> Cloning", "done"}); err != nil {
			t.Fatal(err)
		}
		if got := testwait.Recv(t, logs, "the new lines' notification"); got != id {
			t.Fatalf("AppendLogLines notified %q, want the build id %s", got, id)
		}
		if seq, err := store.LastLogSeq(ctx, b.ID); err != nil || seq != 2 {
			t.Fatalf("LastLogSeq = %d, %v; want 2", seq, err)
		}
		attempt, err := store.ClaimBuild(ctx, b.ID, "worker-a")
		if err != nil {
			t.Fatal(err)
		}
		if err := store.FinishAttempt(ctx, b.ID, attempt, schema.BuildSucceeded, ""); err != nil {
			t.Fatal(err)
		}
		if got := testwait.Recv(t, logs, "the build's end"); got != id {
			t.Fatalf("FinishAttempt notified %q, want the build id %s", got, id)
		}
		// A refused finish notifies nothing: the next notification is the
		// marker sent after it.
		if err := store.FinishAttempt(ctx, b.ID, attempt, schema.BuildFailed, ""); !errors.Is(err, schema.ErrConflict) {
			t.Fatalf("second finish: %v, want ErrConflict", err)
		}
		if err := store.Notify(ctx, schema.ChannelLogs, "marker"); err != nil {
			t.Fatal(err)
		}
		if got := testwait.Recv(t, logs, "the marker"); got != "marker" {
			t.Fatalf("got %q after a refused finish, want the marker", got)
		}
	})

	t.Run("an edge report wakes the activation", func(t *testing.T) {
		b := buildOn(t, store, p, "worker-a")
		d, err := store.StartDeployment(ctx, p.ID, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.ReportEdge(ctx, schema.EdgeReport{DeploymentID: d.ID, NodeID: "edge-a", Ready: true}); err != nil {
			t.Fatal(err)
		}
		if got, want := testwait.Recv(t, deploys, "the edge's report"), "ready:"+strconv.FormatInt(d.ID, 10); got != want {
			t.Fatalf("ReportEdge notified %q, want %q", got, want)
		}
	})

	t.Run("an ended subscription gets nothing more", func(t *testing.T) {
		stopRoutes2()
		if err := store.Notify(ctx, schema.ChannelRoutes, "after"); err != nil {
			t.Fatal(err)
		}
		if got := testwait.Recv(t, routes, "the notification"); got != "after" {
			t.Fatalf("got %q", got)
		}
		// The Listener delivers to its subscribers in one pass, under one
		// lock: routes having it, routes2 would have it too.
		select {
		case got := <-routes2:
			t.Fatalf("an ended subscription got %q", got)
		default:
		}
	})
}

func TestListenerResyncsAfterLostConnection(t *testing.T) {
	ctx, store, p := schematest.ProjectTest(t, "resync")
	l, pid := runListener(t, store, schema.ChannelLogs, schema.ChannelRoutes)
	logs, stopLogs := l.Subscribe(schema.ChannelLogs)
	defer stopLogs()
	routes, stopRoutes := l.Subscribe(schema.ChannelRoutes)
	defer stopRoutes()

	b := queuedBuild(t, store, p)
	id := strconv.FormatInt(b.ID, 10)
	if err := store.AppendLogLines(ctx, b.ID, 1, []string{"one"}); err != nil {
		t.Fatal(err)
	}
	if got := testwait.Recv(t, logs, "the first lines"); got != id {
		t.Fatalf("got %q, want %s", got, id)
	}

	// The connection dies as it would when PostgreSQL restarts or a network
	// drops it.
	var killed bool
	if err := store.Pool().QueryRow(ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate the listener's backend %d: %v, %v", pid, killed, err)
	}
	// Lines stored while nobody listened are never announced: the
	// subscribers learn to read the state again instead.
	if err := store.AppendLogLines(ctx, b.ID, 2, []string{"two"}); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]<-chan string{"logs": logs, "routes": routes} {
		// What arrives first after the kill is Resync; an announcement of
		// the lines above may come before it only if it was delivered
		// before the kill took effect.
		got := testwait.Recv(t, ch, "resync on "+name)
		if got == id && name == "logs" {
			got = testwait.Recv(t, ch, "resync on "+name)
		}
		if got != schema.Resync {
			t.Fatalf("%s subscriber got %q after the reconnection, want Resync", name, got)
		}
	}
	if again := listenerBackend(t, store, schema.ChannelRoutes, pid); again == pid {
		t.Fatalf("the listener still uses backend %d", pid)
	}

	// Listening again: later notifications arrive as before.
	if err := store.AppendLogLines(ctx, b.ID, 3, []string{"three"}); err != nil {
		t.Fatal(err)
	}
	if got := testwait.Recv(t, logs, "lines after the reconnection"); got != id {
		t.Fatalf("got %q after the reconnection, want %s", got, id)
	}
	if err := store.Notify(ctx, schema.ChannelRoutes, "shop"); err != nil {
		t.Fatal(err)
	}
	if got := testwait.Recv(t, routes, "a route change after the reconnection"); got != "shop" {
		t.Fatalf("got %q after the reconnection, want shop", got)
	}
}
