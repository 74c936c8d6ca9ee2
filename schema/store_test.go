package schema_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"pgregory.net/rapid"

	"minivercel/schema"
	"minivercel/schema/schematest"
)

func TestMain(m *testing.M) { schematest.Main(m) }

// TestProjectDataPersistence is the seed's Property 1: whatever a project is
// stored with is what is read back, through a new connection pool.
func TestProjectDataPersistence(t *testing.T) {
	dsn := schematest.DSN(t)
	ctx := context.Background()
	pool, err := schema.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store := schema.NewStore(pool)
	owner, err := store.CreateUser(ctx, "owner", true)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	rapid.Check(t, func(t *rapid.T) {
		name := rapid.StringMatching(`[a-z0-9][a-z0-9]{0,20}(-[a-z0-9]{1,10})?`).Draw(t, "name")
		if schema.ValidateProjectName(name) != nil {
			t.Skip("reserved")
		}
		branch := rapid.SampledFrom([]string{"main", "master", "prod", "release/v1"}).Draw(t, "branch")
		p, created, err := store.EnsureProject(ctx, name, owner.ID)
		if err != nil {
			t.Fatalf("ensure %q: %v", name, err)
		}
		if created == seen[name] {
			t.Fatalf("created=%v for a name seen=%v", created, seen[name])
		}
		seen[name] = true
		if err := store.SetProductionBranch(ctx, p.ID, branch); err != nil {
			t.Fatal(err)
		}
		other, err := schema.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		got, err := schema.NewStore(other).ProjectByName(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != p.ID || got.Name != name || got.ProductionBranch != branch || got.OwnerID == nil || *got.OwnerID != owner.ID {
			t.Fatalf("read back %+v, stored name=%q branch=%q", got, name, branch)
		}
	})
}

func TestInvalidProjectNameNeverStored(t *testing.T) {
	store := schematest.Store(t)
	ctx := context.Background()
	u, _ := store.CreateUser(ctx, "u", false)
	for _, name := range []string{"../x", "a--b", "A", "", "-a", "api"} {
		if _, _, err := store.EnsureProject(ctx, name, u.ID); !errors.Is(err, schema.ErrInvalidName) {
			t.Errorf("EnsureProject(%q) = %v, want ErrInvalidName", name, err)
		}
	}
	// The database refuses a bad name even when a caller skips validation.
	_, err := store.Pool().Exec(ctx, `INSERT INTO projects (name) VALUES ('a--b')`)
	if !errors.Is(schema.MapError(err), schema.ErrInvalid) {
		t.Fatalf("insert a--b: %v, want ErrInvalid", err)
	}
}

func TestActivationHistory(t *testing.T) {
	store := schematest.Store(t)
	ctx := context.Background()
	u, _ := store.CreateUser(ctx, "u", false)
	p, _, _ := store.EnsureProject(ctx, "blog", u.ID)
	var ids []int64
	for i := 0; i < 3; i++ {
		b, err := store.CreateBuild(ctx, schema.NewBuild{ProjectID: p.ID, Branch: "main", CommitSHA: "abc"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.RecordActivation(ctx, p.ID, b.ID); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, b.ID)
	}
	active, err := store.ActiveBuild(ctx, p.ID)
	if err != nil || active.ID != ids[2] {
		t.Fatalf("active = %v, %v; want build %d", active.ID, err, ids[2])
	}
	hist, _ := store.ListDeployments(ctx, p.ID)
	if len(hist) != 3 || hist[0].Status != schema.DeploymentActive || hist[1].Status != schema.DeploymentSuperseded || hist[1].DeactivatedAt == nil {
		t.Fatalf("history = %+v", hist)
	}
	// The database allows one active production deployment per project.
	_, err = store.Pool().Exec(ctx, `INSERT INTO deployments (project_id, build_id, status) VALUES ($1, $2, 'active')`, p.ID, ids[0])
	if !errors.Is(schema.MapError(err), schema.ErrConflict) {
		t.Fatalf("second active deployment: %v, want ErrConflict", err)
	}
}

func TestLogLinesInOrder(t *testing.T) {
	store := schematest.Store(t)
	ctx := context.Background()
	u, _ := store.CreateUser(ctx, "u", false)
	p, _, _ := store.EnsureProject(ctx, "logs", u.ID)
	b, err := store.CreateBuild(ctx, schema.NewBuild{ProjectID: p.ID, Branch: "main", CommitSHA: "abc"})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.AppendLogLines(ctx, b.ID, 1, []string{"one", "two"}); err != nil {
		t.Fatal(err)
	}
	if err := store.AppendLogLines(ctx, b.ID, 3, []string{"three"}); err != nil {
		t.Fatal(err)
	}
	lines, err := store.LogLines(ctx, b.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 2 || lines[0].Seq != 2 || lines[0].Line != "two" || lines[1].Line != "three" {
		t.Fatalf("lines after 1 = %+v", lines)
	}
}

// TestClusterSurvivesRestart: data written before a stop is there after a start,
// and a second server on the same directory is refused while the first runs.
func TestClusterSurvivesRestart(t *testing.T) {
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
