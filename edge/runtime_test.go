package edge

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"pgregory.net/rapid"

	"minivercel/internal/testenv"
)

// serverJS is a small Node web app: it answers its version, streams server-sent
// events, shows its environment, and exits on request.
const serverJS = `const http = require('http');
const version = %q;
const server = http.createServer((req, res) => {
  if (req.url === '/slow') { setTimeout(() => res.end(version + ' slow'), 300); return; }
  if (req.url === '/sse') {
    res.writeHead(200, {'content-type': 'text/event-stream'});
    res.write('data: first\n\n');
    req.on('close', () => {});
    setTimeout(() => res.end('data: second\n\n'), 300);
    return;
  }
  if (req.url === '/env') { res.end(JSON.stringify({port: process.env.PORT, host: process.env.HOST, fwd: req.headers['x-forwarded-for'], h: req.headers.host})); return; }
  if (req.url === '/fail') { res.statusCode = 500; res.end('no'); return; }
  if (req.url === '/exit') { res.end('bye'); setTimeout(() => process.exit(3), 10); return; }
  res.end(version);
});
server.listen(process.env.PORT, process.env.HOST, () => console.log('listening on ' + process.env.PORT));
`

type logSink struct {
	mu    sync.Mutex
	lines map[int64][]string
}

func (l *logSink) RuntimeLog(id int64, line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lines == nil {
		l.lines = map[int64][]string{}
	}
	l.lines[id] = append(l.lines[id], line)
}

func (l *logSink) text(id int64) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines[id], "\n")
}

func needNode(tb testing.TB) {
	if _, err := exec.LookPath("node"); err != nil {
		tb.Skip("node is not installed")
	}
}

// shutDownAtEnd stops srv, and the apps it runs, when the test or benchmark
// ends.
func shutDownAtEnd(tb testing.TB, srv *Server) {
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
}

// newNodeEdge is an edge for real Node apps behind a real listener, so
// requests can hang and be canceled as a browser's would. rc gets the quick
// stop, grace and probe timings of the tests, and app logs go to sink.
func newNodeEdge(t *testing.T, lookup BuildLookup, rc RuntimeConfig, sink *logSink, domains DomainLookup) (*testEdge, *httptest.Server) {
	t.Helper()
	needNode(t)
	rc.Logs, rc.StopTimeout, rc.WebsocketGrace, rc.ProbeInterval = sink, 2*time.Second, time.Second, 200*time.Millisecond
	e := newEdgeWith(t, lookup, func(c *Config) {
		c.Logger, c.Runtime, c.CustomDomains = nil, rc, domains
	})
	shutDownAtEnd(t, e.srv)
	hs := httptest.NewServer(e.srv.Handler())
	t.Cleanup(hs.Close)
	return e, hs
}

func newAppEdge(t *testing.T, sink *logSink) (*testEdge, *httptest.Server) {
	t.Helper()
	lk := &fakeLookup{}
	e, hs := newNodeEdge(t, lk, RuntimeConfig{}, sink, nil)
	e.lookup = lk
	return e, hs
}

// serveTCP makes the edge serve on a loopback port of its own and returns
// that address.
func (e *testEdge) serveTCP() string {
	e.t.Helper()
	e.srv.cfg.Addr = "127.0.0.1:0"
	if err := e.srv.Listen(); err != nil {
		e.t.Fatal(err)
	}
	go e.srv.Serve()
	return e.srv.Addr().String()
}

