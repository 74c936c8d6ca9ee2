package schema_test

import (
	"testing"

	"minivercel/schema"
	"minivercel/schema/schematest"
)

func TestLogLinesInOrder(t *testing.T) {
	ctx, store, p := schematest.ProjectTest(t, "logs")
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
