// Package schematest gives tests a real PostgreSQL: one private cluster per test
// binary (the same supervisor the server uses) and a fresh, migrated database per
// test.
//
// Every test database is a copy of a template database that is migrated once per
// test binary (CREATE DATABASE ... TEMPLATE), which costs a few milliseconds
// instead of running every migration again. Databases are never shared, so a
// database-backed test may call t.Parallel:
//
//	func TestMain(m *testing.M) { schematest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		t.Parallel()
//		store := schematest.Store(t)
//		...
//	}
//
// A package whose tests need tables another package migrates (River's job
// queue) names that migration in TestMain, so that the template has them too:
//
//	func TestMain(m *testing.M) {
//		schematest.MainWith(m, schematest.Options{Migrate: pipeline.MigrateQueue})
//	}
package schematest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"minivercel/schema"
)

// Options change how the test databases of a package are prepared.
type Options struct {
	// Migrate runs once on the template database after schema.Migrate, for
	// tables that another package owns (pipeline.MigrateQueue for River's).
	// Every test database starts as a copy of the result. Zero value: the
	// template gets schema.Migrate only.
	Migrate func(ctx context.Context, pool *pgxpool.Pool) error
}

// templateName names the migrated database every test database is copied from.
const templateName = "migrated"

var (
	mu       sync.Mutex
	cluster  *schema.Cluster
	dir      string
	opts     Options
	migrated bool  // the template database exists and is migrated
	tmplErr  error // why the template could not be made; every test fails with it
	counter  atomic.Int64
)

// Main runs the tests of a package and stops its cluster afterwards. Call it from
// TestMain.
func Main(m *testing.M) { MainWith(m, Options{}) }

// MainWith is Main with options for the package's test databases. Call it from
// TestMain.
func MainWith(m *testing.M, o Options) {
	mu.Lock()
	opts = o
	mu.Unlock()
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
	c, err := startLocked()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func startLocked() (*schema.Cluster, error) {
	if cluster != nil {
		return cluster, nil
	}
	// A short path: the socket path must stay under 108 bytes.
	d, err := os.MkdirTemp("", "mvpg")
	if err != nil {
		return nil, fmt.Errorf("create cluster dir: %w", err)
	}
	c, err := schema.StartCluster(context.Background(), schema.ClusterConfig{Dir: d, Fast: true})
	if err != nil {
		os.RemoveAll(d)
		return nil, fmt.Errorf("start test cluster: %w", err)
	}
	cluster, dir = c, d
	return c, nil
}

// template returns the cluster with the migrated template database, making
// both on first use. A failure is remembered: the tests after the first one
// fail at once with the same error rather than each trying again.
func template() (*schema.Cluster, error) {
	mu.Lock()
	defer mu.Unlock()
	if migrated || tmplErr != nil {
		return cluster, tmplErr
	}
	c, err := startLocked()
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	if err := c.CreateDatabase(ctx, templateName); err != nil {
		tmplErr = fmt.Errorf("create template database: %w", err)
		return nil, tmplErr
	}
	pool, err := schema.Open(ctx, c.DSNFor(templateName))
	if err != nil {
		tmplErr = fmt.Errorf("open template database: %w", err)
		return nil, tmplErr
	}
	// The pool must be closed before the first copy: PostgreSQL copies no
	// database that has other sessions.
	defer pool.Close()
	if err := schema.Migrate(ctx, pool); err != nil {
		tmplErr = fmt.Errorf("migrate template database: %w", err)
		return nil, tmplErr
	}
	if opts.Migrate != nil {
		if err := opts.Migrate(ctx, pool); err != nil {
			tmplErr = fmt.Errorf("migrate template database (package migrations): %w", err)
			return nil, tmplErr
		}
	}
	migrated = true
	return c, nil
}

// DSN creates a fresh, migrated database for the test and returns its DSN. The
// database is the test's own: parallel tests never see each other's rows.
func DSN(t testing.TB) string {
	t.Helper()
	c, err := template()
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("t%d_%d", os.Getpid(), counter.Add(1))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.DSNFor("postgres"))
	if err != nil {
		t.Fatalf("connect to test cluster: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE "+templateName); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	return c.DSNFor(name)
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

// Project adds a project named name, owned by a new user, to store.
func Project(t testing.TB, store *schema.Store, name string) schema.Project {
	t.Helper()
	u, err := store.CreateUser(context.Background(), "owner-"+name, false)
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := store.EnsureProject(context.Background(), name, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ProjectTest is the opening of a test about one project: it marks t
// parallel (its database is its own) and returns t's context, a fresh store
// and a project named name in it (see Project).
func ProjectTest(t *testing.T, name string) (context.Context, *schema.Store, schema.Project) {
	t.Helper()
	t.Parallel()
	store := Store(t)
	return t.Context(), store, Project(t, store, name)
}

// Nodes registers three nodes in store, one in each state by the database's
// clock: web-1 (gitd, edge and panel at 10.0.0.1, v1.4.0) live, build-1
// (worker, v1.4.0) not seen for a minute, so stale, and old-1 (edge at
// 10.0.0.9, v1.3.0) stopped.
func Nodes(t testing.TB, store *schema.Store) {
	t.Helper()
	ctx := context.Background()
	for _, n := range []schema.Node{
		{ID: "web-1", Roles: []string{"gitd", "edge", "panel"}, Address: "10.0.0.1", Version: "v1.4.0"},
		{ID: "build-1", Roles: []string{"worker"}, Version: "v1.4.0"},
		{ID: "old-1", Roles: []string{"edge"}, Address: "10.0.0.9", Version: "v1.3.0"},
	} {
		if err := store.RegisterNode(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.Pool().Exec(ctx, `UPDATE nodes SET last_seen = now() - interval '1 minute' WHERE id = 'build-1'`); err != nil {
		t.Fatal(err)
	}
	if err := store.StopNode(ctx, "old-1"); err != nil {
		t.Fatal(err)
	}
}