// send does a GET of url with the Host header host and the given headers,
// failing the test when no response comes; the body is closed when the test
// ends.
func send(t testing.TB, client *http.Client, url, host string, header map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Host = host
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// appSite is a server app build answering version.
func (e *testEdge) appSite(project string, id int64, version string) Site {
	s := e.site(project, id, map[string]string{"server.js": fmt.Sprintf(serverJS, version)})
	s.Start = "node server.js"
	s.DeploymentID = id
	s.Health = patientHealth
	return s
}

// mixedBuilds is four builds of project, static sites and server apps
// (made by app) taking turns, and what each answers at "/".
func (e *testEdge) mixedBuilds(project string, app func(project string, id int64, version string) Site) ([]Site, []string) {
	want := []string{"static one", "server two", "static three", "server four"}
	builds := make([]Site, len(want))
	for i, body := range want {
		id := int64(i + 1)
		if id%2 == 0 {
			builds[i] = app(project, id, body)
		} else {
			builds[i] = e.site(project, id, map[string]string{"index.html": body})
		}
	}
	return builds, want
}

// patientHealth is the health check of apps that must pass it: a try waits
// for the port to accept before it asks, so a healthy app passes at its
// first answer and generous limits cost nothing, while a machine busy enough
// to start Node slowly cannot fail the test.
var patientHealth = HealthCheck{Path: "/", Tries: 10, Interval: 2 * time.Second}

// oneTry is the health check of apps expected to fail it in a particular
// way: one try that waits long for the port, so the reason it fails (an
// exit, a 5xx answer) does not depend on how fast Node starts.
var oneTry = HealthCheck{Tries: 1, Interval: 30 * time.Second}

func httpGet(t testing.TB, hs *httptest.Server, host, path string) (int, string, error) {
	req, _ := http.NewRequest("GET", hs.URL+path, nil)
	req.Host = host
	resp, err := hs.Client().Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestServerAppIsProxied(t *testing.T) {
	t.Parallel()
	sink := &logSink{}
	e, hs := newAppEdge(t, sink)
	var mu sync.Mutex
	var progress []string
	// progress is called from the app's output reader and from the activation.
	record := func(l string) { mu.Lock(); progress = append(progress, l); mu.Unlock() }
	if err := e.srv.Activate(context.Background(), e.appSite("orders-api", 1, "v1"), record); err != nil {
		t.Fatal(err)
	}
	if code, body, _ := httpGet(t, hs, "orders-api.localhost", "/"); code != 200 || body != "v1" {
		t.Fatalf("GET / = %d %q", code, body)
	}
	_, env, _ := httpGet(t, hs, "orders-api.localhost", "/env")
	if !strings.Contains(env, `"host":"127.0.0.1"`) || !strings.Contains(env, fmt.Sprintf(`"port":"%d"`, e.srv.Port("orders-api"))) ||
		!strings.Contains(env, `"fwd":"127.0.0.1"`) || !strings.Contains(env, `"h":"orders-api.localhost"`) {
		t.Errorf("app saw %s", env)
	}
	mu.Lock()
	joined := strings.Join(progress, "\n")
	mu.Unlock()
	if !strings.Contains(joined, "starting web process on port") || !strings.Contains(joined, "listening on") || !strings.Contains(joined, "healthy after") {
		t.Errorf("progress lines:\n%s", joined)
	}
	if !strings.Contains(sink.text(1), "listening on") {
		t.Errorf("runtime log lacks the app's output: %q", sink.text(1))
	}
	if healthy, found := e.srv.Health("orders-api"); !healthy || !found {
		t.Errorf("Health = %v, %v", healthy, found)
	}
	code, body, _ := httpGet(t, hs, "localhost", "/api/health/orders-api")
	if code != 200 || !strings.Contains(body, "healthy") {
		t.Errorf("/api/health/orders-api = %d %s", code, body)
	}
	if code, _, _ := httpGet(t, hs, "localhost", "/api/health/nothing"); code != 404 {
		t.Errorf("/api/health/nothing = %d, want 404", code)
	}
}

// TestServerSentEventsStream: the first event arrives before the response ends.
func TestServerSentEventsStream(t *testing.T) {
	t.Parallel()
	e, hs := newAppEdge(t, &logSink{})
	e.activate(e.appSite("sse", 1, "v1"))
	resp := send(t, hs.Client(), hs.URL+"/sse", "sse.localhost", nil)
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
}

// TestFailedActivationKeepsPrevious is the seed's Property 29 for each way an
// app can fail: it exits at start, never listens, or answers 5xx.
func TestFailedActivationKeepsPrevious(t *testing.T) {
	t.Parallel()
	sink := &logSink{}
	e, hs := newAppEdge(t, sink)
	e.activate(e.appSite("web", 1, "good"))
	cases := []struct {
		name, start string
		files       map[string]string
		health      HealthCheck
		want        string
	}{
		{"exits at start", "node -e 'console.error(\"config missing\"); process.exit(1)'", nil, oneTry, "exited"},
		// It never listens whatever the limits: short ones keep the test short.
		{"never listens", "node -e 'setInterval(() => {}, 1000)' mv-never-listens-marker", nil,
			HealthCheck{Tries: 3, Interval: 100 * time.Millisecond}, "health checks failed"},
		{"answers 5xx", "node server.js", map[string]string{"server.js": `require('http').createServer((q, s) => { s.statusCode = 503; s.end('down') }).listen(process.env.PORT, process.env.HOST)`}, oneTry, "answered 503"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			files := tc.files
			if files == nil {
				files = map[string]string{"README": "x"}
			}
			s := e.site("web", int64(10+i), files)
			s.Start, s.DeploymentID = tc.start, int64(10+i)
			s.Health = tc.health
			err := e.srv.Activate(context.Background(), s, nil)
			if !errors.Is(err, ErrUnhealthy) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Activate = %v, want ErrUnhealthy mentioning %q", err, tc.want)
			}
			if code, body, _ := httpGet(t, hs, "web.localhost", "/"); code != 200 || body != "good" {
				t.Fatalf("after a failed activation = %d %q", code, body)
			}
			// Regression: the failed app's processes are stopped and its
			// port returned, not left running.
			if used := e.srv.runtime.ports.inUse(); used != 1 {
				t.Fatalf("%d ports in use after a failed activation, want 1 (the good app's)", used)
			}
		})
	}
	if !strings.Contains(sink.text(10), "config missing") {
		t.Errorf("the failing app's output is not in its runtime log: %q", sink.text(10))
	}
	if out, _ := exec.Command("pgrep", "-f", "mv-never-listens-marker").Output(); len(out) > 0 {
		t.Errorf("the app that never listened still runs: pids %s", out)
	}
}

