package e2e

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestFunctions: a static site with an api/ folder, pushed over OpenSSH,
// serves its page as files and its functions as routes, with Vercel's Node
// signature and the Web one, run as an unprivileged user with the project's
// variables, also after a restart of the server; the functions' source is
// never downloadable and the functions cannot change the site's files; a
// TypeScript function on a Node without type stripping fails the build; a
// project of functions only deploys.
func TestFunctions(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	r := newRepo(t, "main", map[string]string{
		"index.html": "<h1>static home</h1>",
		"api/hello.js": `import { greet } from "./_greet.js";
export default function handler(req, res) {
  res.status(200).json({ text: greet(req.query.name), greeting: process.env.GREETING ?? null, uid: process.getuid() });
}`,
		"api/_greet.js": `export const greet = (name = "world") => "hello " + name;`,
		"api/deface.mjs": `import { writeFileSync } from "node:fs";
export default () => {
  try { writeFileSync("../../index.html", "defaced"); return new Response("wrote"); }
  catch (err) { return new Response(err.code); }
};`,
		"api/time.mjs": `export async function GET(request) {
  return Response.json({ path: new URL(request.url).pathname, now: Date.now() });
}`,
	})
	s.mustPush(r, "fn")
	if out, code := s.cli(t, "env", "set", "fn", "GREETING=from the project"); code != 0 {
		t.Fatalf("env set: %d %s", code, out)
	}
	r.commit("again", map[string]string{"README": "rebuild with the variable"})
	out := s.mustPush(r, "fn")
	if !strings.Contains(out, "Functions: /api/deface, /api/hello, /api/time") {
		t.Errorf("the push does not list the functions:\n%s", out)
	}
	s.waitBody("fn.localhost", "/", "static home")
	for _, c := range []struct {
		path string
		code int
		want []string
	}{
		{"/api/hello?name=ann", 200, []string{`"text":"hello ann"`, `"greeting":"from the project"`}},
		{"/api/time", 200, []string{`"path":"/api/time"`}},
		{"/api/nope", 404, nil},
		{"/api/hello.js", 404, nil},
		{"/api/_greet.js", 404, nil},
		{"/.minivercel/functions/api/hello.js", 404, nil},
	} {
		code, body := s.get("fn.localhost", c.path)
		if code != c.code || strings.Contains(body, "export ") {
			t.Errorf("%s = %d %q, want %d and no source", c.path, code, body, c.code)
		}
		for _, w := range c.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s = %q, want %q in it", c.path, body, w)
			}
		}
	}
	if _, body := s.get("fn.localhost", "/api/hello"); strings.Contains(body, `"uid":0`) {
		t.Errorf("functions run as root: %s", body)
	}
	// The process owns its functions' directory only, not the site's files.
	if code, body := s.get("fn.localhost", "/api/deface"); code != 200 || body != "EACCES" {
		t.Errorf("/api/deface = %d %q, want EACCES", code, body)
	}
	if _, body := s.get("fn.localhost", "/"); !strings.Contains(body, "static home") {
		t.Errorf("the page after /api/deface: %q", body)
	}
	// A TypeScript function on a Node that cannot strip types fails the
	// build with the reason.
	ts := newRepo(t, "main", map[string]string{"index.html": "x", "api/a.ts": "export default (): Response => new Response('typed')"})
	tsOut, code := s.push(ts, "fnts")
	switch node := nodeMajor(t); {
	case node < 22 && (code == 0 || !strings.Contains(tsOut, "TypeScript functions need Node 22.6 or later")):
		t.Errorf("a TypeScript function on Node %d: exit %d\n%s", node, code, tsOut)
	case node >= 23 && code != 0:
		t.Errorf("a TypeScript function on Node %d failed: %s", node, tsOut)
	}

	// A project of functions only deploys too: / is a 404.
	apiOnly := newRepo(t, "main", map[string]string{"README.md": "an API", "api/ping.mjs": `export default () => new Response("pong");`})
	if out := s.mustPush(apiOnly, "fnapi"); !strings.Contains(out, "Functions: /api/ping") {
		t.Errorf("push of functions only:\n%s", out)
	}
	if code, body := s.get("fnapi.localhost", "/api/ping"); code != 200 || body != "pong" {
		t.Errorf("/api/ping = %d %q", code, body)
	}
	if code, _ := s.get("fnapi.localhost", "/README.md"); code != 404 {
		t.Errorf("/README.md of a project of functions only = %d, want 404", code)
	}

	// After a restart of the server, the functions come back with the
	// project's variables.
	s.restart()
	if code, body := s.get("fn.localhost", "/api/hello"); code != 200 || !strings.Contains(body, `"greeting":"from the project"`) {
		t.Errorf("/api/hello after a restart = %d %q", code, body)
	}
}

