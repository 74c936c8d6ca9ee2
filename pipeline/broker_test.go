package pipeline

import (
	"fmt"
	"strings"
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

// TestSlowFollowerSkipsAndReachesTheEnd: a follower that reads nothing while
// a build writes far more than its buffer is not cut off: it later reads
// the lines that fitted, one line saying how many it missed, the last line
// and the final status; the stored log has every line.
func TestSlowFollowerSkipsAndReachesTheEnd(t *testing.T) {
	ctx, store, p := schematest.ProjectTest(t, "slow")
	broker := NewBroker(store, nil)
	b, err := store.CreateBuild(ctx, schema.NewBuild{ProjectID: p.ID, Branch: "main", CommitSHA: "abc"})
	if err != nil {
		t.Fatal(err)
	}
	broker.Begin(b.ID)
	events, err := broker.Follow(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	const n = 3 * followerBuffer
	// Publish holds the broker's lock per line; the follower's goroutine
	// may move up to its 64-event output buffer along meanwhile, never more
	// while nobody reads.
	for i := 1; i <= n; i++ {
		broker.Publish(b.ID, fmt.Sprintf("line %d", i))
	}
	broker.Flush(b.ID)
	if err := store.FinishBuild(ctx, b.ID, schema.BuildFailed, "x"); err != nil {
		t.Fatal(err)
	}
	broker.Publish(b.ID, "the last line")
	broker.Finish(b.ID, schema.BuildFailed)

	var lines []string
	var notice string
	skipped := 0
	timeout := time.After(30 * time.Second)
	for done := false; !done; {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("stream closed without the final status after %d lines", len(lines))
			}
			switch {
			case ev.Done:
				if ev.Status != schema.BuildFailed {
					t.Fatalf("status %q", ev.Status)
				}
				done = true
			case strings.Contains(ev.Line, "lines skipped here"):
				notice = ev.Line
				var k int
				fmt.Sscanf(strings.TrimPrefix(notice, "["), "%d", &k)
				skipped += k
			default:
				lines = append(lines, ev.Line)
			}
		case <-timeout:
			t.Fatalf("timed out after %d lines", len(lines))
		}
	}
	if notice == "" || len(lines) >= n || lines[len(lines)-1] != "the last line" {
		t.Fatalf("read %d lines (last %q), notice %q: want fewer than %d, a notice and the last line", len(lines), lines[len(lines)-1], notice, n)
	}
	if len(lines)+skipped != n+1 {
		t.Errorf("read %d lines and %d skipped, want %d in all", len(lines), skipped, n+1)
	}
	if stored, _ := store.LogLines(ctx, b.ID, 0); len(stored) != n+1 {
		t.Errorf("stored %d lines, want %d", len(stored), n+1)
	}
}

// TestLogBudgetProperty: whatever a build prints, the lines kept stay within
// the budget's lines and bytes, every line is either kept or counted, and
// when the output ends the last lines past the budget are shown in order.
func TestLogBudgetProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		maxLines := rapid.IntRange(1, 50).Draw(t, "maxLines")
		maxBytes := rapid.IntRange(1, 2000).Draw(t, "maxBytes")
		b := newLogBudget(maxLines, maxBytes)
		out := rapid.SliceOf(rapid.StringN(0, 60, -1)).Draw(t, "output")
		var kept []string
		bytes := 0
		for _, l := range out {
			if b.keep(l) {
				kept = append(kept, l)
				bytes += len(l) + 1
			}
		}
		if len(kept) > maxLines || bytes > maxBytes {
			t.Fatalf("kept %d lines, %d bytes: over %d, %d", len(kept), bytes, maxLines, maxBytes)
		}
		var shown []string
		b.endOfOutput(func(s string) { shown = append(shown, s) })
		left := out[len(kept):]
		if len(left) == 0 {
			if len(shown) != 0 {
				t.Fatalf("nothing left out, yet %q shown", shown)
			}
			return
		}
		tail := left[max(0, len(left)-tailLines):]
		if len(left) > tailLines {
			if !strings.Contains(shown[0], fmt.Sprintf("[%d lines of output left out", len(left)-tailLines)) {
				t.Fatalf("notice %q, want %d left out", shown[0], len(left)-tailLines)
			}
			shown = shown[1:]
		}
		if fmt.Sprintf("%q", shown) != fmt.Sprintf("%q", tail) {
			t.Fatalf("shown %q, want the last lines %q", shown, tail)
		}
	})
}

// TestFollowStoredLogInPages: a follower of a finished build whose log is
// longer than one replay page gets every line once, in order, then the
// status: the pages join without a gap or a repeat.
func TestFollowStoredLogInPages(t *testing.T) {
	ctx, store, p := schematest.ProjectTest(t, "pages")
	broker := NewBroker(store, nil)
	b, err := store.CreateBuild(ctx, schema.NewBuild{ProjectID: p.ID, Branch: "main", CommitSHA: "abc"})
	if err != nil {
		t.Fatal(err)
	}
	n := 2*replayPage + 7
	broker.Begin(b.ID)
	for i := 1; i <= n; i++ {
		broker.Publish(b.ID, fmt.Sprintf("line %d", i))
	}
	broker.Flush(b.ID)
	if err := store.FinishBuild(ctx, b.ID, schema.BuildSucceeded, ""); err != nil {
		t.Fatal(err)
	}
	broker.Finish(b.ID, schema.BuildSucceeded)
	events, err := broker.Follow(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for ev := range events {
		if ev.Done {
			break
		}
		if got++; ev.Seq != got || ev.Line != fmt.Sprintf("line %d", got) {
			t.Fatalf("event %d: seq %d %q", got, ev.Seq, ev.Line)
		}
	}
	if got != n {
		t.Fatalf("read %d lines, want %d", got, n)
	}
}
