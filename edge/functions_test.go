package edge

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"minivercel/hosts"
	"minivercel/pipeline"
	"minivercel/proc"
)

// functionFiles is a static site with functions of every kind the runner
// knows, written as their authors would.
var functionFiles = map[string]string{
	"index.html": "<h1>home</h1>",
	// Vercel's Node signature, in ESM without a package.json "type".
	"api/hello.js": `export default function handler(req, res) {
  res.status(200).json({ hello: req.query.name ?? "world", greeting: process.env.GREETING ?? null, cookie: req.cookies.c ?? null });
}`,
	// CommonJS, with a parsed body.
	"api/echo.cjs": `const { tag } = require("./_tag.cjs");
module.exports = (req, res) => res.send({ tag, method: req.method, body: req.body });`,
	"api/_tag.cjs": `exports.tag = "helper";`,
	// The Web signature, as a default export.
	"api/time.mjs": `export default async function (request) {
  return Response.json({ path: new URL(request.url).pathname, greeting: process.env.GREETING ?? null });
}`,
	// The Web signature, as named exports.
	"api/items.mjs": `export function GET() { return new Response("items"); }
export async function POST(request) {
  const { n } = await request.json();
  return new Response(JSON.stringify({ n: n + 1 }), { status: 201, headers: { "content-type": "application/json", "set-cookie": "a=1" } });
}`,
	"api/stream.mjs": `export default () => new Response(new ReadableStream({
  start(c) { const e = new TextEncoder(); c.enqueue(e.encode("one ")); c.enqueue(e.encode("two")); c.close(); },
}));`,
	"api/nothing.js":     `export const notAHandler = 1;`,
	"api/broken.js":      `export default (req, res) => {`,
	"api/users/[id].js":  `export default (req, res) => res.json({ id: req.query.id, page: req.query.page });`,
	"api/go.js":          `export default (req, res) => res.redirect("/elsewhere");`,
	"api/boom.js":        `export default (req, res) => { throw new Error("kaboom: the database password is hunter2"); };`,
	"api/crash.js":       `export default (req, res) => { setTimeout(() => { throw new Error("crash"); }, 0); };`,
	"api/crashed-ok.mjs": `export default () => new Response("after the crash");`,
}

// functionsSite builds the artifact of a static site with functions the way
// the pipeline does: found, staged at the root, packed.
func functionsSite(t *testing.T, e *testEdge, project string, id int64, files map[string]string) Site {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fns, err := pipeline.FindFunctions(dir, pipeline.Plan{Kind: pipeline.KindStatic, OutputDir: "."})
	if err != nil || fns == nil {
		t.Fatalf("FindFunctions = %v, %v", fns, err)
	}
	if err := fns.Stage(dir, "."); err != nil {
		t.Fatal(err)
	}
	artifact := filepath.Join(t.TempDir(), "a.tar.gz")
	sum, _, err := pipeline.Pack(dir, artifact)
	if err != nil {
		t.Fatal(err)
	}
	return Site{Project: project, BuildID: id, Slug: "fnslug" + strings.Repeat("x", 4) + string(rune('a'+id)),
		ArtifactPath: artifact, SHA256: sum, DeploymentID: 100 + id, Env: []string{"GREETING=hello from the project"}}
}

// call sends a request through the edge's handler.
func call(e *testEdge, method, host, target, contentType, body string, header map[string]string) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, target, rd)
	r.Host = host
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(w, r)
	return w
}

