package schema_test

import (
	"errors"
	"testing"

	"minivercel/schema"
	"minivercel/schema/schematest"
)

func TestActivationHistory(t *testing.T) {
	ctx, store, p := schematest.ProjectTest(t, "blog")
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
