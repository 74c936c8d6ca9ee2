package schema_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"minivercel/schema"
	"minivercel/schema/schematest"
)

// age moves a node's heartbeat into the past, as if it had stopped beating.
func age(t *testing.T, store *schema.Store, id string, by time.Duration) {
	t.Helper()
	if _, err := store.Pool().Exec(context.Background(),
		`UPDATE nodes SET last_seen = last_seen - $2::bigint * interval '1 microsecond' WHERE id = $1`, id, by.Microseconds()); err != nil {
		t.Fatal(err)
	}
}

func nodeIDs(ns []schema.Node) []string {
	ids := make([]string, len(ns))
	for i, n := range ns {
		ids[i] = n.ID
	}
	return ids
}

func TestNodeRegistry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := schematest.Store(t)

	web := schema.Node{ID: "web-1", Roles: []string{"gitd", "edge", "panel"}, Address: "10.0.0.1", Version: "v1"}
	build := schema.Node{ID: "build-1", Roles: []string{"worker"}, Version: "v1"}
	for _, n := range []schema.Node{web, build} {
		if err := store.RegisterNode(ctx, n); err != nil {
			t.Fatalf("register %s: %v", n.ID, err)
		}
	}
	nodes, err := store.ListNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := nodeIDs(nodes); !slices.Equal(got, []string{"build-1", "web-1"}) {
		t.Fatalf("ListNodes = %v, want by id", got)
	}
	got := nodes[1]
	if !slices.Equal(got.Roles, web.Roles) || got.Address != "10.0.0.1" || got.Version != "v1" || got.StoppedAt != nil ||
		got.StartedAt.IsZero() || got.LastSeen.Before(got.StartedAt) {
		t.Fatalf("web-1 = %+v", got)
	}

	t.Run("heartbeat moves last seen", func(t *testing.T) {
		age(t, store, "web-1", time.Minute)
		if err := heartbeat(ctx, store, "web-1"); err != nil {
			t.Fatal(err)
		}
		now, err := store.Now(ctx)
		if err != nil {
			t.Fatal(err)
		}
		nodes, _ := store.ListNodes(ctx)
		if seen := nodes[1].LastSeen; now.Sub(seen) > time.Second {
			t.Fatalf("last seen %v, the database's now %v", seen, now)
		}
	})

	t.Run("heartbeat of a missing row", func(t *testing.T) {
		if err := heartbeat(ctx, store, "ghost"); !errors.Is(err, schema.ErrNotFound) {
			t.Fatalf("a heartbeat of ghost = %v, want ErrNotFound", err)
		}
		if err := store.StopNode(ctx, "ghost"); !errors.Is(err, schema.ErrNotFound) {
			t.Fatalf("StopNode(ghost) = %v, want ErrNotFound", err)
		}
	})

	t.Run("live nodes by role and age", func(t *testing.T) {
		for _, tc := range []struct {
			role string
			want []string
		}{
			{"", []string{"build-1", "web-1"}},
			{"edge", []string{"web-1"}},
			{"worker", []string{"build-1"}},
			{"nope", nil},
		} {
			live, err := store.LiveNodes(ctx, tc.role, 15*time.Second)
			if err != nil || !slices.Equal(nodeIDs(live), tc.want) && len(live)+len(tc.want) > 0 {
				t.Errorf("LiveNodes(%q) = %v, %v; want %v", tc.role, nodeIDs(live), err, tc.want)
			}
		}
		age(t, store, "build-1", 20*time.Second)
		live, err := store.LiveNodes(ctx, "", 15*time.Second)
		if err != nil || !slices.Equal(nodeIDs(live), []string{"web-1"}) {
			t.Fatalf("LiveNodes after build-1 went quiet = %v, %v", nodeIDs(live), err)
		}
		for id, want := range map[string]bool{"web-1": true, "build-1": false, "ghost": false} {
			if live, err := isLive(ctx, store, id, 15*time.Second); err != nil || live != want {
				t.Errorf("live %s = %v, %v; want %v", id, live, err, want)
			}
		}
	})

	t.Run("stopped is not live", func(t *testing.T) {
		if err := store.StopNode(ctx, "web-1"); err != nil {
			t.Fatal(err)
		}
		if live, err := isLive(ctx, store, "web-1", time.Hour); err != nil || live {
			t.Fatalf("a stopped node is live = %v, %v", live, err)
		}
		nodes, _ := store.ListNodes(ctx)
		if nodes[1].StoppedAt == nil {
			t.Fatal("stopped_at not recorded")
		}
	})

	t.Run("restart with the same id", func(t *testing.T) {
		age(t, store, "web-1", time.Hour)
		if _, err := store.Pool().Exec(ctx, `UPDATE nodes SET started_at = started_at - interval '1 hour' WHERE id = 'web-1'`); err != nil {
			t.Fatal(err)
		}
		before, _ := store.ListNodes(ctx)
		again := schema.Node{ID: "web-1", Roles: []string{"edge"}, Address: "10.0.0.2", Version: "v2"}
		if err := store.RegisterNode(ctx, again); err != nil {
			t.Fatal(err)
		}
		after, _ := store.ListNodes(ctx)
		n := after[1]
		if !slices.Equal(n.Roles, []string{"edge"}) || n.Address != "10.0.0.2" || n.Version != "v2" || n.StoppedAt != nil ||
			!n.StartedAt.After(before[1].StartedAt) || !n.LastSeen.After(before[1].LastSeen) {
			t.Fatalf("after restart %+v (before %+v)", n, before[1])
		}
		if live, err := isLive(ctx, store, "web-1", 15*time.Second); err != nil || !live {
			t.Fatalf("restarted node live = %v, %v", live, err)
		}
	})

	t.Run("refused rows", func(t *testing.T) {
		for name, n := range map[string]schema.Node{
			"empty id":      {Roles: []string{"edge"}},
			"id with caps":  {ID: "Web", Roles: []string{"edge"}},
			"trailing dash": {ID: "web-", Roles: []string{"edge"}},
			"no role":       {ID: "lonely"},
		} {
			if err := store.RegisterNode(ctx, n); !errors.Is(err, schema.ErrInvalid) {
				t.Errorf("%s: RegisterNode = %v, want ErrInvalid", name, err)
			}
		}
	})
}

// heartbeat is a node's heartbeat, by a process with no token.
func heartbeat(ctx context.Context, store *schema.Store, id string) error {
	_, err := store.HeartbeatInstance(ctx, id, "")
	return err
}

// isLive reports whether node id is among the live nodes seen within.
func isLive(ctx context.Context, store *schema.Store, id string, within time.Duration) (bool, error) {
	list, err := store.LiveNodes(ctx, "", within)
	for _, n := range list {
		if n.ID == id {
			return true, err
		}
	}
	return false, err
}
