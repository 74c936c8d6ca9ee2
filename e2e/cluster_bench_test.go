package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"
)

// benchCluster is the small cluster the cluster benchmarks measure: one
// PostgreSQL, node a (gitd, panel, edge), node b (worker) and node d (edge),
// set up as TestCluster does, with an API token of the admin.
type benchCluster struct {
	a, b, d *server
	token   string
}

// startBenchCluster starts a benchCluster whose nodes stop, and whose
// PostgreSQL stops after them, when tb ends.
func startBenchCluster(tb testing.TB) *benchCluster {
	tb.Helper()
	base := newTestCluster(tb, "mvb")
	c := &benchCluster{a: base.node(tb, "a", "gitd,panel,edge"), b: base.node(tb, "b", "worker"), d: base.node(tb, "d", "edge")}
	c.token = base.token(tb, c.a)
	return c
}

// nodes returns the cluster's nodes by name, for their logs.
func (c *benchCluster) nodes() map[string]*server {
	return map[string]*server{"a": c.a, "b": c.b, "d": c.d}
}

// logErrors logs the lines of the nodes' logs that report an error or a
// warning: what went wrong while a figure was measured matters with it.
func (c *benchCluster) logErrors(tb testing.TB) {
	tb.Helper()
	for _, name := range []string{"a", "b", "d"} {
		for _, line := range strings.Split(c.nodes()[name].logText(), "\n") {
			if strings.Contains(line, "level=ERROR") || strings.Contains(line, "level=WARN") {
				tb.Logf("node %s: %s", name, line)
			}
		}
	}
}

