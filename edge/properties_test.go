package edge

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"minivercel/internal/testenv"
)

// echoJS answers every request from the process, never from a file.
const echoJS = `require('http').createServer((q, r) => r.end('process:' + q.url)).listen(process.env.PORT, process.env.HOST);`

// TestServingStrategyProperty is the seed's Property 21: for any build, one
// with a start command is served by its process through the proxy and none
// of its files is ever readable over HTTP; one without is served from its
// files, with index.html for unknown extension-less paths when it is a SPA
// and a 404 otherwise.
func TestServingStrategyProperty(t *testing.T) {
	testenv.Checks(t, 12)
	e, hs := newAppEdge(t, &logSink{})
	var id int64
	rapid.Check(t, func(rt *rapid.T) {
		id++
		files := map[string]string{}
		for _, name := range rapid.SliceOfNDistinct(rapid.StringMatching(`[a-z][a-z0-9]{0,6}\.(txt|js|css|json)`), 1, 5, rapid.ID[string]).Draw(rt, "files") {
			files[name] = "file:" + rapid.StringMatching(`[a-z ]{0,20}`).Draw(rt, "content "+name)
		}
		withIndex := rapid.Bool().Draw(rt, "index.html")
		if withIndex {
			files["index.html"] = "file:index"
		}
		server := rapid.Bool().Draw(rt, "start command")
		if server {
			files["server.js"] = echoJS
		}
		s := e.site("p21", id, files)
		s.SPA = rapid.Bool().Draw(rt, "spa")
		s.DeploymentID = id
		if server {
			s.Start, s.Health = "node server.js", patientHealth
		}
		if err := e.srv.Activate(context.Background(), s, nil); err != nil {
			rt.Fatalf("activate: %v", err)
		}
		get := func(path string) (int, string) {
			code, body, err := httpGet(t, hs, "p21.localhost", path)
			if err != nil {
				rt.Fatalf("GET %s: %v", path, err)
			}
			return code, body
		}
		for name, content := range files {
			code, body := get("/" + name)
			if server {
				if code != 200 || body != "process:/"+name {
					rt.Fatalf("server build: GET /%s = %d %q, want the process's answer", name, code, body)
				}
				continue
			}
			if name == "index.html" {
				continue // served at "/"
			}
			if code != 200 || body != content {
				rt.Fatalf("static build: GET /%s = %d %q, want the file", name, code, body)
			}
		}
		for _, path := range []string{"/", "/no-such-page", "/deep/route", "/missing.js"} {
			code, body := get(path)
			switch {
			case server:
				if code != 200 || body != "process:"+path {
					rt.Fatalf("server build: GET %s = %d %q", path, code, body)
				}
			case withIndex && (path == "/" || s.SPA && !strings.Contains(path, ".")):
				if code != 200 || body != "file:index" {
					rt.Fatalf("static build (spa %v): GET %s = %d %q, want index.html", s.SPA, path, code, body)
				}
			case code != 404:
				rt.Fatalf("static build (spa %v, index %v): GET %s = %d %q, want 404", s.SPA, withIndex, path, code, body)
			}
		}
		if (e.srv.Port("p21") != 0) != server {
			rt.Fatalf("port %d: a server build has a process, a static one none", e.srv.Port("p21"))
		}
	})
}

// probeJS answers its health probes from the script in PROBES, one entry per
// probe received: a status code, "drop" (the connection is cut) or "hang"
// (no answer, so the probe times out). Every probe is logged before it is
// answered, so the test knows what the edge was told. Other paths answer
// "new".
const probeJS = `const script = (process.env.PROBES || '').split(',');
let n = 0;
require('http').createServer((q, r) => {
  if (q.url !== '/health') { r.end('new'); return; }
  const a = script[n++] || 'hang';
  console.log('probe answer ' + a);
  if (a === 'hang') return;
  if (a === 'drop') { q.socket.destroy(); return; }
  r.statusCode = +a; r.end(a);
}).listen(process.env.PORT, process.env.HOST);
`

var probeAnswer = regexp.MustCompile(`probe answer (\w+)`)

