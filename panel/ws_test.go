package panel

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"
	"pgregory.net/rapid"

	"minivercel/creds"
	"minivercel/internal/testenv"
	"minivercel/pipeline"
	"minivercel/schema"
)

// expectUnauthorized reads the refusal and then the close.
func expectUnauthorized(t *testing.T, wc *wsClient) {
	t.Helper()
	m := wc.next(5 * time.Second)
	if m.Type != "error" || m.Error != "unauthorized" {
		t.Fatalf("got %+v, want the unauthorized error", m)
	}
	if _, err := wc.read(5 * time.Second); err == nil {
		t.Fatal("connection still open after unauthorized")
	}
}

func TestWSAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, nil)
	host := e.srv.Addr().String()
	cookie := func(origin string) http.Header {
		h := http.Header{"Cookie": {sessionCookie + "=" + e.token}}
		if origin != "" {
			h.Set("Origin", origin)
		}
		return h
	}
	ready := func(t *testing.T, wc *wsClient) {
		t.Helper()
		if m := wc.next(5 * time.Second); m.Type != "ready" || m.User != "admin" {
			t.Fatalf("got %+v, want ready for admin", m)
		}
	}
	dial := func(t *testing.T, query string, h http.Header) *wsClient {
		t.Helper()
		wc, err := e.dialWS(query, h)
		if err != nil {
			t.Fatal(err)
		}
		return wc
	}
	t.Run("query token", func(t *testing.T) { ready(t, dial(t, "token="+url.QueryEscape(e.token), nil)) })
	t.Run("API token", func(t *testing.T) {
		tok, hash := creds.NewToken()
		if _, err := e.store.CreateToken(context.Background(), e.admin.ID, "ws", hash); err != nil {
			t.Fatal(err)
		}
		ready(t, dial(t, "token="+tok, nil))
	})
	t.Run("cookie", func(t *testing.T) { ready(t, dial(t, "", cookie(""))) })
	t.Run("cookie from the panel's origin", func(t *testing.T) { ready(t, dial(t, "", cookie("http://"+host))) })
	t.Run("auth message", func(t *testing.T) {
		wc := dial(t, "", nil)
		wc.send(map[string]string{"type": "auth", "token": e.token})
		ready(t, wc)
	})
	t.Run("bad query token", func(t *testing.T) { expectUnauthorized(t, dial(t, "token=garbage", nil)) })
	t.Run("bad auth message", func(t *testing.T) {
		wc := dial(t, "", nil)
		wc.send(map[string]string{"type": "auth", "token": "garbage"})
		expectUnauthorized(t, wc)
	})
	t.Run("no auth message", func(t *testing.T) {
		wc := dial(t, "", nil)
		wc.send(map[string]any{"type": "subscribe_build", "build_id": 1})
		expectUnauthorized(t, wc)
	})
	// Cross-site websocket hijacking: a page of a deployed app (a sibling
	// subdomain) opening the socket with the visitor's cookie is not logged in.
	t.Run("cookie from another origin", func(t *testing.T) {
		wc := dial(t, "", cookie("http://evil."+testBaseDomain))
		wc.send(map[string]any{"type": "subscribe_build", "build_id": 1})
		expectUnauthorized(t, wc)
	})
	t.Run("plain GET", func(t *testing.T) {
		code, data, _ := e.request("GET", "/ws", e.token, nil)
		if code != http.StatusUpgradeRequired || !strings.Contains(string(data), `"error"`) {
			t.Fatalf("GET /ws: %d %s", code, data)
		}
	})
}

func TestWSErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, nil)
	wc := e.connect()
	for _, tc := range []struct {
		send    string
		buildID int64
		msg     string
	}{
		{`{"type":"subscribe_build","build_id":424242}`, 424242, "build not found"},
		{`{"type":"subscribe_build"}`, 0, "build_id"},
		{`{"type":"dance"}`, 0, "unknown message type"},
		{`not json`, 0, "JSON"},
	} {
		if err := wc.c.WriteMessage(fws.TextMessage, []byte(tc.send)); err != nil {
			t.Fatal(err)
		}
		m := wc.next(5 * time.Second)
		if m.Type != "error" || m.BuildID != tc.buildID || !strings.Contains(m.Error, tc.msg) {
			t.Fatalf("after %s: %+v, want error %q", tc.send, m, tc.msg)
		}
	}
}

