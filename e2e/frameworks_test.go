package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// The framework projects below are written as each framework's
// documentation shows, cut to a page and a server route, with versions
// pinned to ones on the npm registry that build on the machines' Node 20.

// logBuildTime reports how long the server said the build took, for the
// CI budget of these tests.
func logBuildTime(t *testing.T, what, out string, start time.Time) {
	t.Helper()
	if m := regexp.MustCompile(`Build #\d+ succeeded in (\S+)`).FindStringSubmatch(out); m != nil {
		t.Logf("%s: build %s, push to served %s", what, m[1], time.Since(start).Round(time.Second))
	}
}

// deployFramework pushes files as project what through OpenSSH, checks that
// the push log shows the detection line detected, and returns the server
// and the push output.
func deployFramework(t *testing.T, what, project, detected string, files map[string]string) (*server, string) {
	t.Helper()
	needRegistry(t, what)
	start := time.Now()
	s := startServer(t)
	out := s.mustPush(newRepo(t, "main", files), project)
	if !strings.Contains(out, "Detected: "+detected) {
		t.Errorf("push output does not say %q:\n%s", "Detected: "+detected, out)
	}
	logBuildTime(t, what, out, start)
	return s, out
}

// wantHidden fails the test unless each path answers 404 without code in
// its body: server bundles, source maps and configs are never files anyone
// can fetch.
func (s *server) wantHidden(host string, paths ...string) {
	s.t.Helper()
	for _, p := range paths {
		if code, body := s.get(host, p); code != 404 || strings.Contains(body, "sourcesContent") || strings.Contains(body, "import ") {
			s.t.Errorf("%s%s = %d %q; want the app's 404", host, p, code, body[:min(200, len(body))])
		}
	}
}

// wantStatus fails the test unless host answers path with code and a body
// containing want.
func (s *server) wantStatus(host, path string, code int, want string) {
	s.t.Helper()
	got, body := s.get(host, path)
	if got != code || !strings.Contains(body, want) {
		s.t.Errorf("%s%s = %d %q; want %d with %q", host, path, got, body[:min(300, len(body))], code, want)
	}
}

// TestSvelteKitNodeApp: a SvelteKit app with adapter-node and no start
// script (as SvelteKit's docs write it) runs as a server with `node build`;
// its server bundle and source maps are not files anyone can fetch.
func TestSvelteKitNodeApp(t *testing.T) {
	t.Parallel()
	s, _ := deployFramework(t, "SvelteKit", "skapp",
		"SvelteKit (@sveltejs/kit and @sveltejs/adapter-node in package.json) → Node server, start: node build",
		map[string]string{
			"package.json": `{"name":"skapp","private":true,"type":"module",
  "scripts":{"dev":"vite dev","build":"vite build","preview":"vite preview"},
  "devDependencies":{"@sveltejs/adapter-node":"5.5.7","@sveltejs/kit":"2.70.4","@sveltejs/vite-plugin-svelte":"6.2.4","svelte":"5.57.3","vite":"6.4.6"}}`,
			"svelte.config.js": "import adapter from '@sveltejs/adapter-node';\nexport default { kit: { adapter: adapter() } };\n",
			"vite.config.js": "import { sveltekit } from '@sveltejs/kit/vite';\nimport { defineConfig } from 'vite';\n" +
				"export default defineConfig({ plugins: [sveltekit()] });\n",
			"src/app.html":            "<!doctype html>\n<html><head><meta charset=\"utf-8\">%sveltekit.head%</head><body>%sveltekit.body%</body></html>\n",
			"src/routes/+page.svelte": "<h1>Hello from SvelteKit on minivercel</h1>\n",
			"src/routes/api/hello/+server.js": "export function GET() {\n" +
				"  return new Response(JSON.stringify({ server: 'sveltekit' }), { headers: { 'content-type': 'application/json' } });\n}\n",
		})
	const host = "skapp.localhost"
	s.wantStatus(host, "/", 200, "Hello from SvelteKit on minivercel")
	s.wantStatus(host, "/api/hello", 200, `"server":"sveltekit"`)
	// The regression: these were the server's code, served as files.
	s.wantHidden(host, "/index.js", "/handler.js", "/index.js.map", "/handler.js.map", "/server/chunks/", "/build/index.js", "/svelte.config.js", "/package.json")
	s.wantStatus(host, "/nope", 404, "")
}

