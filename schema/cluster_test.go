package schema_test

import (
	"context"
	"errors"
	"os"
	"testing"

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
