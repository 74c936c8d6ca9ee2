package schema_test

import (
	"slices"
	"testing"
	"time"

	"minivercel/schema"
	"minivercel/schema/schematest"
)

func TestAddTrafficAddsUp(t *testing.T) {
	ctx, store, p := schematest.ProjectTest(t, "traffic")
	m := time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC)
	row := schema.TrafficMinute{ProjectID: p.ID, Minute: m, Requests: 3, Errors4xx: 1, Errors5xx: 1, Bytes: 100,
		LatencyBuckets: []int64{1, 2, 0}}
	next := row
	next.Minute = m.Add(time.Minute)
	if err := store.AddTraffic(ctx, []schema.TrafficMinute{row, next}); err != nil {
		t.Fatal(err)
	}
	row.LatencyBuckets = []int64{0, 1, 2}
	if err := store.AddTraffic(ctx, []schema.TrafficMinute{row}); err != nil {
		t.Fatal(err)
	}
	got, err := store.TrafficMinutes(ctx, p.ID, m, m.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d minutes, want 2: %+v", len(got), got)
	}
	first := got[0]
	if !first.Minute.Equal(m) || first.Requests != 6 || first.Errors4xx != 2 || first.Errors5xx != 2 || first.Bytes != 200 ||
		!slices.Equal(first.LatencyBuckets, []int64{1, 3, 2}) {
		t.Errorf("first minute = %+v", first)
	}
	if got[1].Requests != 3 || !slices.Equal(got[1].LatencyBuckets, []int64{1, 2, 0}) {
		t.Errorf("second minute = %+v", got[1])
	}
	if got, _ := store.TrafficMinutes(ctx, p.ID, m.Add(time.Minute), m.Add(2*time.Minute)); len(got) != 1 {
		t.Errorf("range [m+1, m+2) has %d minutes, want 1", len(got))
	}
}

func TestAddTrafficDropsDeletedProjects(t *testing.T) {
	ctx, store, p := schematest.ProjectTest(t, "gone")
	kept := schematest.Project(t, store, "kept")
	m := time.Now().UTC().Truncate(time.Minute)
	rows := []schema.TrafficMinute{
		{ProjectID: p.ID, Minute: m, Requests: 1, LatencyBuckets: []int64{1}},
		{ProjectID: kept.ID, Minute: m, Requests: 2, LatencyBuckets: []int64{2}},
	}
	if err := store.AddTraffic(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if err := store.DeleteProject(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	// The deleted project's rows went with it, and a later flush of its
	// counts is dropped without failing the others'.
	if err := store.AddTraffic(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if got, _ := store.TrafficMinutes(ctx, p.ID, m, m.Add(time.Minute)); len(got) != 0 {
		t.Errorf("deleted project has %d minutes", len(got))
	}
	if got, _ := store.TrafficMinutes(ctx, kept.ID, m, m.Add(time.Minute)); len(got) != 1 || got[0].Requests != 4 {
		t.Errorf("kept project's minutes = %+v", got)
	}
}

func TestDeleteTrafficBeforeIsBounded(t *testing.T) {
	ctx, store, p := schematest.ProjectTest(t, "old")
	now := time.Now().UTC().Truncate(time.Minute)
	var rows []schema.TrafficMinute
	for i := range 5 {
		rows = append(rows, schema.TrafficMinute{ProjectID: p.ID, Minute: now.Add(-time.Duration(i) * time.Hour), Requests: 1, LatencyBuckets: []int64{1}})
	}
	if err := store.AddTraffic(ctx, rows); err != nil {
		t.Fatal(err)
	}
	cut := now.Add(-90 * time.Minute) // rows at -2h, -3h, -4h are older
	if n, err := store.DeleteTrafficBefore(ctx, cut, 2); err != nil || n != 2 {
		t.Fatalf("first delete = %d, %v; want 2", n, err)
	}
	if n, err := store.DeleteTrafficBefore(ctx, cut, 2); err != nil || n != 1 {
		t.Fatalf("second delete = %d, %v; want 1", n, err)
	}
	got, _ := store.TrafficMinutes(ctx, p.ID, now.Add(-24*time.Hour), now.Add(time.Minute))
	if len(got) != 2 {
		t.Errorf("%d minutes left, want the 2 newer than the cut", len(got))
	}
}

func TestBuildDurationsOfFinishedBuilds(t *testing.T) {
	ctx, store, p := schematest.ProjectTest(t, "durations")
	var ids []int64
	for i := range 4 {
		b, err := store.CreateBuild(ctx, schema.NewBuild{ProjectID: p.ID, Branch: "main", CommitSHA: "abc"})
		if err != nil {
			t.Fatal(err)
		}
		if i == 3 { // still queued: no duration
			break
		}
		if err := store.StartBuild(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		if err := store.FinishBuild(ctx, b.ID, schema.BuildSucceeded, ""); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, b.ID)
	}
	got, err := store.BuildDurations(ctx, p.ID, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].BuildID != ids[1] || got[1].BuildID != ids[2] {
		t.Fatalf("durations = %+v, want builds %v oldest first", got, ids[1:])
	}
	if got[0].Seconds < 0 || got[0].Status != schema.BuildSucceeded {
		t.Errorf("duration = %+v", got[0])
	}
}