// publish runs a build's log through the broker as the pipeline does.
func publish(e *testEnv, id int64, lines []string, status schema.BuildStatus) {
	e.broker.Begin(id)
	for _, l := range lines {
		e.broker.Publish(id, l)
	}
	finish(e, id, status)
}

func finish(e *testEnv, id int64, status schema.BuildStatus) {
	e.broker.Flush(id)
	if err := e.store.FinishBuild(context.Background(), id, status, ""); err != nil {
		e.t.Fatal(err)
	}
	e.broker.Finish(id, status)
}

func checkLines(t interface{ Fatalf(string, ...any) }, got []wsMsg, want []string, after int) {
	want = want[min(after, len(want)):]
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d", len(got), len(want))
	}
	for i, m := range got {
		if m.Seq != after+i+1 || m.Line != want[i] {
			t.Fatalf("line %d: seq %d %q, want seq %d %q", i, m.Seq, m.Line, after+i+1, want[i])
		}
	}
}

// TestWSLogStreamingProperty is the seed's Property 9: for any number of lines
// a build produces, any moment a websocket client subscribes (before the build
// begins, while it runs, after it ended) and any after_seq it resumes from, it
// receives every line after after_seq exactly once, in seq order, then the
// final status.
func TestWSLogStreamingProperty(t *testing.T) {
	testenv.Checks(t, 50)
	e := newEnv(t, false, nil)
	p := e.project("stream")
	wc := e.connect()
	rapid.Check(t, func(rt *rapid.T) {
		b := e.storedBuild(p)
		n := rapid.IntRange(0, 400).Draw(rt, "lines")
		joinAt := rapid.IntRange(-1, n+1).Draw(rt, "joinAt") // -1 before Begin, n+1 after Finish
		after := 0
		if rapid.Bool().Draw(rt, "resume") {
			after = rapid.IntRange(0, n+1).Draw(rt, "after_seq")
		}
		want := make([]string, n)
		for i := range want {
			want[i] = fmt.Sprintf("line %d of build %d", i+1, b.ID)
		}
		subscribe := func() {
			wc.subscribe(b.ID, after)
			// The first answer is the build's status: the subscription is
			// registered by the time the next lines are published (or not:
			// either way every line must arrive once).
			if m := wc.next(5 * time.Second); m.Type != "status" || m.BuildID != b.ID {
				rt.Fatalf("first answer %+v, want a status", m)
			}
		}
		if joinAt == -1 {
			subscribe()
		}
		e.broker.Begin(b.ID)
		for i, l := range want {
			if i == joinAt {
				subscribe()
			}
			e.broker.Publish(b.ID, l)
		}
		if joinAt == n {
			subscribe()
		}
		finish(e, b.ID, schema.BuildSucceeded)
		if joinAt == n+1 {
			subscribe()
		}
		got, final, dropped := wc.collect(b.ID, 30*time.Second)
		if final != "succeeded" || dropped != 0 {
			rt.Fatalf("final %q, dropped %d", final, dropped)
		}
		checkLines(rt, got, want, after)
	})
}

