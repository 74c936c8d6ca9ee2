package schema_test

import (
	"context"
	"testing"

	"minivercel/schema"
	"minivercel/schema/schematest"
)

func TestMain(m *testing.M) { schematest.Main(m) }

// newProject adds a project named name, owned by a new user, to store.
func newProject(t *testing.T, store *schema.Store, name string) schema.Project {
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