// TestHealthCheckResponsesProperty is the seed's Property 22: for any
// sequence of answers to the health probes (status codes 200 to 599, cut
// connections, timeouts, or no listener at all), activation succeeds exactly
// when a probe is answered below 500 within the tries; a failed activation
// leaves the previous deployment serving, the new process stopped and its
// port free.
//
// Which answers the edge got is read from the app's own log rather than
// assumed from the script: on a loaded machine a probe may find the port not
// yet open, and the verdict must follow what was answered, not how fast Node
// started.
func TestHealthCheckResponsesProperty(t *testing.T) {
	testenv.Checks(t, 10)
	sink := &logSink{}
	e, hs := newAppEdge(t, sink)
	prev := e.site("p22", 1, map[string]string{"index.html": "previous"})
	var id int64 = 1
	rapid.Check(t, func(rt *rapid.T) {
		id++
		e.activate(prev)
		// A probe app that passed in an earlier check drains in the
		// background; its port comes back when it is gone.
		waitFor(t, func() bool { return e.srv.runtime.ports.inUse() == 0 })

		tries := rapid.IntRange(1, 3).Draw(rt, "tries")
		var script []string
		for i := range tries {
			switch kind := rapid.IntRange(0, 9).Draw(rt, fmt.Sprintf("probe %d", i)); kind {
			case 0:
				script = append(script, "hang")
			case 1:
				script = append(script, "drop")
			default:
				script = append(script, strconv.Itoa(rapid.IntRange(200, 599).Draw(rt, fmt.Sprintf("status %d", i))))
			}
		}
		listens := rapid.IntRange(0, 5).Draw(rt, "listens (0: never)") > 0
		marker := fmt.Sprintf("mv-p22-%d", id)
		s := e.site("p22", id, map[string]string{"probe.js": probeJS})
		s.Start = "node probe.js " + marker
		if !listens {
			s.Start = "node -e 'setInterval(() => {}, 1000)' " + marker
		}
		s.DeploymentID = id
		s.Env = []string{"PROBES=" + strings.Join(script, ",")}
		// One second per try: long enough for an answer on a busy machine,
		// short enough that timeouts keep the property quick.
		s.Health = HealthCheck{Path: "/health", Tries: tries, Interval: time.Second}
		err := e.srv.Activate(context.Background(), s, nil)

		healthyAnswer := func() (answered []string, ok bool) {
			for _, m := range probeAnswer.FindAllStringSubmatch(sink.text(id), -1) {
				answered = append(answered, m[1])
				if code, err := strconv.Atoi(m[1]); err == nil && code < 500 {
					ok = true
				}
			}
			return answered, ok
		}
		if err == nil {
			// The app logged its answer before sending it; the line may
			// still be on its way to the log.
			waitFor(t, func() bool { _, ok := healthyAnswer(); return ok })
			answered, _ := healthyAnswer()
			if len(answered) > tries {
				rt.Fatalf("%d probes answered (%v), at most %d tries", len(answered), answered, tries)
			}
			if code, body, _ := httpGet(t, hs, "p22.localhost", "/"); code != 200 || body != "new" {
				rt.Fatalf("after a successful activation production answers %d %q", code, body)
			}
			return
		}
		// A failed activation stopped the process before returning, so its
		// whole output is in the log.
		answered, ok := healthyAnswer()
		if ok || !errors.Is(err, ErrUnhealthy) {
			rt.Fatalf("activation failed (%v) though the probes were answered %v", err, answered)
		}
		if len(answered) > tries {
			rt.Fatalf("%d probes answered (%v), at most %d tries", len(answered), answered, tries)
		}
		if code, body, _ := httpGet(t, hs, "p22.localhost", "/"); code != 200 || body != "previous" {
			rt.Fatalf("after a failed activation production answers %d %q, want the previous build", code, body)
		}
		if active, _ := e.srv.Active("p22"); active != prev.BuildID {
			rt.Fatalf("Active = %d, want %d", active, prev.BuildID)
		}
		if n := e.srv.runtime.ports.inUse(); n != 0 {
			rt.Fatalf("%d ports in use after a failed activation", n)
		}
		if out, _ := exec.Command("pgrep", "-f", marker).Output(); len(out) > 0 {
			rt.Fatalf("the failed app still runs: pids %s", out)
		}
	})
}
