package pipeline

import (
	"context"
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"

	"minivercel/schema"
	"minivercel/schema/schematest"
)

// followed reads a follower's events until Done and returns the lines,
// failing t unless they are numbered from 1 without gaps or repeats. want
// is the final status. It gives up after 30 s.
func followed(t fataler, events <-chan Event, want schema.BuildStatus) []string {
	t.Helper()
	var got []string
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("stream closed without a final status after %d lines", len(got))
			}
			if ev.Done {
				if ev.Status != want {
					t.Fatalf("final status %q, want %q", ev.Status, want)
				}
				return got
			}
			if ev.Skipped > 0 || ev.Seq != len(got)+1 {
				t.Fatalf("event seq %d (skipped %d) after %d lines %q", ev.Seq, ev.Skipped, len(got), got)
			}
			got = append(got, ev.Line)
		case <-timeout:
			t.Fatalf("timed out after %d lines", len(got))
		}
	}
}

// nextLines reads n line events from a follower, with a deadline, and
// returns their seqs.
func nextLines(t fataler, events <-chan Event, n int) []int {
	t.Helper()
	var seqs []int
	timeout := time.After(30 * time.Second)
	for len(seqs) < n {
		select {
		case ev, ok := <-events:
			if !ok || ev.Done {
				t.Fatalf("stream ended after %v, want %d lines", seqs, n)
			}
			seqs = append(seqs, ev.Seq)
		case <-timeout:
			t.Fatalf("timed out after lines %v, want %d", seqs, n)
		}
	}
	return seqs
}

// fataler is what the helpers here need of a *testing.T or a *rapid.T.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

func lineTexts(from, n int) []string {
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf("line %d", from+i)
	}
	return lines
}

func equalLines(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) && len(a) == len(b) }

