package edge

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// recordedSleep is a backoff sleep that waits for nothing: it records the
// waits asked for and runs then, if set, before returning (the world changing
// while the edge waits).
type recordedSleep struct {
	waits []time.Duration
	then  func(n int) error // n counts the waits from 1
}

func (r *recordedSleep) sleep(ctx context.Context, d time.Duration) error {
	r.waits = append(r.waits, d)
	if r.then != nil {
		if err := r.then(len(r.waits)); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// schedule is the waits a backoff asks for before attempt n+1.
func schedule(b backoff, n int) []time.Duration {
	var waits []time.Duration
	for w := b.first; len(waits) < n; w = min(w*2, b.max) {
		waits = append(waits, w)
	}
	return waits
}

var (
	errTransient = errors.New("transient")
	errPermanent = errors.New("permanent")
)

// TestBackoffProperty is the seed's Property 28 for the retry itself: for any
// sequence of attempt outcomes, transient failures are retried after waits
// that double from the first up to the cap, at most tries attempts are made,
// a permanent failure or a success ends the retry at once, and a context that
// ends during a wait stops it with the context's error.
func TestBackoffProperty(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(rt *rapid.T) {
		outcomes := rapid.SliceOfN(rapid.SampledFrom([]string{"ok", "transient", "permanent"}), 1, 10).Draw(rt, "outcomes")
		rec := &recordedSleep{}
		b := backoff{
			first: time.Duration(rapid.IntRange(1, 100).Draw(rt, "first ms")) * time.Millisecond,
			max:   time.Duration(rapid.IntRange(1, 500).Draw(rt, "max ms")) * time.Millisecond,
			tries: rapid.IntRange(1, 8).Draw(rt, "tries"),
			sleep: rec.sleep,
		}
		cancelAt := rapid.IntRange(0, 8).Draw(rt, "cancel at wait (0: never)")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		rec.then = func(n int) error {
			if n == cancelAt {
				cancel()
			}
			return nil
		}
		calls := 0
		err := b.do(ctx, func(err error) bool { return errors.Is(err, errTransient) }, func() error {
			calls++
			switch outcomes[min(calls, len(outcomes))-1] {
			case "ok":
				return nil
			case "transient":
				return errTransient
			}
			return errPermanent
		})

		// The model: attempts go on while they fail transiently, the tries
		// last and the context has not ended.
		wantCalls, want := 0, ""
		for {
			wantCalls++
			outcome := outcomes[min(wantCalls, len(outcomes))-1]
			if outcome != "transient" {
				want = outcome
				break
			}
			if wantCalls == b.tries {
				want = "gave up"
				break
			}
			if wantCalls == cancelAt {
				want = "canceled"
				break
			}
		}
		if calls != wantCalls {
			rt.Fatalf("%d attempts, want %d", calls, wantCalls)
		}
		if w := schedule(b, wantCalls-1+btoi(want == "canceled")); !slices.Equal(rec.waits, w) {
			rt.Fatalf("waits %v, want %v", rec.waits, w)
		}
		switch want {
		case "ok":
			if err != nil {
				rt.Fatalf("err = %v, want success", err)
			}
		case "permanent":
			if err != errPermanent {
				rt.Fatalf("err = %v, want the permanent error as it is", err)
			}
		case "gave up":
			if !errors.Is(err, errGaveUp) || !errors.Is(err, errTransient) || !strings.Contains(err.Error(), fmt.Sprintf("after %d attempts", b.tries)) {
				rt.Fatalf("err = %v, want giving up after %d attempts with the last cause", err, b.tries)
			}
		case "canceled":
			if !errors.Is(err, context.Canceled) || !errors.Is(err, errTransient) {
				rt.Fatalf("err = %v, want the cancellation and the last cause", err)
			}
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestArtifactReadRetriedProperty is the seed's Property 28 where the edge
// reads artifacts: an artifact that is missing or only partly written when
// the edge first reads it is read again with exponential backoff (50 ms,
// 100 ms, 200 ms, 400 ms) and served once it is whole; one that stays broken
// through every try fails with an error naming the cause; a permanent
// failure (an unsafe archive, a malformed checksum) fails at once.
func TestArtifactReadRetriedProperty(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	good, sum := writeArchive(t, tmp, []entry{file("index.html", "whole")})
	whole, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	unsafe, unsafeSum := writeArchive(t, tmp, []entry{file("../evil", "x")})
	var id int64
	rapid.Check(t, func(rt *rapid.T) {
		id++
		d := newDeployments(filepath.Join(tmp, "deployments"), Limits{}, nil)
		rec := &recordedSleep{}
		d.retry.sleep = rec.sleep
		artifact := filepath.Join(tmp, fmt.Sprintf("artifact-%d.tar.gz", id))
		site := Site{Project: "p28", BuildID: id, ArtifactPath: artifact, SHA256: sum}

		kind := rapid.SampledFrom([]string{"transient", "unsafe", "bad digest"}).Draw(rt, "failure")
		switch kind {
		case "unsafe":
			site.ArtifactPath, site.SHA256 = unsafe, unsafeSum
			_, err := d.extract(context.Background(), site)
			if !errors.Is(err, ErrUnsafeArchive) || len(rec.waits) != 0 {
				rt.Fatalf("unsafe archive: err %v after waits %v, want ErrUnsafeArchive at once", err, rec.waits)
			}
			return
		case "bad digest":
			site.SHA256 = "not-a-digest"
			_, err := d.extract(context.Background(), site)
			if !errors.Is(err, ErrChecksumMismatch) || !strings.Contains(err.Error(), "not a sha256 hex digest") || len(rec.waits) != 0 {
				rt.Fatalf("malformed digest: err %v after waits %v, want a clear error at once", err, rec.waits)
			}
			return
		}
		// The artifact's state at each read until it is whole: missing, or
		// written up to some byte.
		broken := rapid.SliceOfN(rapid.IntRange(-1, len(whole)-1), 0, artifactRetry.tries+1).Draw(rt, "reads before whole (-1: missing)")
		state := func(n int) error {
			os.Remove(artifact)
			if n < len(broken) && broken[n] < 0 {
				return nil
			}
			data := whole
			if n < len(broken) {
				data = whole[:broken[n]]
			}
			return os.WriteFile(artifact, data, 0o644)
		}
		if err := state(0); err != nil {
			rt.Fatal(err)
		}
		rec.then = state
		dir, err := d.extract(context.Background(), site)
		tries := min(len(broken)+1, artifactRetry.tries)
		if w := schedule(artifactRetry, tries-1); !slices.Equal(rec.waits, w) {
			rt.Fatalf("waits %v, want %v", rec.waits, w)
		}
		if len(broken) < artifactRetry.tries {
			if err != nil {
				rt.Fatalf("artifact whole at read %d of %d: %v", len(broken)+1, artifactRetry.tries, err)
			}
			if b, err := os.ReadFile(filepath.Join(dir, "index.html")); err != nil || string(b) != "whole" {
				rt.Fatalf("extracted index.html = %q, %v", b, err)
			}
			return
		}
		last := broken[artifactRetry.tries-1]
		if !errors.Is(err, errGaveUp) || (last < 0) != errors.Is(err, fs.ErrNotExist) || (last >= 0) != errors.Is(err, ErrChecksumMismatch) {
			rt.Fatalf("artifact never whole (last read %d bytes): err %v", last, err)
		}
		if _, serr := os.Stat(filepath.Join(d.dir, fmt.Sprint(id))); !errors.Is(serr, fs.ErrNotExist) {
			rt.Fatalf("a failed extraction left its directory: %v", serr)
		}
	})
}

// TestArtifactRetryHonoursContext: an activation whose context ends while
// the edge waits for an artifact stops waiting.
func TestArtifactRetryHonoursContext(t *testing.T) {
	t.Parallel()
	d := newDeployments(t.TempDir(), Limits{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	rec := &recordedSleep{then: func(int) error { cancel(); return nil }}
	d.retry.sleep = rec.sleep
	_, err := d.extract(ctx, Site{BuildID: 1, ArtifactPath: filepath.Join(t.TempDir(), "missing"), SHA256: strings.Repeat("0", 64)})
	if !errors.Is(err, context.Canceled) || len(rec.waits) != 1 {
		t.Fatalf("err %v after %d waits, want context.Canceled after 1", err, len(rec.waits))
	}
}

// TestSleepCtx: the real sleep of the backoff returns at once when the
// context has ended.
func TestSleepCtx(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sleepCtx(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("sleepCtx = %v", err)
	}
	if err := sleepCtx(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("sleepCtx = %v", err)
	}
}