// TestWSStatusPushProperty is the seed's Property 25: a subscribed client is
// told of status changes without asking: the current status on subscribe,
// "running" when lines start, and the final status when the build ends.
func TestWSStatusPushProperty(t *testing.T) {
	testenv.Checks(t, 30)
	e := newEnv(t, false, nil)
	p := e.project("push")
	wc := e.connect()
	rapid.Check(t, func(rt *rapid.T) {
		b := e.storedBuild(p)
		status := rapid.SampledFrom([]schema.BuildStatus{schema.BuildSucceeded, schema.BuildFailed, schema.BuildCanceled}).Draw(rt, "status")
		lines := rapid.IntRange(0, 5).Draw(rt, "lines")
		wc.subscribe(b.ID, 0)
		if m := wc.next(5 * time.Second); m.Type != "status" || m.Status != "queued" || m.Final {
			rt.Fatalf("on subscribe: %+v, want queued", m)
		}
		e.broker.Begin(b.ID)
		for i := range lines {
			e.broker.Publish(b.ID, "l"+strconv.Itoa(i))
		}
		if lines > 0 {
			if m := wc.next(5 * time.Second); m.Type != "status" || m.Status != "running" {
				rt.Fatalf("before the first line: %+v, want running", m)
			}
		}
		finish(e, b.ID, status)
		got, final, _ := wc.collect(b.ID, 10*time.Second)
		if final != string(status) || len(got) != lines {
			rt.Fatalf("final %q after %d lines, want %q after %d", final, len(got), status, lines)
		}
	})
}

// TestWSRealBuild follows a real build queued through the API, from queued to
// succeeded, and gets the same lines the API stores.
func TestWSRealBuild(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true, nil)
	e.project("real")
	e.gitPush("real", "main", map[string]string{"index.html": "<h1>hi</h1>"})
	wc := e.connect()
	var b buildJSON
	e.call("POST", "/api/projects/real/builds", nil, http.StatusAccepted, &b)
	wc.subscribe(b.ID, 0)
	got, final, _ := wc.collect(b.ID, 2*time.Minute)
	if final != "succeeded" {
		t.Fatalf("final status %q", final)
	}
	var stored []logLineJSON
	e.call("GET", fmt.Sprintf("/api/builds/%d/logs", b.ID), nil, http.StatusOK, &stored)
	var want []string
	for _, l := range stored {
		want = append(want, l.Line)
	}
	checkLines(t, got, want, 0)
}

// TestWSUnsubscribe: after unsubscribe_build no line of that build arrives;
// several subscriptions share one connection.
func TestWSUnsubscribe(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, nil)
	p := e.project("unsub")
	a, b := e.storedBuild(p), e.storedBuild(p)
	wc := e.connect()
	e.broker.Begin(a.ID)
	e.broker.Publish(a.ID, "a1")
	wc.subscribe(a.ID, 0)
	for _, want := range []string{"queued", "running", "a1"} {
		if m := wc.next(5 * time.Second); m.BuildID != a.ID || (m.Status != want && m.Line != want) {
			t.Fatalf("got %+v, want %s of build %d", m, want, a.ID)
		}
	}
	wc.send(map[string]any{"type": "unsubscribe_build", "build_id": a.ID})
	// Messages are handled in order: once b's status arrives, a is gone.
	wc.subscribe(b.ID, 0)
	if m := wc.next(5 * time.Second); m.Type != "status" || m.BuildID != b.ID {
		t.Fatalf("got %+v, want b's status", m)
	}
	e.broker.Publish(a.ID, "a2")
	finish(e, a.ID, schema.BuildSucceeded)
	publish(e, b.ID, []string{"b1", "b2"}, schema.BuildSucceeded)
	for {
		m := wc.next(5 * time.Second)
		if m.BuildID == a.ID {
			t.Fatalf("after unsubscribe: %+v", m)
		}
		if m.Type == "status" && m.Final {
			break
		}
	}
}

// TestWSBurstIsNotDropped: a client that reads gets every line of a burst of
// output far larger than its queue: the queue waits for it a moment.
func TestWSBurstIsNotDropped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, nil)
	// However slow the machine, a client that reads is waited for.
	e.srv.fullWait.Store(int64(time.Minute))
	b := e.storedBuild(e.project("burst"))
	want := make([]string, 20000)
	for i := range want {
		want[i] = strconv.Itoa(i + 1)
	}
	// The burst is written before the client follows, so that it reaches
	// the client's queue at once whatever the machine's speed (a burst
	// published while a slow follower reads is the broker's to bound:
	// TestSlowFollowerSkipsAndReachesTheEnd).
	e.broker.Begin(b.ID)
	for _, l := range want {
		e.broker.Publish(b.ID, l)
	}
	wc := e.connect()
	wc.subscribe(b.ID, 0)
	finish(e, b.ID, schema.BuildSucceeded)
	got, final, dropped := wc.collect(b.ID, time.Minute)
	if final != "succeeded" || dropped != 0 {
		t.Fatalf("final %q, %d dropped", final, dropped)
	}
	checkLines(t, got, want, 0)
}