// TestCrashedAppIsRestarted: a process that dies comes back on its own, the
// restart is in its runtime log and told to RuntimeConfig.Restarted, and
// repeated crashes make it unhealthy.
func TestCrashedAppIsRestarted(t *testing.T) {
	t.Parallel()
	sink := &logSink{}
	restarts := make(chan string, 8)
	lk := &fakeLookup{}
	e, hs := newNodeEdge(t, lk, RuntimeConfig{Restarted: func(project string) { restarts <- project }}, sink, nil)
	e.lookup = lk
	e.activate(e.appSite("phoenix", 1, "alive"))
	httpGet(t, hs, "phoenix.localhost", "/exit")
	waitFor(t, func() bool { return strings.Contains(sink.text(1), "restarted and healthy") })
	if len(restarts) != 1 || <-restarts != "phoenix" {
		t.Errorf("Restarted was not told of the one restart of phoenix")
	}
	if code, body, _ := httpGet(t, hs, "phoenix.localhost", "/"); code != 200 || body != "alive" {
		t.Fatalf("after restart = %d %q", code, body)
	}
	log := sink.text(1)
	if !strings.Contains(log, "process exited with code 3") || !strings.Contains(log, "restarting in 1s") {
		t.Errorf("runtime log:\n%s", log)
	}
}

func TestCrashLoopIsUnhealthy(t *testing.T) {
	t.Parallel()
	sink := &logSink{}
	e, hs := newAppEdge(t, sink)
	s := e.site("loop", 1, map[string]string{"server.js": `const f = '/tmp/mv-crashloop-' + process.env.PORT;
const fs = require('fs');
if (fs.existsSync(f)) process.exit(9);
fs.writeFileSync(f, '');
require('http').createServer((q, r) => { r.end('first'); setTimeout(() => process.exit(9), 10); }).listen(process.env.PORT, process.env.HOST);`})
	s.Start, s.DeploymentID = "node server.js", 1
	// The first process exits once it has answered its health check; every
	// restart exits at once.
	s.Health = oneTry
	e.activate(s)
	t.Cleanup(func() { exec.Command("sh", "-c", "rm -f /tmp/mv-crashloop-*").Run() })
	waitFor(t, func() bool { healthy, _ := e.srv.Health("loop"); return !healthy })
	if code, _, _ := httpGet(t, hs, "localhost", "/api/health/loop"); code != 503 {
		t.Errorf("/api/health/loop = %d, want 503", code)
	}
}