// TestFunctionsWithDependencies: a static site whose package.json only
// declares what its functions import gets an install step and its
// production dependencies beside the functions, never as files.
func TestFunctionsWithDependencies(t *testing.T) {
	t.Parallel()
	needRegistry(t, "a function's dependency from the npm registry")
	s := startServer(t)
	r := newRepo(t, "main", map[string]string{
		"index.html":   "<h1>home</h1>",
		"package.json": `{"name":"fndeps","private":true,"type":"module","dependencies":{"ms":"2.1.3"}}`,
		"api/ms.js": `import ms from "ms";
export default (req, res) => res.send(String(ms(req.query.d)));`,
	})
	out := s.mustPush(r, "fndeps")
	if !strings.Contains(out, "Functions: /api/ms") || !strings.Contains(out, "Installing dependencies: npm install") {
		t.Errorf("push output:\n%s", out)
	}
	s.waitBody("fndeps.localhost", "/", "home")
	if code, body := s.get("fndeps.localhost", "/api/ms?d=2h"); code != 200 || body != "7200000" {
		t.Errorf("/api/ms?d=2h = %d %q", code, body)
	}
	for _, p := range []string{"/node_modules/ms/package.json", "/.minivercel/functions/node_modules/ms/package.json"} {
		if code, _ := s.get("fndeps.localhost", p); code != 404 {
			t.Errorf("%s = %d, want 404", p, code)
		}
	}
}

// nodeMajor is the major version of the machine's Node, which runs the
// functions.
func nodeMajor(t *testing.T) int {
	out, err := exec.Command("node", "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	major, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimSpace(string(out)), "v"), ".")
	n, err := strconv.Atoi(major)
	if err != nil {
		t.Fatalf("node --version: %q", out)
	}
	return n
}

// TestTypeScriptFunctionsOnTheBuildsNode: a TypeScript function of a
// project that asks for Node 22 in .nvmrc builds with that Node and runs on
// it, although the machine's own Node (20) cannot strip types.
func TestTypeScriptFunctionsOnTheBuildsNode(t *testing.T) {
	t.Parallel()
	needRegistry(t, "a Node 22 from the npm registry")
	s := startServer(t)
	r := newRepo(t, "main", map[string]string{
		"index.html": "<h1>typed home</h1>",
		".nvmrc":     "22\n",
		"api/typed.ts": `type Greeting = { text: string; node: string };
export default function handler(request: Request): Response {
  const g: Greeting = { text: "typed", node: process.version };
  return Response.json(g);
}
`,
	})
	out := s.mustPush(r, "fnts22")
	if !strings.Contains(out, "Functions: /api/typed") || !strings.Contains(out, `(from .nvmrc "22")`) {
		t.Errorf("push output:\n%s", out)
	}
	s.waitBody("fnts22.localhost", "/", "typed home")
	if code, body := s.get("fnts22.localhost", "/api/typed"); code != 200 || !strings.Contains(body, `"text":"typed"`) || !strings.Contains(body, `"node":"v22.`) {
		t.Errorf("/api/typed = %d %q, want the typed answer from Node 22", code, body)
	}
}