// TestFollowBuildOfAnotherNode: a follower on node X of a build that node
// Y runs (two Brokers on one database) reads every line once, in order,
// then the final status: woken by X.Announce (ChannelLogs, in a server)
// after each of Y's flushes, or, with no announcement at all, by its poll.
func TestFollowBuildOfAnotherNode(t *testing.T) {
	ctx, store, p := schematest.ProjectTest(t, "remote")
	x, y := NewBroker(store, nil), NewBroker(store, nil)

	t.Run("announced", func(t *testing.T) {
		rapid.Check(t, func(t *rapid.T) {
			b, err := store.CreateBuild(ctx, schema.NewBuild{ProjectID: p.ID, Branch: "main", CommitSHA: "abc"})
			if err != nil {
				t.Fatal(err)
			}
			attempt, err := store.ClaimBuild(ctx, b.ID, "node-y")
			if err != nil {
				t.Fatal(err)
			}
			batches := rapid.SliceOfN(rapid.IntRange(0, 40), 0, 6).Draw(t, "batches")
			joinAt := rapid.IntRange(0, len(batches)).Draw(t, "joinAt") // before batch joinAt; len: after the end
			var events <-chan Event
			follow := func() {
				if events, err = x.Follow(ctx, b.ID); err != nil {
					t.Fatal(err)
				}
			}
			y.BeginRedacted(b.ID, nil, 0)
			var want []string
			for i, n := range batches {
				if i == joinAt {
					follow()
				}
				for _, line := range lineTexts(len(want)+1, n) {
					y.Publish(b.ID, line)
					want = append(want, line)
				}
				y.Flush(b.ID)
				x.Announce(b.ID)
			}
			y.Flush(b.ID)
			if err := store.FinishAttempt(ctx, b.ID, attempt, schema.BuildSucceeded, ""); err != nil {
				t.Fatal(err)
			}
			y.Finish(b.ID, schema.BuildSucceeded)
			x.Announce(b.ID)
			if joinAt == len(batches) {
				follow()
			}
			if got := followed(t, events, schema.BuildSucceeded); !equalLines(got, want) {
				t.Fatalf("follower on X read %d lines %q, want %d", len(got), got, len(want))
			}
		})
	})

	t.Run("polled", func(t *testing.T) {
		b, err := store.CreateBuild(ctx, schema.NewBuild{ProjectID: p.ID, Branch: "main", CommitSHA: "def"})
		if err != nil {
			t.Fatal(err)
		}
		attempt, err := store.ClaimBuild(ctx, b.ID, "node-y")
		if err != nil {
			t.Fatal(err)
		}
		events, err := x.Follow(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		y.BeginRedacted(b.ID, nil, 0)
		var want []string
		// Each batch reaches the follower before the next is written: no
		// announcement ever comes, so only its poll can have woken it.
		for _, n := range []int{3, 1, 5} {
			for _, line := range lineTexts(len(want)+1, n) {
				y.Publish(b.ID, line)
				want = append(want, line)
			}
			y.Flush(b.ID)
			seqs := nextLines(t, events, n)
			if seqs[0] != len(want)-n+1 || seqs[n-1] != len(want) {
				t.Fatalf("got seqs %v, want %d to %d", seqs, len(want)-n+1, len(want))
			}
		}
		y.Flush(b.ID)
		if err := store.FinishAttempt(ctx, b.ID, attempt, schema.BuildFailed, "boom"); err != nil {
			t.Fatal(err)
		}
		y.Finish(b.ID, schema.BuildFailed)
		if rest := followed(t, events, schema.BuildFailed); len(rest) != 0 {
			t.Fatalf("lines after the last batch: %q", rest)
		}
	})
}

// TestFollowResumedBuild: a build resumed on another worker after n lines
// of an earlier attempt (BeginRedacted with after = n) is followed, on the
// node running it and on another, as one log: lines 1..n from the
// database, then the new ones numbered n+1 on, none twice, none missing.
func TestFollowResumedBuild(t *testing.T) {
	ctx, store, p := schematest.ProjectTest(t, "resumed")
	x, y := NewBroker(store, nil), NewBroker(store, nil)
	rapid.Check(t, func(t *rapid.T) {
		b, err := store.CreateBuild(ctx, schema.NewBuild{ProjectID: p.ID, Branch: "main", CommitSHA: "abc"})
		if err != nil {
			t.Fatal(err)
		}
		// The first attempt ran on a worker that died after storing its
		// lines; the build was queued again and node-y claimed it.
		if _, err := store.ClaimBuild(ctx, b.ID, "node-dead"); err != nil {
			t.Fatal(err)
		}
		stored := rapid.IntRange(0, 60).Draw(t, "stored")
		want := lineTexts(1, stored)
		if err := store.AppendLogLines(ctx, b.ID, 1, want); err != nil {
			t.Fatal(err)
		}
		if err := store.RequeueBuild(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		attempt, err := store.ClaimBuild(ctx, b.ID, "node-y")
		if err != nil {
			t.Fatal(err)
		}
		after, err := store.LastLogSeq(ctx, b.ID)
		if err != nil || after != stored {
			t.Fatalf("LastLogSeq = %d, %v; want %d", after, err, stored)
		}

		fresh := rapid.IntRange(0, 60).Draw(t, "fresh")
		// -1: before the build begins on node-y; fresh+1: after it ended.
		joinLocal := rapid.IntRange(-1, fresh+1).Draw(t, "joinLocal")
		joinRemote := rapid.IntRange(-1, fresh+1).Draw(t, "joinRemote")
		flushEvery := rapid.IntRange(1, 20).Draw(t, "flushEvery")
		var local, remote <-chan Event
		join := func(at int) {
			if at == joinLocal {
				if local, err = y.Follow(ctx, b.ID); err != nil {
					t.Fatal(err)
				}
			}
			if at == joinRemote {
				if remote, err = x.Follow(ctx, b.ID); err != nil {
					t.Fatal(err)
				}
			}
		}
		join(-1)
		y.BeginRedacted(b.ID, nil, after)
		for i, line := range lineTexts(stored+1, fresh) {
			join(i)
			y.Publish(b.ID, line)
			want = append(want, line)
			if (i+1)%flushEvery == 0 {
				y.Flush(b.ID)
				x.Announce(b.ID)
			}
		}
		join(fresh)
		y.Flush(b.ID)
		if err := store.FinishAttempt(ctx, b.ID, attempt, schema.BuildSucceeded, ""); err != nil {
			t.Fatal(err)
		}
		y.Finish(b.ID, schema.BuildSucceeded)
		x.Announce(b.ID)
		join(fresh + 1)

		lines, err := store.LogLines(ctx, b.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range lines {
			if i >= len(want) || l.Seq != i+1 || l.Line != want[i] {
				t.Fatalf("stored line %d: %+v; want %d lines %q", i, l, len(want), want)
			}
		}
		if len(lines) != len(want) {
			t.Fatalf("stored %d lines, want %d", len(lines), len(want))
		}
		if got := followed(t, local, schema.BuildSucceeded); !equalLines(got, want) {
			t.Fatalf("follower on node-y read %d lines %q, want %d", len(got), got, len(want))
		}
		if got := followed(t, remote, schema.BuildSucceeded); !equalLines(got, want) {
			t.Fatalf("follower on X read %d lines %q, want %d", len(got), got, len(want))
		}
	})
}

// TestAnnounceZeroWakesEveryFollower: after the notification connection
// was lost (schema.Resync), Announce(0) wakes every follower of a build
// of another node at once.
func TestAnnounceZeroWakesEveryFollower(t *testing.T) {
	ctx, store, p := schematest.ProjectTest(t, "resync")
	x, y := NewBroker(store, nil), NewBroker(store, nil)
	var builds []schema.Build
	var followers []<-chan Event
	for range 3 {
		b, err := store.CreateBuild(ctx, schema.NewBuild{ProjectID: p.ID, Branch: "main", CommitSHA: "abc"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.ClaimBuild(ctx, b.ID, "node-y"); err != nil {
			t.Fatal(err)
		}
		events, err := x.Follow(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		builds, followers = append(builds, b), append(followers, events)
		y.BeginRedacted(b.ID, nil, 0)
	}
	for i, b := range builds {
		for _, line := range lineTexts(1, i+1) {
			y.Publish(b.ID, line)
		}
		y.Flush(b.ID)
	}
	x.Announce(0)
	for i, events := range followers {
		if seqs := nextLines(t, events, i+1); seqs[i] != i+1 {
			t.Fatalf("follower %d got seqs %v", i, seqs)
		}
	}
	for _, b := range builds {
		y.Flush(b.ID)
		if err := store.FinishAttempt(ctx, b.ID, 1, schema.BuildCanceled, ""); err != nil {
			t.Fatal(err)
		}
		y.Finish(b.ID, schema.BuildCanceled)
	}
	x.Announce(0)
	for _, events := range followers {
		select {
		case ev := <-events:
			if !ev.Done || ev.Status != schema.BuildCanceled {
				t.Fatalf("got %+v, want the end", ev)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("timed out waiting for the end")
		}
	}
}

// TestFollowersLeaveNothingBehind: a follower of a build from the database
// that returns (the build ended, or the follower left) leaves no wait of
// its in the broker: reading old logs does not grow the broker.
func TestFollowersLeaveNothingBehind(t *testing.T) {
	ctx, store, p := schematest.ProjectTest(t, "leave")
	x := NewBroker(store, nil)
	done, err := store.CreateBuild(ctx, schema.NewBuild{ProjectID: p.ID, Branch: "main", CommitSHA: "abc"})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.FinishBuild(ctx, done.ID, schema.BuildSucceeded, ""); err != nil {
		t.Fatal(err)
	}
	queued, err := store.CreateBuild(ctx, schema.NewBuild{ProjectID: p.ID, Branch: "main", CommitSHA: "def"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		ch, err := x.Follow(ctx, done.ID)
		if err != nil {
			t.Fatal(err)
		}
		for range ch {
		}
	}
	fctx, cancel := context.WithCancel(ctx)
	ch, err := x.Follow(fctx, queued.ID)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	for range ch {
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		x.mu.Lock()
		n := len(x.stored)
		x.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d waits left in the broker after every follower returned", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