// TestSwitchUnderLoadDropsNothing is the seed's Property 20: while versions are
// switched back and forth, every request is answered by one of them.
func TestSwitchUnderLoadDropsNothing(t *testing.T) {
	t.Parallel()
	e, hs := newAppEdge(t, &logSink{})
	a, b := e.appSite("busy", 1, "A"), e.appSite("busy", 2, "B")
	e.activate(a)
	var stop atomic.Bool
	var failures, total atomic.Int64
	var bad sync.Map
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Go(func() {
			for !stop.Load() {
				path := "/"
				if total.Add(1)%5 == 0 {
					path = "/slow"
				}
				code, body, err := httpGet(t, hs, "busy.localhost", path)
				if err != nil || code != 200 || !(strings.HasPrefix(body, "A") || strings.HasPrefix(body, "B")) {
					failures.Add(1)
					bad.Store(fmt.Sprintf("%d %q %v", code, body, err), true)
				}
			}
		})
	}
	for i := 0; i < 10; i++ {
		next := b
		if i%2 == 1 {
			next = a
		}
		next.DeploymentID = int64(100 + i)
		e.activate(next)
		// Wait until the new version answers: each switch sees traffic.
		want := "A"
		if next.BuildID == 2 {
			want = "B"
		}
		waitFor(t, func() bool { _, body, _ := httpGet(t, hs, "busy.localhost", "/"); return body == want })
	}
	stop.Store(true)
	wg.Wait()
	if f := failures.Load(); f > 0 {
		bad.Range(func(k, _ any) bool { t.Log(k); return true })
		t.Fatalf("%d of %d requests failed during 10 switches", f, total.Load())
	}
	t.Logf("%d requests, 0 failed", total.Load())
}

// TestActivationSequencesServeTheLast covers the seed's Properties 12, 13 and
// 21: after any sequence of activations and rollbacks of static and server
// builds, production serves the last activated build, static builds from their
// files and server builds from their process.
func TestActivationSequencesServeTheLast(t *testing.T) {
	t.Parallel()
	e, hs := newAppEdge(t, &logSink{})
	builds, want := e.mixedBuilds("mix", e.appSite)
	rapid.Check(t, func(rt *rapid.T) {
		steps := rapid.SliceOfN(rapid.IntRange(0, len(builds)-1), 1, 4).Draw(rt, "activations")
		for _, i := range steps {
			s := builds[i]
			e.redeploy(rt, s)
			code, body, err := httpGet(t, hs, "mix.localhost", "/")
			if err != nil || code != 200 || body != want[i] {
				rt.Fatalf("after activating build %d: %d %q %v", s.BuildID, code, body, err)
			}
			if id, _ := e.srv.Active("mix"); id != s.BuildID {
				rt.Fatalf("Active = %d, want %d", id, s.BuildID)
			}
			if (s.Start == "") != (e.srv.Port("mix") == 0) {
				rt.Fatalf("build %d: port %d; a static build has no process, a server build has one", s.BuildID, e.srv.Port("mix"))
			}
		}
	})
}

// TestDrainLetsInFlightFinish: a slow request started on the old app finishes
// with its answer after the switch, and the old process is stopped after it.
func TestDrainLetsInFlightFinish(t *testing.T) {
	t.Parallel()
	e, hs := newAppEdge(t, &logSink{})
	e.activate(e.appSite("drain", 1, "old"))
	oldPort := e.srv.Port("drain")
	done := make(chan string)
	go func() {
		_, body, err := httpGet(t, hs, "drain.localhost", "/slow")
		if err != nil {
			body = err.Error()
		}
		done <- body
	}()
	// The slow request is in flight once the old backend counts it.
	waitFor(t, func() bool { return e.backend("drain").inflight.Load() > 0 })
	e.activate(e.appSite("drain", 2, "new"))
	if body := <-done; body != "old slow" {
		t.Fatalf("in-flight request got %q", body)
	}
	waitFor(t, func() bool { return !portOpen(oldPort) })
}

// backend is the proxy to the project's production app.
func (e *testEdge) backend(project string) *backend {
	return e.srv.routes.get(project).app.(*backend)
}