func TestFunctions(t *testing.T) {
	t.Parallel()
	sink := &logSink{}
	lk := &fakeLookup{}
	needNode(t)
	e := newEdgeWith(t, lk, func(c *Config) {
		c.Runtime = RuntimeConfig{Logs: sink, StopTimeout: 2 * time.Second, ProbeInterval: time.Hour}
		c.Functions = FunctionsConfig{Idle: time.Hour, MaxBodyBytes: 64 << 10}
	})
	e.lookup = lk
	shutDownAtEnd(t, e.srv)
	site := functionsSite(t, e, "fns", 1, functionFiles)
	e.activate(site)
	host := "fns.localhost"
	json := "application/json"

	cases := []struct {
		name, method, path, ctype, body string
		header                          map[string]string
		code                            int
		want                            []string // parts of the body
		notWant                         string
	}{
		{"node signature with query, cookie and variables", "GET", "/api/hello?name=ann", "", "", map[string]string{"Cookie": "c=yum; d=2"}, 200,
			[]string{`"hello":"ann"`, `"greeting":"hello from the project"`, `"cookie":"yum"`}, ""},
		{"commonjs with a JSON body and a helper", "POST", "/api/echo", json, `{"a":[1,2]}`, nil, 200,
			[]string{`"tag":"helper"`, `"method":"POST"`, `"body":{"a":[1,2]}`}, ""},
		{"form body", "POST", "/api/echo", "application/x-www-form-urlencoded", "x=1&x=2&y=3", nil, 200, []string{`"body":{"x":["1","2"],"y":"3"}`}, ""},
		{"keys named like object members", "POST", "/api/echo", "application/x-www-form-urlencoded", "toString=a&constructor=b&__proto__=c", nil, 200,
			[]string{`"body":{"toString":"a","constructor":"b","__proto__":"c"}`}, ""},
		{"query keys named like object members", "GET", "/api/users/5?page=1&toString=x", "", "", nil, 200, []string{`"id":"5"`, `"page":"1"`}, ""},
		{"text body", "POST", "/api/echo", "text/plain", "just text", nil, 200, []string{`"body":"just text"`}, ""},
		{"invalid JSON", "POST", "/api/echo", json, `{nope`, nil, 400, []string{"Invalid JSON"}, ""},
		{"web signature", "GET", "/api/time", "", "", nil, 200, []string{`"path":"/api/time"`, `"greeting":"hello from the project"`}, ""},
		{"named GET", "GET", "/api/items", "", "", nil, 200, []string{"items"}, ""},
		{"named POST", "POST", "/api/items", json, `{"n":1}`, nil, 201, []string{`{"n":2}`}, ""},
		{"HEAD answered by GET", "HEAD", "/api/items", "", "", nil, 200, nil, "items"},
		{"streamed body", "GET", "/api/stream", "", "", nil, 200, []string{"one two"}, ""},
		{"method without a handler", "DELETE", "/api/items", "", "", nil, 405, []string{"DELETE"}, ""},
		{"dynamic segment", "GET", "/api/users/42?page=3", "", "", nil, 200, []string{`"id":"42"`, `"page":"3"`}, ""},
		{"trailing slash", "GET", "/api/users/7/", "", "", nil, 200, []string{`"id":"7"`}, ""},
		{"redirect", "GET", "/api/go", "", "", nil, 307, nil, ""},
		{"unknown function", "GET", "/api/nope", "", "", nil, 404, []string{"no function at /api/nope"}, ""},
		{"helper is no route", "GET", "/api/_tag", "", "", nil, 404, nil, ""},
		{"thrown error", "GET", "/api/boom", "", "", nil, 500, []string{"Internal Server Error"}, "hunter2"},
		{"no handler exported", "GET", "/api/nothing", "", "", nil, 500, []string{"Internal Server Error"}, ""},
		{"syntax error", "GET", "/api/broken", "", "", nil, 500, []string{"Internal Server Error"}, "SyntaxError"},
		{"oversized body", "POST", "/api/echo", "text/plain", strings.Repeat("x", 65<<10), nil, 413, nil, ""},
		{"static page", "GET", "/", "", "", nil, 200, []string{"<h1>home</h1>"}, ""},
		{"function source", "GET", "/api/hello.js", "", "", nil, 404, nil, "export default"},
		{"staged source", "GET", "/.minivercel/functions/api/hello.js", "", "", nil, 404, nil, "export default"},
		{"staged source, dotted path", "GET", "/x/../.minivercel/functions/routes.json", "", "", nil, 404, nil, "segments"},
		{"runner", "GET", "/.minivercel/functions/runner.mjs", "", "", nil, 404, nil, "createServer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := call(e, c.method, host, c.path, c.ctype, c.body, c.header)
			got := w.Body.String()
			if w.Code != c.code {
				t.Fatalf("%s %s = %d %q, want %d", c.method, c.path, w.Code, got, c.code)
			}
			for _, part := range c.want {
				if !strings.Contains(got, part) {
					t.Errorf("%s %s = %q, want it to contain %q", c.method, c.path, got, part)
				}
			}
			if c.notWant != "" && strings.Contains(got, c.notWant) {
				t.Errorf("%s %s = %q, must not contain %q", c.method, c.path, got, c.notWant)
			}
		})
	}
	if w := call(e, "GET", host, "/api/go", "", "", nil); w.Header().Get("Location") != "/elsewhere" {
		t.Errorf("redirect Location = %q", w.Header().Get("Location"))
	}
	if w := call(e, "POST", host, "/api/items", json, `{"n":1}`, nil); w.Header().Get("Set-Cookie") != "a=1" {
		t.Errorf("Set-Cookie = %q", w.Header().Get("Set-Cookie"))
	}
	if w := call(e, "DELETE", host, "/api/items", "", "", nil); w.Header().Get("Allow") != "GET, HEAD, POST" {
		t.Errorf("Allow = %q", w.Header().Get("Allow"))
	}
	for _, logged := range []string{"kaboom", "api/nothing.js exports no handler", "api/broken.js could not be loaded"} {
		waitFor(t, func() bool { return strings.Contains(sink.text(site.DeploymentID), logged) })
	}

	t.Run("crash then recovery", func(t *testing.T) {
		if w := call(e, "GET", host, "/api/crash", "", "", nil); w.Code != http.StatusBadGateway {
			t.Fatalf("a crashing function = %d %q, want 502", w.Code, w.Body.String())
		}
		if w := call(e, "GET", host, "/api/crashed-ok", "", "", nil); w.Code != 200 || w.Body.String() != "after the crash" {
			t.Fatalf("after the crash = %d %q, want the function's answer", w.Code, w.Body.String())
		}
	})

	t.Run("preview", func(t *testing.T) {
		preview := functionsSite(t, e, "fns", 2, functionFiles)
		preview.Env = []string{"GREETING=preview"}
		lk.add(preview)
		w := call(e, "GET", hosts.New("localhost").Build("fns", preview.Slug), "/api/time", "", "", nil)
		if w.Code != 200 || !strings.Contains(w.Body.String(), `"greeting":"preview"`) {
			t.Fatalf("preview = %d %q, want its own variables", w.Code, w.Body.String())
		}
	})
}

