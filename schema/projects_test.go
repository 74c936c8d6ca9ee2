package schema_test

import (
	"context"
	"errors"
	"testing"

	"pgregory.net/rapid"

	"minivercel/schema"
	"minivercel/schema/schematest"
)

// TestProjectDataPersistence is the seed's Property 1: whatever a project is
// stored with is what is read back, through a new connection pool.
func TestProjectDataPersistence(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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

// TestProjectLimitsStored: a project's own limits are stored and read back
// (migration 007), and the database refuses what ValidateSettings refuses.
func TestProjectLimitsStored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := schema.Open(ctx, schematest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store := schema.NewStore(pool)
	owner, err := store.CreateUser(ctx, "owner", true)
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := store.EnsureProject(ctx, "limited", owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p.MemoryLimit != 0 || p.PidsLimit != 0 {
		t.Fatalf("a new project has limits %d, %d; want the server's defaults (0)", p.MemoryLimit, p.PidsLimit)
	}
	ps := p.Settings()
	ps.MemoryLimit, ps.PidsLimit = 512<<20, 128
	if _, err := store.UpdateProjectSettings(ctx, p.ID, ps); err != nil {
		t.Fatal(err)
	}
	got, err := store.ProjectByName(ctx, "limited")
	if err != nil || got.MemoryLimit != 512<<20 || got.PidsLimit != 128 {
		t.Fatalf("read back %+v, %v", got.ProjectSettings, err)
	}
	sums, err := store.ProjectSummaries(ctx)
	if err != nil || len(sums) != 1 || sums[0].MemoryLimit != 512<<20 {
		t.Fatalf("summaries %+v, %v", sums, err)
	}
	ps.MemoryLimit = 1 << 20
	if _, err := store.UpdateProjectSettings(ctx, p.ID, ps); !errors.Is(err, schema.ErrInvalid) {
		t.Fatalf("a 1 MiB limit: %v, want ErrInvalid", err)
	}
}
