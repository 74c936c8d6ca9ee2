package pipeline

import (
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"

	"minivercel/schema"
	"minivercel/schema/schematest"
)

// TestFollowGetsEveryLineOnceInOrder: a follower that arrives before the build
// begins, while it runs, or after it ended reads every line exactly once, in
// order, then the final status.
func TestFollowGetsEveryLineOnceInOrder(t *testing.T) {
	ctx, store, p := schematest.ProjectTest(t, "logs")
	broker := NewBroker(store, nil)
	rapid.Check(t, func(t *rapid.T) {
		b, err := store.CreateBuild(ctx, schema.NewBuild{ProjectID: p.ID, Branch: "main", CommitSHA: "abc"})
		if err != nil {
			t.Fatal(err)
		}
		n := rapid.IntRange(0, 300).Draw(t, "lines")
		joinAt := rapid.IntRange(-1, n+1).Draw(t, "joinAt") // -1 before Begin, n+1 after Finish
		want := make([]string, n)
		for i := range want {
			want[i] = fmt.Sprintf("line %d", i)
		}
		var events <-chan Event
		follow := func() {
			var err error
			if events, err = broker.Follow(ctx, b.ID); err != nil {
				t.Fatal(err)
			}
		}
		if joinAt == -1 {
			follow()
		}
		broker.Begin(b.ID)
		for i, line := range want {
			if i == joinAt {
				follow()
			}
			broker.Publish(b.ID, line)
		}
		if joinAt == n {
			follow()
		}
		broker.Flush(b.ID)
		if err := store.FinishBuild(ctx, b.ID, schema.BuildSucceeded, ""); err != nil {
			t.Fatal(err)
		}
		broker.Finish(b.ID, schema.BuildSucceeded)
		if joinAt == n+1 {
			follow()
		}
		var got []string
		timeout := time.After(30 * time.Second)
		for done := false; !done; {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatalf("stream closed without a final status after %d lines", len(got))
				}
				if ev.Done {
					if ev.Status != schema.BuildSucceeded {
						t.Fatalf("status %q", ev.Status)
					}
					done = true
					continue
				}
				if ev.Seq != len(got)+1 {
					t.Fatalf("seq %d after %d lines", ev.Seq, len(got))
				}
				got = append(got, ev.Line)
			case <-timeout:
				t.Fatalf("timed out after %d lines", len(got))
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("got %d lines, want %d", len(got), len(want))
		}
		stored, _ := store.LogLines(ctx, b.ID, 0)
		if len(stored) != n {
			t.Fatalf("stored %d lines, want %d", len(stored), n)
		}
	})
}