// TestWSSlowClient: a client that stops reading never holds the build up;
// what its queue cannot hold is reported as dropped, and every line it does
// get arrives once, in order, followed by the final status.
func TestWSSlowClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, nil)
	// No grace for a full queue: this client stalls for as long as the
	// build runs, however fast the machine.
	e.srv.fullWait.Store(0)
	p := e.project("slow")
	b := e.storedBuild(p)
	wc := e.connect()
	wc.subscribe(b.ID, 0)
	if m := wc.next(5 * time.Second); m.Type != "status" {
		t.Fatalf("got %+v", m)
	}
	// 20,000 lines of 1 KiB: far more than socket buffers and the queue hold
	// while the client reads nothing.
	const n = 20000
	filler := strings.Repeat("x", 1024)
	start := time.Now()
	e.broker.Begin(b.ID)
	for i := range n {
		e.broker.Publish(b.ID, strconv.Itoa(i+1)+" "+filler)
	}
	finish(e, b.ID, schema.BuildSucceeded)
	t.Logf("published %d lines in %s with a stalled client", n, time.Since(start))

	got, final, dropped := wc.collect(b.ID, time.Minute)
	if final != "succeeded" {
		t.Fatalf("final %q", final)
	}
	if dropped == 0 || len(got)+dropped != n {
		t.Fatalf("got %d lines and %d dropped, want %d in all with some dropped", len(got), dropped, n)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Seq <= got[i-1].Seq {
			t.Fatalf("seq %d after %d", got[i].Seq, got[i-1].Seq)
		}
	}
}

// cutOff wraps the queue's Follow: its first stream of each build ends after
// a few events without Done, as the broker ends a follower that fell too
// far behind.
type cutOff struct {
	Logs
	after int
	mu    sync.Mutex
	cut   map[int64]bool
}

func (c *cutOff) Follow(ctx context.Context, id int64) (<-chan pipeline.Event, error) {
	in, err := c.Logs.Follow(ctx, id)
	c.mu.Lock()
	first := !c.cut[id]
	c.cut[id] = true
	c.mu.Unlock()
	if err != nil || !first {
		return in, err
	}
	out := make(chan pipeline.Event)
	go func() {
		defer close(out)
		for i := 0; i < c.after; i++ {
			ev, ok := <-in
			if !ok {
				return
			}
			out <- ev
		}
		// Drain so the broker's goroutine ends with ctx, as a cut-off one does.
		go func() {
			for range in {
			}
		}()
	}()
	return out, nil
}

// TestWSRefollowAfterCutOff: when the broker cuts a stream off without a final
// status, the websocket follows again and skips what it already sent: the
// client still gets every line exactly once.
func TestWSRefollowAfterCutOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, func(l Logs) Logs { return &cutOff{Logs: l, after: 7, cut: map[int64]bool{}} })
	p := e.project("cut")
	b := e.storedBuild(p)
	wc := e.connect()
	want := make([]string, 50)
	for i := range want {
		want[i] = "line " + strconv.Itoa(i+1)
	}
	e.broker.Begin(b.ID)
	for _, l := range want[:20] {
		e.broker.Publish(b.ID, l)
	}
	wc.subscribe(b.ID, 0)
	for _, l := range want[20:] {
		e.broker.Publish(b.ID, l)
	}
	finish(e, b.ID, schema.BuildSucceeded)
	got, final, _ := wc.collect(b.ID, 30*time.Second)
	if final != "succeeded" {
		t.Fatalf("final %q", final)
	}
	checkLines(t, got, want, 0)
}

