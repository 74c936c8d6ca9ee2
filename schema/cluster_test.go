package schema_test

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"minivercel/schema"
)

// TestClusterSurvivesRestart: data written before a stop is there after a start,
// and a second server on the same directory is refused while the first runs.
func TestClusterSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "mvrs")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	c, err := schema.StartCluster(ctx, schema.ClusterConfig{Dir: dir, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := schema.Open(ctx, c.DSN())
	if err != nil {
		t.Fatal(err)
	}
	if err := schema.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if _, err := schema.NewStore(pool).CreateUser(ctx, "kept", true); err != nil {
		t.Fatal(err)
	}
	if _, err := schema.StartCluster(ctx, schema.ClusterConfig{Dir: dir}); !errors.Is(err, schema.ErrClusterInUse) {
		t.Fatalf("second start = %v, want ErrClusterInUse", err)
	}
	shared, err := schema.StartCluster(ctx, schema.ClusterConfig{Dir: dir, Shared: true})
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	_ = shared.Stop() // not ours: must leave the cluster running
	if err := pool.Ping(ctx); err != nil {
		t.Fatalf("attached Stop stopped the cluster: %v", err)
	}
	pool.Close()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	c, err = schema.StartCluster(ctx, schema.ClusterConfig{Dir: dir, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	pool, err = schema.Open(ctx, c.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := schema.Migrate(ctx, pool); err != nil {
		t.Fatalf("migrate again: %v", err)
	}
	if _, err := schema.NewStore(pool).UserByName(ctx, "kept"); err != nil {
		t.Fatalf("user after restart: %v", err)
	}
}

// TestClusterComesBackAfterItsDeath: a postmaster killed with SIGKILL (as
// the OOM killer would) is started again by the cluster, and the server's
// pool answers again by itself, with the data intact.
func TestClusterComesBackAfterItsDeath(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "mvkill")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	// Not Fast: without synchronous commits a SIGKILL loses the last ones.
	c, err := schema.StartCluster(ctx, schema.ClusterConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	pool, err := schema.Open(ctx, c.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := schema.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	store := schema.NewStore(pool)
	if _, err := store.CreateUser(ctx, "survivor", true); err != nil {
		t.Fatal(err)
	}
	first := c.PID()
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, err := store.UserByName(ctx, "survivor")
		if err == nil && c.PID() != first {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster did not come back after SIGKILL: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if syscall.Kill(c.PID(), 0) == nil {
		t.Error("the restarted postmaster still runs after Stop")
	}
}