// TestNuxtApp: a Nuxt 3 app built with `nuxt build` runs the server Nitro
// writes to .output, which is all that is packed.
func TestNuxtApp(t *testing.T) {
	t.Parallel()
	s, out := deployFramework(t, "Nuxt", "nuxtapp", "Nuxt (nuxt in package.json) → Node server, start: node server/index.mjs",
		map[string]string{
			"package.json": `{"name":"nuxtapp","private":true,"type":"module",
  "scripts":{"build":"nuxt build","dev":"nuxt dev","generate":"nuxt generate","preview":"nuxt preview"},
  "dependencies":{"nuxt":"3.21.9"}}`,
			"nuxt.config.ts":      "export default defineNuxtConfig({ telemetry: false });\n",
			"pages/index.vue":     "<template><h1>Hello from Nuxt on minivercel</h1></template>\n",
			"server/api/hello.ts": "export default defineEventHandler(() => ({ server: 'nuxt' }));\n",
		})
	if !strings.Contains(out, "Packing .output") {
		t.Errorf("push output does not pack .output alone:\n%s", out)
	}
	const host = "nuxtapp.localhost"
	s.wantStatus(host, "/", 200, "Hello from Nuxt on minivercel")
	s.wantStatus(host, "/api/hello", 200, `"server":"nuxt"`)
	s.wantHidden(host, "/server/index.mjs", "/nitro.json", "/nuxt.config.ts", "/package.json", "/.output/server/index.mjs")
	s.wantStatus(host, "/nope", 404, "")
}

// TestAstroStaticSite: an Astro site is pages, not a single-page app: an
// unknown path answers its own 404 page with status 404, not the home page.
// It is the current Astro major, which needs Node 22.12 or later: the
// project says so in engines.node, and that Node builds it.
func TestAstroStaticSite(t *testing.T) {
	t.Parallel()
	s, out := deployFramework(t, "Astro", "astrosite", "Astro (astro in package.json) → npm build (npm), output dist",
		map[string]string{
			"package.json": `{"name":"astrosite","private":true,"type":"module","engines":{"node":">=22.12.0"},
  "scripts":{"dev":"astro dev","build":"astro build","preview":"astro preview","astro":"astro"},
  "dependencies":{"astro":"7.3.5"}}`,
			"astro.config.mjs":      "import { defineConfig } from 'astro/config';\nexport default defineConfig({});\n",
			"src/pages/index.astro": "<html><body><h1>Hello from Astro on minivercel</h1></body></html>\n",
			"src/pages/about.astro": "<html><body><h1>About this Astro site</h1></body></html>\n",
			"src/pages/404.astro":   "<html><body><h1>No such Astro page</h1></body></html>\n",
		})
	if !regexp.MustCompile(`Node 2[2-9]\.\d+\.\d+ \(from package.json engines.node`).MatchString(out) {
		t.Errorf("push output does not say a Node of 22 or later ran, from engines.node:\n%s", out)
	}
	const host = "astrosite.localhost"
	s.wantStatus(host, "/", 200, "Hello from Astro on minivercel")
	s.wantStatus(host, "/about/", 200, "About this Astro site")
	s.wantStatus(host, "/nope", 404, "No such Astro page")
	s.wantStatus(host, "/blog/first-post", 404, "No such Astro page")
}

// TestSvelteKitAutoAdapterIsRefused: SvelteKit's default adapter-auto
// builds for hosting platforms, not for this server: the push fails at
// detection with what to change, before anything is installed.
func TestSvelteKitAutoAdapterIsRefused(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	r := newRepo(t, "main", map[string]string{
		"package.json": `{"name":"auto","private":true,"type":"module","scripts":{"build":"vite build"},
  "devDependencies":{"@sveltejs/adapter-auto":"6.1.1","@sveltejs/kit":"2.70.4","svelte":"5.57.3","vite":"6.4.6"}}`,
		"svelte.config.js":        "import adapter from '@sveltejs/adapter-auto';\nexport default { kit: { adapter: adapter() } };\n",
		"src/routes/+page.svelte": "<h1>never built</h1>\n",
	})
	out, code := s.push(r, "auto")
	if code == 0 {
		t.Fatalf("push of an adapter-auto app succeeded:\n%s", out)
	}
	for _, want := range []string{"SvelteKit with @sveltejs/adapter-auto builds nothing this server can run", "@sveltejs/adapter-node", "@sveltejs/adapter-static"} {
		if !strings.Contains(out, want) {
			t.Errorf("push output does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Installing dependencies") {
		t.Errorf("an unservable app was installed:\n%s", out)
	}
	if code, _ := s.get("auto.localhost", "/"); code == 200 {
		t.Errorf("an unservable app is served")
	}
}
