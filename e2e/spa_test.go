package e2e

import (
	"regexp"
	"strings"
	"testing"
)

// TestViteReactSPA: a Vite + React + react-router single-page app, written as
// Vite's template and react-router's documentation show, installs from the
// npm registry and builds; every hashed asset its page loads is cached for
// a year (Vite's hashes may lack digits or hold a "-"), the page itself is
// revalidated, a client-side route answers the app, and a missing asset is
// a 404 rather than the page.
func TestViteReactSPA(t *testing.T) {
	t.Parallel()
	needRegistry(t, "the Vite build")
	s := startServer(t)
	r := newRepo(t, "main", viteReactApp())
	out := s.mustPush(r, "spa")
	if !strings.Contains(out, "vite build") {
		t.Errorf("push output does not show the Vite build:\n%s", out)
	}
	code, page := s.get("spa.localhost", "/")
	if code != 200 || !strings.Contains(page, `<div id="root">`) {
		t.Fatalf("/ = %d %q", code, page)
	}
	assets := regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(assets) < 2 {
		t.Fatalf("the page loads %d assets, want its script and its stylesheet:\n%s", len(assets), page)
	}
	for _, a := range assets {
		if cache := s.cacheControl(t, "spa.localhost", a[1]); !strings.Contains(cache, "immutable") {
			t.Errorf("%s: Cache-Control %q, want immutable (a hashed asset)", a[1], cache)
		}
	}
	if cache := s.cacheControl(t, "spa.localhost", "/"); strings.Contains(cache, "immutable") {
		t.Errorf("the page itself is cached as immutable: %q", cache)
	}
	if code, body := s.get("spa.localhost", "/about"); code != 200 || !strings.Contains(body, `<div id="root">`) {
		t.Errorf("client-side route /about = %d %q, want the app", code, body)
	}
	if code, body := s.get("spa.localhost", "/assets/gone-Abc12345.js"); code != 404 || strings.Contains(body, `<div id="root">`) {
		t.Errorf("a missing asset = %d %q, want a 404 and not the page", code, body)
	}
}

// cacheControl fetches path and returns the Cache-Control of its 200
// answer.
func (s *server) cacheControl(t *testing.T, host, path string) string {
	t.Helper()
	resp, _ := s.fetch(t, host, path, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s%s = %d", host, path, resp.StatusCode)
	}
	return resp.Header.Get("Cache-Control")
}

// viteReactApp is a Vite + React + react-router single-page app, as Vite's
// own template makes it.
func viteReactApp() map[string]string {
	return map[string]string{
		"package.json": `{"name":"spa","private":true,"type":"module",
  "scripts":{"dev":"vite","build":"vite build","preview":"vite preview"},
  "dependencies":{"react":"19.0.0","react-dom":"19.0.0","react-router-dom":"7.9.4"},
  "devDependencies":{"vite":"6.4.6","@vitejs/plugin-react":"4.6.0"}}`,
		"vite.config.js": "import { defineConfig } from 'vite';\nimport react from '@vitejs/plugin-react';\nexport default defineConfig({ plugins: [react()] });\n",
		"index.html": `<!doctype html><html><head><meta charset="utf-8"><title>SPA</title></head>
<body><div id="root"></div><script type="module" src="/src/main.jsx"></script></body></html>`,
		"src/main.jsx": `import { createRoot } from 'react-dom/client';
import { BrowserRouter, Routes, Route, Link } from 'react-router-dom';
import './style.css';
function Home() { return <h1>Home <Link to="/about">about</Link></h1>; }
function About() { return <h1>About</h1>; }
createRoot(document.getElementById('root')).render(
  <BrowserRouter><Routes><Route path="/" element={<Home />} /><Route path="/about" element={<About />} /></Routes></BrowserRouter>);
`,
		"src/style.css": "body { font-family: sans-serif; color: #234; }\n",
	}
}