func TestOutbox(t *testing.T) {
	ctx := context.Background()
	o := newOutbox(3)
	for i := range 5 {
		o.pushLog(ctx, 7, wsLog{Type: "log", BuildID: 7, Seq: i + 1}, 0)
	}
	o.push(8, wsStatus{Type: "status", BuildID: 8, Status: "running"}) // never dropped
	batch := o.take(nil)
	var kinds []string
	for _, m := range batch {
		switch m := m.(type) {
		case wsLog:
			kinds = append(kinds, "log"+strconv.Itoa(m.Seq))
		case wsStatus:
			kinds = append(kinds, "status")
		case wsDropped:
			kinds = append(kinds, fmt.Sprintf("dropped%d", m.Count))
		}
	}
	if want := []string{"log1", "log2", "log3", "status", "dropped2"}; !slices.Equal(kinds, want) {
		t.Fatalf("batch %v, want %v", kinds, want)
	}
	// A later message of the build carries the pending count first.
	for range 4 {
		o.pushLog(ctx, 7, wsLog{Type: "log", BuildID: 7}, 0)
	}
	o.push(7, wsStatus{Type: "status", BuildID: 7})
	if batch := o.take(nil); len(batch) != 5 || batch[3] != (wsDropped{Type: "dropped", BuildID: 7, Count: 1}) {
		t.Fatalf("status after a drop: %v", batch)
	}
	// A full queue holds a line until the writer takes the queue.
	for range 3 {
		o.pushLog(ctx, 7, wsLog{Type: "log", BuildID: 7}, 0)
	}
	queued := make(chan bool)
	go func() { queued <- o.pushLog(ctx, 7, wsLog{Type: "log", BuildID: 7, Seq: 42}, time.Minute) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(o.take(nil)) == 0 && time.Now().Before(deadline) {
	}
	if !<-queued {
		t.Fatal("a line waiting for room was dropped although the writer made room")
	}
}

// BenchmarkLogLatency measures per-line latency from Publish to a websocket
// client over a real loopback connection, for builds of 10,000 lines; each
// line carries its send time. "burst" publishes the lines back to back (the
// figure is mostly queueing behind the burst); "paced" publishes one line
// every 50 µs (20,000 lines/s, a very chatty build), which shows the latency
// of one line through broker, queue, writer and socket.
func BenchmarkLogLatency(b *testing.B) {
	e := newEnv(b, false, nil)
	p := e.project("bench")
	wc := e.connect()
	for _, bc := range []struct {
		name string
		gap  time.Duration
	}{{"burst", 0}, {"paced", 50 * time.Microsecond}} {
		b.Run(bc.name, func(b *testing.B) {
			const n = 10000
			var lat []time.Duration
			for b.Loop() {
				build := e.storedBuild(p)
				wc.subscribe(build.ID, 0)
				if m := wc.next(5 * time.Second); m.Type != "status" {
					b.Fatalf("got %+v", m)
				}
				done := make(chan []time.Duration)
				go func() {
					var l []time.Duration
					for {
						m, err := wc.read(time.Minute)
						if err != nil || (m.Type == "status" && m.Final) {
							done <- l
							return
						}
						if m.Type != "log" {
							continue
						}
						_, ts, _ := strings.Cut(m.Line, "t=")
						sent, _ := strconv.ParseInt(ts, 10, 64)
						l = append(l, time.Duration(time.Now().UnixNano()-sent))
					}
				}()
				e.broker.Begin(build.ID)
				next := time.Now()
				for i := range n {
					// Pacing spins rather than sleeps: timer granularity is
					// coarser than the gap.
					for bc.gap > 0 && time.Now().Before(next) {
					}
					next = next.Add(bc.gap)
					e.broker.Publish(build.ID, "line "+strconv.Itoa(i)+" t="+strconv.FormatInt(time.Now().UnixNano(), 10))
				}
				finish(e, build.ID, schema.BuildSucceeded)
				l := <-done
				if len(l) != n {
					b.Fatalf("received %d lines, want %d", len(l), n)
				}
				lat = append(lat, l...)
			}
			slices.Sort(lat)
			us := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))]) / float64(time.Microsecond) }
			b.ReportMetric(us(0.50), "p50-µs")
			b.ReportMetric(us(0.99), "p99-µs")
		})
	}
}