// TestFunctionsBehindRoutingRules: vercel.json's rewrites reach functions,
// its headers apply to them, its redirects go before them.
func TestFunctionsBehindRoutingRules(t *testing.T) {
	t.Parallel()
	needNode(t)
	e := newEdgeWith(t, &fakeLookup{}, func(c *Config) {
		c.Runtime = RuntimeConfig{StopTimeout: 2 * time.Second, ProbeInterval: time.Hour}
	})
	shutDownAtEnd(t, e.srv)
	site := functionsSite(t, e, "rules", 1, map[string]string{
		"index.html":   "home",
		"api/hello.js": `export default (req, res) => res.send("hello " + (req.query.name ?? "world"));`,
		siteConfFile: compiledSiteJSON(t, `{
  "rewrites": [{"source": "/hi/:name", "destination": "/api/hello?name=:name"}],
  "redirects": [{"source": "/api/old", "destination": "/api/hello", "permanent": true}],
  "headers": [{"source": "/api/(.*)", "headers": [{"key": "X-Api", "value": "yes"}]}]
}`, "", ""),
	})
	e.activate(site)
	if w := call(e, "GET", "rules.localhost", "/hi/bo", "", "", nil); w.Code != 200 || w.Body.String() != "hello bo" {
		t.Errorf("rewritten to a function = %d %q", w.Code, w.Body.String())
	}
	if w := call(e, "GET", "rules.localhost", "/api/hello", "", "", nil); w.Code != 200 || w.Header().Get("X-Api") != "yes" {
		t.Errorf("/api/hello = %d, X-Api %q", w.Code, w.Header().Get("X-Api"))
	}
	if w := call(e, "GET", "rules.localhost", "/api/old", "", "", nil); w.Code != 308 || w.Header().Get("Location") != "/api/hello" {
		t.Errorf("/api/old = %d to %q, want a redirect", w.Code, w.Header().Get("Location"))
	}
	if w := call(e, "GET", "rules.localhost", "/.minivercel/site.json", "", "", nil); w.Code != 404 {
		t.Errorf("site.json = %d", w.Code)
	}

	// A single-page app's catch-all rewrite leaves the functions alone, as
	// on Vercel: they are part of the site's filesystem.
	spa := functionsSite(t, e, "spa", 2, map[string]string{
		"index.html":        "the app",
		"api/users/[id].js": `export default (req, res) => res.send("user " + req.query.id);`,
		siteConfFile:        compiledSiteJSON(t, `{"rewrites": [{"source": "/(.*)", "destination": "/index.html"}]}`, "", ""),
	})
	e.activate(spa)
	for path, want := range map[string]string{"/api/users/7": "user 7", "/deep/link": "the app", "/api/nope": "the app"} {
		if w := call(e, "GET", "spa.localhost", path, "", "", nil); w.Code != 200 || w.Body.String() != want {
			t.Errorf("%s = %d %q, want %q", path, w.Code, w.Body.String(), want)
		}
	}
}

