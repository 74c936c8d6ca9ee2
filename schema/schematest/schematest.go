// Package schematest gives tests a real PostgreSQL: one private cluster per test
// binary (the same supervisor the server uses) and a fresh, migrated database per
// test.
package schematest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"minivercel/schema"
)

var (
	mu      sync.Mutex
	cluster *schema.Cluster
	dir     string
	counter atomic.Int64
)

// Main runs the tests of a package and stops its cluster afterwards. Call it from
// TestMain.
func Main(m *testing.M) {
	code := m.Run()
	mu.Lock()
	if cluster != nil {
		_ = cluster.Stop()
		_ = os.RemoveAll(dir)
	}
	mu.Unlock()
	os.Exit(code)
}

// Cluster returns the package's cluster, starting it on first use.
func Cluster(t testing.TB) *schema.Cluster {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if cluster != nil {
		return cluster
	}
	d, err := os.MkdirTemp("", "mvpg")
	if err != nil {
		t.Fatalf("create cluster dir: %v", err)
	}
	c, err := schema.StartCluster(context.Background(), schema.ClusterConfig{Dir: d, Fast: true})
	if err != nil {
		os.RemoveAll(d)
		t.Fatalf("start test cluster: %v", err)
	}
	cluster, dir = c, d
	return c
}

// DSN creates a fresh, migrated database for the test and returns its DSN.
func DSN(t testing.TB) string {
	t.Helper()
	c := Cluster(t)
	name := fmt.Sprintf("t%d_%d", os.Getpid(), counter.Add(1))
	ctx := context.Background()
	if err := c.CreateDatabase(ctx, name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	dsn := c.DSNFor(name)
	pool, err := schema.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	defer pool.Close()
	if err := schema.Migrate(ctx, pool); err != nil {
		t.Fatalf("migrate test database: %v", err)
	}
	return dsn
}

// Store returns the queries on a fresh, migrated database closed at the test's end.
func Store(t testing.TB) *schema.Store {
	t.Helper()
	pool, err := schema.Open(context.Background(), DSN(t))
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(pool.Close)
	return schema.NewStore(pool)
}