func portOpen(port int) bool {
	a := &app{port: port}
	return a.accepting()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStopKillsTheWholeGroup: a start command that spawns children leaves
// nothing running after the app is stopped.
func TestStopKillsTheWholeGroup(t *testing.T) {
	t.Parallel()
	e, _ := newAppEdge(t, &logSink{})
	s := e.appSite("tree", 1, "v")
	s.Start = "sleep 1000 & node server.js"
	e.activate(s)
	pgid := e.backend("tree").app.proc.Process.Pid
	e.srv.Deactivate("tree")
	waitFor(t, func() bool { return syscall.Kill(-pgid, 0) != nil })
}

// TestHTTP2Cleartext: a client speaking HTTP/2 with prior knowledge reaches a
// server app through the edge's own listener.
func TestHTTP2Cleartext(t *testing.T) {
	t.Parallel()
	e, _ := newAppEdge(t, &logSink{})
	addr := e.serveTCP()
	e.activate(e.appSite("h2", 1, "over h2"))
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	resp := send(t, &http.Client{Transport: tr}, "http://"+addr+"/", "h2.localhost", nil)
	body, _ := io.ReadAll(resp.Body)
	if resp.ProtoMajor != 2 || string(body) != "over h2" {
		t.Fatalf("got %s %q", resp.Proto, body)
	}
}

// TestWebsocketsClosedAfterGrace: an upgraded connection keeps working through
// a switch, then is closed after the grace period so the old app can stop.
func TestWebsocketsClosedAfterGrace(t *testing.T) {
	t.Parallel()
	e, _ := newAppEdge(t, &logSink{})
	addr := e.serveTCP()
	s := e.site("ws", 1, map[string]string{"server.js": `const server = require('http').createServer((q, r) => r.end('http'));
server.on('upgrade', (req, sock) => {
  sock.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
  sock.on('data', d => sock.write(d));
});
server.listen(process.env.PORT, process.env.HOST);`})
	s.Start, s.DeploymentID = "node server.js", 1
	e.activate(s)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /chat HTTP/1.1\r\nHost: ws.localhost\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(conn)
	status, _ := br.ReadString('\n')
	if !strings.Contains(status, "101") {
		t.Fatalf("upgrade answered %q", status)
	}
	for line, _ := br.ReadString('\n'); line != "\r\n"; line, _ = br.ReadString('\n') {
	}
	echo := func(msg string) (string, error) {
		if _, err := conn.Write([]byte(msg)); err != nil {
			return "", err
		}
		buf := make([]byte, len(msg))
		_, err := io.ReadFull(br, buf)
		return string(buf), err
	}
	if got, err := echo("hello"); got != "hello" {
		t.Fatalf("echo = %q, %v", got, err)
	}
	next := e.site("ws", 2, map[string]string{"index.html": "static now"})
	e.activate(next)
	if got, err := echo("still"); got != "still" {
		t.Fatalf("echo right after the switch = %q, %v", got, err)
	}
	// After the grace period (1 s in these tests) the edge closes it.
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadAll(br); err != nil {
		t.Fatalf("connection was not closed by the edge: %v", err)
	}
}

// redeploy activates build s in a new deployment, as a rollback does, with
// a DeploymentID above those the builds were made with.
func (e *testEdge) redeploy(rt *rapid.T, s Site) {
	rt.Helper()
	s.DeploymentID = 1000 + e.redeploys.Add(1)
	if err := e.srv.Activate(context.Background(), s, nil); err != nil {
		rt.Fatalf("activate build %d: %v", s.BuildID, err)
	}
}

// TestSeamlessUpdatesProperty is the seed's Property 20 as a property: for any
// number of switches between any builds (static or server), with requests of
// any mix in flight, every request is answered by one of the builds. Each
// switch waits until a request begun after it was served, so every window
// between switches is checked with traffic, however fast the switches are.
func TestSeamlessUpdatesProperty(t *testing.T) {
	testenv.Checks(t, 15)
	e, hs := newAppEdge(t, &logSink{})
	builds := []Site{e.appSite("seam", 1, "A"), e.appSite("seam", 2, "B"), e.site("seam", 3, map[string]string{"index.html": "C", "slow": "C"})}
	e.activate(builds[0])
	rapid.Check(t, func(rt *rapid.T) {
		order := rapid.SliceOfN(rapid.IntRange(0, len(builds)-1), 1, 4).Draw(rt, "switches")
		clients := rapid.IntRange(1, 6).Draw(rt, "clients")
		var (
			stop   atomic.Bool
			window atomic.Int64 // switches done so far
			bad    atomic.Value
			wg     sync.WaitGroup
			mu     sync.Mutex
			served = map[int64]int{} // requests answered, by the window they began in
			tick   = make(chan struct{}, 1)
		)
		for c := 0; c < clients; c++ {
			path := []string{"/", "/slow"}[c%2]
			wg.Go(func() {
				for !stop.Load() {
					began := window.Load()
					code, body, err := httpGet(t, hs, "seam.localhost", path)
					if err != nil || code != 200 || !(strings.HasPrefix(body, "A") || strings.HasPrefix(body, "B") || body == "C") {
						bad.Store(fmt.Sprintf("%d %q %v", code, body, err))
					}
					mu.Lock()
					served[began]++
					mu.Unlock()
					select {
					case tick <- struct{}{}:
					default:
					}
				}
			})
		}
		// Clients stop when the check ends, also when it fails early.
		defer func() { stop.Store(true); wg.Wait() }()
		servedIn := func(w int64) int {
			mu.Lock()
			defer mu.Unlock()
			return served[w]
		}
		for n, i := range order {
			e.redeploy(rt, builds[i])
			w := window.Add(1)
			deadline := time.After(30 * time.Second) // a hang, not a pace
			for servedIn(w) == 0 {
				select {
				case <-tick:
				case <-deadline:
					rt.Fatalf("no request served within 30s after switch %d", n+1)
				}
			}
		}
		stop.Store(true)
		wg.Wait()
		if v := bad.Load(); v != nil {
			rt.Fatalf("a request failed during the switches: %s", v)
		}
		for w := int64(1); w <= int64(len(order)); w++ {
			if servedIn(w) == 0 {
				rt.Fatalf("no request served after switch %d", w)
			}
		}
	})
}

// TestFailedActivationProperty is the seed's Property 29 as a property: whatever
// serves (static or server), an activation that fails in any way leaves it
// serving.
func TestFailedActivationProperty(t *testing.T) {
	testenv.Checks(t, 15)
	e, hs := newAppEdge(t, &logSink{})
	good := []Site{e.appSite("keep", 1, "server build"), e.site("keep", 2, map[string]string{"index.html": "static build"})}
	want := []string{"server build", "static build"}
	starts := []string{
		"exit 3",   // exits at start
		"sleep 30", // never listens
		"node -e 'require(\"http\").createServer((q, s) => { s.statusCode = 500; s.end() }).listen(process.env.PORT, process.env.HOST)'", // answers 5xx
		"node -e 'process.kill(process.pid, \"SIGSEGV\")'", // crashes
	}
	var id atomic.Int64
	id.Store(100)
	rapid.Check(t, func(rt *rapid.T) {
		g := rapid.IntRange(0, 1).Draw(rt, "serving")
		s := good[g]
		s.DeploymentID = id.Add(1)
		if err := e.srv.Activate(context.Background(), s, nil); err != nil {
			rt.Fatal(err)
		}
		bad := e.site("keep", id.Add(1), map[string]string{"README": "x"})
		bad.Start = rapid.SampledFrom(starts).Draw(rt, "failure")
		bad.Health = HealthCheck{Tries: 2, Interval: 100 * time.Millisecond}
		if err := e.srv.Activate(context.Background(), bad, nil); !errors.Is(err, ErrUnhealthy) {
			rt.Fatalf("activating a failing build = %v, want ErrUnhealthy", err)
		}
		if code, body, _ := httpGet(t, hs, "keep.localhost", "/"); code != 200 || body != want[g] {
			rt.Fatalf("after the failed activation = %d %q, want %q", code, body, want[g])
		}
		if active, _ := e.srv.Active("keep"); active != s.BuildID {
			rt.Fatalf("Active = %d, want %d", active, s.BuildID)
		}
	})
}

// TestRuntimeLogsRedactSecrets: values of the app's variables never reach its
// runtime log, also when printed split across lines or base64-encoded.
func TestRuntimeLogsRedactSecrets(t *testing.T) {
	t.Parallel()
	sink := &logSink{}
	e, _ := newAppEdge(t, sink)
	s := e.site("leaky", 1, map[string]string{"server.js": `const v = process.env.API_TOKEN;
console.log('token is ' + v);
process.stdout.write('split: ' + v.slice(0, 5));
setTimeout(() => {
  process.stdout.write(v.slice(5) + '\n');
  console.log('b64: ' + Buffer.from(v).toString('base64'));
  require('http').createServer((q, r) => r.end('ok')).listen(process.env.PORT, process.env.HOST);
}, 20);`})
	s.Start, s.DeploymentID = "node server.js", 1
	s.Env = []string{"API_TOKEN=tok_live_9f8e7d6c5b4a"}
	e.activate(s)
	waitFor(t, func() bool { return strings.Contains(sink.text(1), "b64: ") })
	log := sink.text(1)
	if strings.Contains(log, "tok_live_9f8e7d6c5b4a") || strings.Contains(log, "dG9rX2xpdmVf") || !strings.Contains(log, "token is [secret]") {
		t.Fatalf("runtime log leaks or lacks the mask:\n%s", log)
	}
}

// TestClientForwardingHeadersAreNotTrusted: an app sees the edge's own
// X-Forwarded-For, never a client's X-Real-IP or X-Forwarded-Prefix, not
// even with the edge's internal header that marks its own prefix.
func TestClientForwardingHeadersAreNotTrusted(t *testing.T) {
	t.Parallel()
	e, hs := newAppEdge(t, &logSink{})
	s := e.site("hdr", 1, map[string]string{"server.js": `require('http').createServer((q, r) => r.end(JSON.stringify([q.headers['x-real-ip'], q.headers['x-forwarded-prefix'], q.headers['x-forwarded-for']]))).listen(process.env.PORT, process.env.HOST);`})
	s.Start = "node server.js"
	e.activate(s)
	resp := send(t, hs.Client(), hs.URL+"/", "hdr.localhost", map[string]string{
		"X-Real-IP": "6.6.6.6", "X-Forwarded-Prefix": "/evil", "X-Forwarded-For": "6.6.6.6",
	})
	body, _ := io.ReadAll(resp.Body)
	if string(body) != `[null,null,"127.0.0.1"]` {
		t.Fatalf("the app saw %s", body)
	}
	resp = send(t, hs.Client(), hs.URL+"/", "hdr.localhost", map[string]string{
		"X-Forwarded-Prefix": "/evil", internalPrefixHeader: "1",
	})
	body, _ = io.ReadAll(resp.Body)
	if string(body) != `[null,null,"127.0.0.1"]` {
		t.Fatalf("with the internal header the app saw %s", body)
	}
}

// TestListenerOwnedBy reads the kernel's socket table: a listener of this
// process belongs to this process's uid and to no other.
func TestListenerOwnedBy(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	me := uint32(os.Getuid())
	if !listenerOwnedBy(port, me) {
		t.Errorf("own listener on %d not recognised", port)
	}
	if listenerOwnedBy(port, me+4242) {
		t.Errorf("listener on %d attributed to another uid", port)
	}
	l.Close()
	if listenerOwnedBy(port, me) {
		t.Errorf("closed port %d still reported as listening", port)
	}
}

// TestAppOfAnotherNodeNeedsTheStore: a build that ran on a Node from the
// toolchain store is not started on another Node when this edge has no
// store: its activation fails with the reason, and the previous build
// serves on.
func TestAppOfAnotherNodeNeedsTheStore(t *testing.T) {
	t.Parallel()
	e, hs := newAppEdge(t, &logSink{})
	if err := e.srv.Activate(context.Background(), e.appSite("shop", 1, "v1"), nil); err != nil {
		t.Fatal(err)
	}
	site := e.appSite("shop", 2, "v2")
	site.NodeVersion = "22.23.5"
	err := e.srv.Activate(context.Background(), site, nil)
	if !errors.Is(err, ErrAppStart) || !strings.Contains(err.Error(), "Node 22.23.5") {
		t.Fatalf("activation: %v, want ErrAppStart naming Node 22.23.5", err)
	}
	if code, body, _ := httpGet(t, hs, "shop.localhost", "/"); code != 200 || body != "v1" {
		t.Errorf("GET / = %d %q, want the previous build's v1", code, body)
	}
}
