package edge

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"minivercel/siteconf"
)

// compiledSiteJSON compiles the three routing files (empty: absent) the
// way the build does and returns .minivercel/site.json's content.
func compiledSiteJSON(t *testing.T, vercel, redirects, headers string) string {
	t.Helper()
	var vc siteconf.Config
	var err error
	if vercel != "" {
		if vc, _, err = siteconf.ParseVercel("vercel.json", []byte(vercel)); err != nil {
			t.Fatal(err)
		}
	}
	rs, _, err := siteconf.ParseRedirects("_redirects", []byte(redirects))
	if err != nil {
		t.Fatal(err)
	}
	hs, _, err := siteconf.ParseHeaders("_headers", []byte(headers))
	if err != nil {
		t.Fatal(err)
	}
	data, err := siteconf.Marshal(siteconf.Merge(vc, rs, hs))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

const testVercelJSON = `{
  "cleanUrls": true,
  "redirects": [
    {"source": "/old", "destination": "/about"},
    {"source": "/blog/:slug", "destination": "/posts/:slug", "permanent": false}
  ],
  "rewrites": [
    {"source": "/app/:path*", "destination": "/app.html"},
    {"source": "/peek", "destination": "/.minivercel/site.json"},
    {"source": "/x/:rest*", "destination": "/docs/:rest*"}
  ],
  "headers": [
    {"source": "/(.*)", "headers": [{"key": "X-Frame-Options", "value": "DENY"}]},
    {"source": "/about", "headers": [{"key": "Cache-Control", "value": "public, max-age=600"}]}
  ]
}`

const testRedirects = `/gone/*    /404.html   404
/shadowed  /app.html   200
/forced    /app.html   200!
/shop/:id  /about?item=:id 302
`

const testHeaders = `/docs/*
  X-Robots-Tag: noindex
`

func configuredSite() map[string]string {
	files := map[string]string{
		"index.html":          "<h1>home</h1>",
		"about.html":          "<h1>about</h1>",
		"app.html":            "<h1>app</h1>",
		"shadowed.html":       "<h1>shadowed file</h1>",
		"forced.html":         "<h1>forced file</h1>",
		"docs/index.html":     "<h1>docs</h1>",
		"docs/page.html":      "<h1>docs page</h1>",
		"404.html":            "<h1>custom missing</h1>",
		"vercel.json":         testVercelJSON,
		"_redirects":          testRedirects,
		"_headers":            testHeaders,
		".minivercel/x.txt":   "platform",
		"secret/vercel.json":  "nested, ordinary file",
		"secret/_redirects":   "nested, ordinary file",
		".minivercel/funcs/a": "function",
	}
	return files
}

func TestSiteConfStatic(t *testing.T) {
	t.Parallel()
	files := configuredSite()
	files[siteConfFile] = compiledSiteJSON(t, testVercelJSON, testRedirects, testHeaders)
	s := newTestStatic(t, files, false)
	for _, tc := range []struct {
		target   string
		code     int
		location string
		body     string
		headers  map[string]string
	}{
		{target: "/old", code: 308, location: "/about"},
		{target: "/old?ref=mail", code: 308, location: "/about?ref=mail"},
		{target: "/blog/hello", code: 307, location: "/posts/hello"},
		{target: "/about.html", code: 308, location: "/about"},
		{target: "/index.html", code: 308, location: "/"},
		{target: "/about", code: 200, body: "<h1>about</h1>", headers: map[string]string{"Cache-Control": "public, max-age=600", "X-Frame-Options": "DENY"}},
		{target: "/app/some/client/route", code: 200, body: "<h1>app</h1>"},
		{target: "/shop/42", code: 302, location: "/about?item=42"},
		{target: "/gone/old-page", code: 404, body: "<h1>custom missing</h1>", headers: map[string]string{"X-Frame-Options": "DENY"}},
		{target: "/shadowed", code: 200, body: "<h1>shadowed file</h1>"},
		{target: "/forced", code: 200, body: "<h1>app</h1>"},
		{target: "/docs/page", code: 200, body: "<h1>docs page</h1>", headers: map[string]string{"X-Robots-Tag": "noindex", "X-Frame-Options": "DENY"}},
		{target: "/nope", code: 404, body: "<h1>custom missing</h1>", headers: map[string]string{"X-Frame-Options": "DENY"}},
		// The configuration is never served, not even through a rewrite.
		{target: "/vercel.json", code: 404, body: "<h1>custom missing</h1>"},
		{target: "/_redirects", code: 404, body: "<h1>custom missing</h1>"},
		{target: "/_headers", code: 404, body: "<h1>custom missing</h1>"},
		{target: "/.minivercel/site.json", code: 404, body: "<h1>custom missing</h1>"},
		{target: "/.minivercel/", code: 404},
		{target: "/docs/../.minivercel/x.txt", code: 308, location: "/.minivercel/x.txt"},
		{target: "/%2eminivercel/x.txt", code: 404},
		{target: "/peek", code: 404, body: "<h1>custom missing</h1>"},
		// Only the root's files are configuration.
		{target: "/secret/vercel.json", code: 200, body: "nested, ordinary file"},
		// Encoded dots and slashes cannot climb out of the site: the
		// decoded path is cleaned first.
		{target: "/x/..%2f..%2f..%2fetc%2fpasswd", code: 308, location: "/etc/passwd"},
		{target: "/x/page", code: 200, body: "<h1>docs page</h1>"},
		// Paths that the file handler would clean are sent to the clean
		// path first, so no rule or header rule is bypassed.
		{target: "//about", code: 308, location: "/about"},
		{target: "/./about?x=1", code: 308, location: "/about?x=1"},
		{target: "/docs/../about", code: 308, location: "/about"},
		{target: "//docs//page/", code: 308, location: "/docs/page/"},
	} {
		t.Run(tc.target, func(t *testing.T) {
			w := do(s, "GET", tc.target, nil)
			if w.Code != tc.code {
				t.Fatalf("GET %s = %d, want %d (body %q)", tc.target, w.Code, tc.code, w.Body.String())
			}
			if got := w.Header().Get("Location"); got != tc.location {
				t.Errorf("Location %q, want %q", got, tc.location)
			}
			if tc.body != "" && w.Body.String() != tc.body {
				t.Errorf("body %q, want %q", w.Body.String(), tc.body)
			}
			for k, v := range tc.headers {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
		})
	}
	// A status rewrite is not turned into 304 by a conditional request.
	w := do(s, "GET", "/gone/x", map[string]string{"If-None-Match": "*"})
	if w.Code != 404 || w.Body.String() != "<h1>custom missing</h1>" {
		t.Errorf("conditional GET of a 404 rewrite = %d %q", w.Code, w.Body.String())
	}
}

// TestSiteConfOldArtifact: a build made before routing files were compiled
// still never serves them.
func TestSiteConfOldArtifact(t *testing.T) {
	t.Parallel()
	s := newTestStatic(t, configuredSite(), false)
	for _, p := range []string{"/vercel.json", "/_redirects", "/_headers", "/.minivercel/x.txt", "/.minivercel/funcs/a"} {
		if w := do(s, "GET", p, nil); w.Code != 404 {
			t.Errorf("GET %s = %d, want 404", p, w.Code)
		}
	}
	if w := do(s, "GET", "/about", nil); w.Code != 200 {
		t.Errorf("GET /about = %d", w.Code)
	}
}

func TestSiteConfTrailingSlash(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		slash        bool
		target       string
		code         int
		location     string
		body         string
		cleanAndMore bool
	}{
		{slash: false, target: "/docs/", code: 308, location: "/docs"},
		// Without the slash the directory's index is served, not redirected
		// back to /docs/ (which would loop).
		{slash: false, target: "/docs", code: 200, body: "<h1>docs</h1>"},
		{slash: false, target: "/about", code: 200, body: "<h1>about</h1>"},
		{slash: true, target: "/about", code: 308, location: "/about/"},
		{slash: true, target: "/about/", code: 200, body: "<h1>about</h1>"},
		{slash: true, target: "/docs/", code: 200, body: "<h1>docs</h1>"},
		{slash: true, target: "/app.html", code: 200, body: "<h1>app</h1>"},
	} {
		t.Run(fmt.Sprintf("%v%s", tc.slash, tc.target), func(t *testing.T) {
			files := configuredSite()
			files[siteConfFile] = compiledSiteJSON(t, fmt.Sprintf(`{"trailingSlash": %v}`, tc.slash), "", "")
			s := newTestStatic(t, files, false)
			w := do(s, "GET", tc.target, nil)
			if w.Code != tc.code || w.Header().Get("Location") != tc.location || tc.body != "" && w.Body.String() != tc.body {
				t.Errorf("GET %s = %d %q %q, want %d %q %q", tc.target, w.Code, w.Header().Get("Location"), w.Body.String(), tc.code, tc.location, tc.body)
			}
		})
	}
}

// TestSiteConfInFront: the rules wrap any handler (an app, or functions
// behind the site): a rewrite reaches it with the new path and query, and
// headers are set over the handler's own.
func TestSiteConfInFront(t *testing.T) {
	t.Parallel()
	data := compiledSiteJSON(t, `{
  "rewrites": [{"source": "/hello/:name", "destination": "/api/greet?who=:name"}],
  "redirects": [{"source": "/home", "destination": "/", "statusCode": 301}],
  "headers": [{"source": "/:path*", "headers": [{"key": "Cache-Control", "value": "no-store"}, {"key": "X-Site", "value": "yes"}]}]
}`, "", "")
	site, err := siteconf.Load([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fmt.Fprintf(w, "%s?%s", r.URL.Path, r.URL.RawQuery)
	})
	h := newSiteHandler(site, app, nil)
	w := do(h, "GET", "/hello/ada?lang=en", nil)
	if w.Code != 200 || w.Body.String() != "/api/greet?who=ada&lang=en" {
		t.Errorf("rewrite: %d %q", w.Code, w.Body.String())
	}
	if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("X-Site") != "yes" {
		t.Errorf("headers: %v", w.Header())
	}
	w = do(h, "POST", "/home", nil)
	if w.Code != 301 || w.Header().Get("Location") != "/" || w.Header().Get("X-Site") != "yes" {
		t.Errorf("redirect: %d %v", w.Code, w.Header())
	}
	// Config files are the app's business: only static sites hide them.
	if w := do(h, "GET", "/vercel.json", nil); w.Code != 200 || !strings.HasPrefix(w.Body.String(), "/vercel.json") {
		t.Errorf("app /vercel.json: %d %q", w.Code, w.Body.String())
	}
}

func TestSiteConfCorruptFails(t *testing.T) {
	t.Parallel()
	files := configuredSite()
	files[siteConfFile] = `{"version": 1, "rules": [{"origin": "_redirects:1", "syntax": "netlify", "source": "/a", "destination": "/b", "status": 999}]}`
	if _, err := NewStatic(writeTree(t, files), false); err == nil || !strings.Contains(err.Error(), "_redirects:1: status 999") {
		t.Fatalf("got %v", err)
	}
}

// TestSiteConfFIFOFails: an app that replaced its tree's site.json with a
// FIFO cannot hang the edge's next start of it: loading fails at once.
func TestSiteConfFIFOFails(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{"index.html": "home"})
	if err := os.MkdirAll(filepath.Join(dir, reservedDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, siteConfFile), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := loadSiteConfDir(dir); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("a FIFO as site.json: %v, want refused", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("loading a FIFO site.json hangs")
	}
}

// TestSiteConfServerApp: a real Node app's build with routing rules gets
// them in front of it: the redirect never reaches the app, the rewrite
// reaches it with the new path, and headers are set on its responses.
func TestSiteConfServerApp(t *testing.T) {
	t.Parallel()
	e, hs := newAppEdge(t, &logSink{})
	files := map[string]string{
		"server.js": fmt.Sprintf(serverJS, "v1"),
		siteConfFile: compiledSiteJSON(t, `{
  "redirects": [{"source": "/old", "destination": "/", "permanent": false}],
  "rewrites": [{"source": "/broken", "destination": "/fail"}],
  "headers": [{"source": "/:path*", "headers": [{"key": "X-Site", "value": "rules"}]}]
}`, "", ""),
	}
	site := e.site("rules-app", 1, files)
	site.Start, site.DeploymentID, site.Health = "node server.js", 1, patientHealth
	if err := e.srv.Activate(context.Background(), site, nil); err != nil {
		t.Fatal(err)
	}
	noFollow := hs.Client()
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp := send(t, noFollow, hs.URL+"/old", "rules-app.localhost", nil)
	if resp.StatusCode != 307 || resp.Header.Get("Location") != "/" || resp.Header.Get("X-Site") != "rules" {
		t.Errorf("GET /old = %d %v", resp.StatusCode, resp.Header)
	}
	resp = send(t, noFollow, hs.URL+"/broken", "rules-app.localhost", nil)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 500 || string(body) != "no" || resp.Header.Get("X-Site") != "rules" {
		t.Errorf("GET /broken = %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if code, body, _ := httpGet(t, hs, "rules-app.localhost", "/"); code != 200 || body != "v1" {
		t.Errorf("GET / = %d %q", code, body)
	}
}

// TestSiteConfCannotLiftPreviewSandbox is the regression test for header
// rules on the path form of previews, which shares the panel's origin: a
// site's Content-Security-Policy is added to the sandbox, never replaces it,
// and a site's cookies are still dropped there.
func TestSiteConfCannotLiftPreviewSandbox(t *testing.T) {
	t.Parallel()
	e := newPreviewEdge(t, RuntimeConfig{}, nil)
	st := e.site("evil", 1, map[string]string{
		"index.html": "<script>fetch('/api/projects')</script>",
		siteConfFile: compiledSiteJSON(t, "", "", "/*\n  Content-Security-Policy: default-src *\n  Set-Cookie: session=planted; Path=/\n"),
	})
	e.lookup.add(st, "a")
	resp, _, err := e.do(context.Background(), "localhost", "/preview/1/")
	if err != nil {
		t.Fatal(err)
	}
	csp := resp.Header.Values("Content-Security-Policy")
	if len(csp) != 2 || !strings.HasPrefix(csp[0], "sandbox") || csp[1] != "default-src *" {
		t.Errorf("Content-Security-Policy %q, want the sandbox and the site's own", csp)
	}
	if c := resp.Header.Values("Set-Cookie"); len(c) != 0 {
		t.Errorf("the path form set cookies %q on the panel's origin", c)
	}
	// On its own host the site's headers apply as written.
	resp, _, _ = e.do(context.Background(), buildHost(st), "/")
	if csp := resp.Header.Values("Content-Security-Policy"); len(csp) != 1 || csp[0] != "default-src *" {
		t.Errorf("build host CSP %q", csp)
	}
}