// api sends an API request with the cluster's token to s and returns the
// status code and the body.
func (c *benchCluster) api(tb testing.TB, s *server, method, path, body string) (int, string) {
	tb.Helper()
	req, _ := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", s.httpPort, path), strings.NewReader(body))
	req.Host = "localhost"
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

var (
	queuedLine    = regexp.MustCompile(`Build #(\d+) queued`)
	succeededLine = regexp.MustCompile(`Build #(\d+) succeeded`)
	latLine       = regexp.MustCompile(`LAT (\d+)`)
)

// latencyBuild is an npm project whose build prints "waiting for the gate",
// waits until the file gate exists, then prints lines "LAT <Date.now()>",
// one every 20 ms, and writes a page.
func latencyBuild(gate string, lines int) map[string]string {
	return map[string]string{
		"package.json": `{"name":"lat","scripts":{"build":"node build.js"}}`,
		"build.js": fmt.Sprintf(`const fs = require('fs');
console.log('waiting for the gate');
const t = setInterval(() => {
  if (!fs.existsSync(%q)) return;
  clearInterval(t);
  let n = 0;
  const tick = setInterval(() => {
    console.log('LAT ' + Date.now());
    if (++n < %d) return;
    clearInterval(tick);
    fs.mkdirSync('dist');
    fs.writeFileSync('dist/index.html', 'latency done');
  }, 20);
}, 20);`, gate, lines),
	}
}

// benchWSMsg is any message the panel's websocket sends.
type benchWSMsg struct {
	Type    string `json:"type"`
	BuildID int64  `json:"build_id"`
	Seq     int    `json:"seq"`
	Line    string `json:"line"`
	Status  string `json:"status"`
	Final   bool   `json:"final"`
	Count   int    `json:"count"`
	Error   string `json:"error"`
}

// percentile returns the p-th percentile of sorted values (nearest rank).
func percentile(sorted []float64, p int) float64 {
	i := (len(sorted)*p + 99) / 100
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

// BenchmarkClusterLogLatency measures the time from a build's log line
// written on the worker (node b) to its arrival at a panel websocket on node
// a: the build prints its clock in 300 lines 20 ms apart, and each line's
// latency is the receive time minus the printed time (one machine, one
// clock). The measurement runs once: it takes seconds, so the framework
// asks for no b.N beyond 1.
func BenchmarkClusterLogLatency(b *testing.B) {
	const lines = 300
	c := startBenchCluster(b)
	gate := newGate(b, "open")
	r := newRepo(b, "main", latencyBuild(gate, lines))

	push := c.a.pushCmd(r, c.a.key, c.a.remote("lat"), "HEAD:main")
	stderr, err := push.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := push.Start(); err != nil {
		b.Fatal(err)
	}
	pushOut := bufio.NewReader(stderr)
	m := queuedLine.FindStringSubmatch(readUntil(b, pushOut, "waiting for the gate"))
	if m == nil {
		b.Fatal("the push did not say which build it queued")
	}
	id, _ := strconv.ParseInt(m[1], 10, 64)
	pushDone := make(chan string, 1)
	go func() {
		rest, _ := io.ReadAll(pushOut)
		push.Wait()
		pushDone <- string(rest)
	}()

	u := fmt.Sprintf("ws://127.0.0.1:%d/ws?token=%s", c.a.httpPort, url.QueryEscape(c.token))
	ws, _, err := fws.DefaultDialer.Dial(u, http.Header{"Host": {"localhost"}})
	if err != nil {
		b.Fatalf("dial the panel's websocket: %v", err)
	}
	defer ws.Close()
	if err := ws.WriteJSON(map[string]any{"type": "subscribe_build", "build_id": id}); err != nil {
		b.Fatal(err)
	}
	read := func() (benchWSMsg, time.Time) {
		b.Helper()
		ws.SetReadDeadline(time.Now().Add(2 * time.Minute))
		_, data, err := ws.ReadMessage()
		at := time.Now()
		if err != nil {
			b.Fatalf("websocket read: %v", err)
		}
		var msg benchWSMsg
		if err := json.Unmarshal(data, &msg); err != nil {
			b.Fatalf("websocket message %q: %v", data, err)
		}
		if msg.Type == "error" {
			b.Fatalf("websocket error: %s", data)
		}
		return msg, at
	}
	// The gate opens once the stream is live: the build's line before
	// it came through the websocket.
	for {
		msg, _ := read()
		if msg.Type == "log" && strings.Contains(msg.Line, "waiting for the gate") {
			break
		}
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		b.Fatal(err)
	}

	var lat []float64
	dropped := 0
	final := ""
	for final == "" {
		msg, at := read()
		switch msg.Type {
		case "log":
			if m := latLine.FindStringSubmatch(msg.Line); m != nil {
				sent, _ := strconv.ParseInt(m[1], 10, 64)
				lat = append(lat, float64(at.UnixMicro())/1000-float64(sent))
			}
		case "dropped":
			dropped += msg.Count
		case "status":
			if msg.Final {
				final = msg.Status
			}
		}
	}
	if out := <-pushDone; final != "succeeded" || !strings.Contains(out, fmt.Sprintf("Build #%d succeeded", id)) {
		b.Fatalf("build %d ended %q; push output:\n%s", id, final, out)
	}
	if len(lat) != lines || dropped > 0 {
		b.Errorf("received %d of %d lines, %d dropped", len(lat), lines, dropped)
	}
	slices.Sort(lat)
	p50, p99 := percentile(lat, 50), percentile(lat, 99)
	b.Logf("log line worker → panel websocket over %d lines: p50 %.1f ms, p99 %.1f ms, min %.1f ms, max %.1f ms",
		len(lat), p50, p99, lat[0], lat[len(lat)-1])
	c.logErrors(b)
	b.ReportMetric(p50, "p50-ms")
	b.ReportMetric(p99, "p99-ms")
}

// BenchmarkClusterActivation measures the time from an activation request
// sent to node a to the build being served by both edges, a and d, over
// ten activations switching between two builds; after-reply-ms is how long
// after the API answered the last edge switched, how far the other edges
// lag the coordinator (negative: before it answered). The measurement runs
// once, as BenchmarkClusterLogLatency's does.
func BenchmarkClusterActivation(b *testing.B) {
	const rounds = 10
	c := startBenchCluster(b)
	edges := []*server{c.a, c.d}
	r := newRepo(b, "main", map[string]string{"index.html": "activation v1"})
	body := map[int64]string{}
	for i, v := range []string{"activation v1", "activation v2"} {
		if i > 0 {
			r.commit(v, map[string]string{"index.html": v})
		}
		m := succeededLine.FindStringSubmatch(c.a.mustPush(r, "site", "HEAD:main"))
		if m == nil {
			b.Fatalf("the push of %s did not succeed", v)
		}
		id, _ := strconv.ParseInt(m[1], 10, 64)
		body[id] = v
		for _, e := range edges {
			e.waitBody("site.localhost", "/", v)
		}
	}
	ids := slices.Sorted(maps.Keys(body))

	var total, after []float64
	var perRound []string
	for i := range rounds {
		id := ids[i%2] // the live build is the other one
		want := body[id]
		start := time.Now()
		served := make([]time.Duration, len(edges))
		var wg sync.WaitGroup
		for j, e := range edges {
			wg.Go(func() {
				deadline := start.Add(time.Minute)
				for {
					if code, got := e.get("site.localhost", "/"); code == 200 && got == want {
						served[j] = time.Since(start)
						return
					}
					if time.Now().After(deadline) {
						b.Errorf("round %d: edge %d never served %q", i, j, want)
						return
					}
					time.Sleep(2 * time.Millisecond)
				}
			})
		}
		code, raw := c.api(b, c.a, "POST", "/api/projects/site/activate", fmt.Sprintf(`{"build_id":%d}`, id))
		replied := time.Since(start)
		wg.Wait()
		if code != 200 {
			b.Fatalf("round %d: activate build %d = %d %s", i, id, code, raw)
		}
		if b.Failed() {
			b.FailNow()
		}
		last := slices.Max(served)
		total = append(total, ms(last))
		after = append(after, ms(last-replied))
		perRound = append(perRound, fmt.Sprintf("%.0f/%.0f/%.0f", ms(replied), ms(served[0]), ms(served[1])))
	}
	slices.Sort(total)
	slices.Sort(after)
	median, maxMS, afterMedian := percentile(total, 50), total[len(total)-1], percentile(after, 50)
	b.Logf("activation → served by both edges over %d rounds: median %.1f ms, max %.1f ms; last edge after the reply: median %.1f ms",
		rounds, median, maxMS, afterMedian)
	c.logErrors(b)
	b.Logf("per round, ms after the request: reply/edge a/edge d: %s", strings.Join(perRound, " "))
	b.ReportMetric(median, "median-ms")
	b.ReportMetric(maxMS, "max-ms")
	b.ReportMetric(afterMedian, "after-reply-ms")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
