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
