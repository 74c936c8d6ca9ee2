package e2e

import (
	"strings"
	"testing"
)

// TestPushSiteConfig: a static site that brings vercel.json, _redirects and
// _headers gets its redirects, rewrites, headers and clean URLs; the files
// themselves are not served; unsupported keys are warnings in the push log;
// an invalid _redirects fails the push with its line, and the previous
// deployment keeps serving.
func TestPushSiteConfig(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	r := newRepo(t, "main", map[string]string{
		"index.html": "<h1>home</h1>",
		"about.html": "<h1>about</h1>",
		"app.html":   "<h1>app shell</h1>",
		"404.html":   "<h1>custom 404</h1>",
		"vercel.json": `{
  "cleanUrls": true,
  "functions": {"api/*.js": {"memory": 1024}},
  "redirects": [{"source": "/docs/:page*", "destination": "/guide/:page*"}],
  "headers": [{"source": "/about", "headers": [{"key": "Cache-Control", "value": "public, max-age=600"}]}]
}`,
		"_redirects": "# moved in 2024\n/old-blog/*  /blog/:splat  301\n/app/*       /app.html     200\n",
		"_headers":   "/*\n  X-Frame-Options: DENY\n  Permissions-Policy: camera=()\n",
	})
	out := s.mustPush(r, "conf")
	for _, want := range []string{
		"remote: -----> Routing files: vercel.json (repository root), _redirects (repository root), _headers (repository root)",
		"remote: warning: vercel.json:3:16: functions: functions are configured by the api/ folder here; ignored",
		"remote:        2 redirects, 1 rewrite, 2 header rules, clean URLs",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("push output lacks %q:\n%s", want, out)
		}
	}
	const host = "conf.localhost"
	for _, tc := range []struct {
		path, location string
		code           int
		body           string
		headers        map[string]string
	}{
		{path: "/old-blog/2024/hello?utm=x", code: 301, location: "/blog/2024/hello?utm=x"},
		{path: "/docs/setup/ssh", code: 308, location: "/guide/setup/ssh"},
		{path: "/about.html", code: 308, location: "/about"},
		{path: "/about", code: 200, body: "<h1>about</h1>", headers: map[string]string{"Cache-Control": "public, max-age=600", "X-Frame-Options": "DENY"}},
		{path: "/app/settings/profile", code: 200, body: "<h1>app shell</h1>", headers: map[string]string{"Permissions-Policy": "camera=()"}},
		{path: "/nowhere", code: 404, body: "<h1>custom 404</h1>", headers: map[string]string{"X-Frame-Options": "DENY"}},
		{path: "/vercel.json", code: 404, body: "<h1>custom 404</h1>"},
		{path: "/_redirects", code: 404, body: "<h1>custom 404</h1>"},
		{path: "/_headers", code: 404, body: "<h1>custom 404</h1>"},
		{path: "/.minivercel/site.json", code: 404, body: "<h1>custom 404</h1>"},
	} {
		resp, body := s.fetch(t, host, tc.path, nil)
		code, hdr := resp.StatusCode, resp.Header
		if code != tc.code || hdr.Get("Location") != tc.location || tc.body != "" && body != tc.body {
			t.Errorf("GET %s = %d %q %q, want %d %q %q", tc.path, code, hdr.Get("Location"), body, tc.code, tc.location, tc.body)
		}
		for k, v := range tc.headers {
			if hdr.Get(k) != v {
				t.Errorf("GET %s: %s = %q, want %q", tc.path, k, hdr.Get(k), v)
			}
		}
	}

	r.commit("break the redirects", map[string]string{"_redirects": "/a /b\n/c /d 302\n/e /f 30x\n"})
	out, code := s.push(r, "conf")
	if code == 0 {
		t.Fatalf("push of an invalid _redirects exited 0:\n%s", out)
	}
	if !strings.Contains(out, `remote: error: artifact failed: _redirects:3: unexpected "30x" after the destination`) {
		t.Errorf("push output lacks the file, line and reason:\n%s", out)
	}
	if resp, _ := s.fetch(t, host, "/old-blog/x", nil); resp.StatusCode != 301 || resp.Header.Get("Location") != "/blog/x" {
		t.Errorf("after the failed push /old-blog/x = %d %q, want the previous deployment's 301", resp.StatusCode, resp.Header.Get("Location"))
	}
}