// TestFunctionRoutesFromAFIFORegression: the functions' directory is the
// app user's; a routes.json it swapped for a FIFO must not hang the edge.
func TestFunctionRoutesFromAFIFORegression(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, filepath.FromSlash(functionsDir)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, filepath.FromSlash(functionsDir), "routes.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if routes := loadFunctionRoutes(root); routes != nil {
		t.Fatalf("routes from a FIFO: %v", routes)
	}
}

func TestFunctionsStopWhenIdle(t *testing.T) {
	t.Parallel()
	needNode(t)
	e := newEdgeWith(t, &fakeLookup{}, func(c *Config) {
		c.Runtime = RuntimeConfig{StopTimeout: 2 * time.Second, ProbeInterval: time.Hour}
		c.Functions = FunctionsConfig{Idle: 200 * time.Millisecond}
	})
	shutDownAtEnd(t, e.srv)
	site := functionsSite(t, e, "idle", 1, map[string]string{
		"index.html":  "home",
		"api/pid.mjs": `export default () => new Response(String(process.pid));`,
	})
	e.activate(site)
	first := call(e, "GET", "idle.localhost", "/api/pid", "", "", nil)
	if first.Code != 200 {
		t.Fatalf("first = %d %q", first.Code, first.Body.String())
	}
	waitFor(t, func() bool { return len(e.srv.funcs.prod.running()) == 0 })
	if w := call(e, "GET", "idle.localhost", "/", "", "", nil); w.Code != 200 || len(e.srv.funcs.prod.running()) != 0 {
		t.Fatalf("a static page = %d, and started the functions: %v", w.Code, e.srv.funcs.prod.running())
	}
	second := call(e, "GET", "idle.localhost", "/api/pid", "", "", nil)
	if second.Code != 200 || second.Body.String() == first.Body.String() {
		t.Fatalf("after the idle stop = %d %q, want a new process (first was %q)", second.Code, second.Body.String(), first.Body.String())
	}
	// A redeploy of the site retires its process.
	e.activate(e.site("idle", 2, map[string]string{"index.html": "v2"}))
	waitFor(t, func() bool { return len(e.srv.funcs.prod.running()) == 0 })
}

func TestNodeFlags(t *testing.T) {
	for _, c := range []struct {
		version string
		want    string
	}{
		{"v18.19.0", ""},
		{"v20.9.0", ""},
		{"v20.20.2", "--experimental-detect-module --disable-warning=ExperimentalWarning"},
		{"v22.5.0", "--experimental-detect-module --disable-warning=ExperimentalWarning"},
		{"v22.6.0", "--experimental-detect-module --experimental-strip-types --disable-warning=ExperimentalWarning"},
		{"v22.18.0", "--experimental-strip-types --disable-warning=ExperimentalWarning"},
		{"v23.1.0", "--experimental-strip-types --disable-warning=ExperimentalWarning"},
		{"v24.0.0", ""},
	} {
		major, minor, ok := proc.ParseNodeVersion(c.version)
		if got := strings.Join(nodeFlags(major, minor), " "); !ok || got != c.want {
			t.Errorf("flags for %s = %q, want %q", c.version, got, c.want)
		}
	}
}
