package edge

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// writeTree creates files (name → content) under a new temp dir.
func writeTree(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var bigJS = strings.Repeat("console.log('hello, compressible world');\n", 200)

func siteFiles() map[string]string {
	return map[string]string{
		"index.html":               "<h1>home</h1>",
		"about.html":               "<h1>about</h1>",
		"docs/index.html":          "<h1>docs</h1>",
		"empty/.keep":              "",
		"assets/app.3f2a9c1b.js":   bigJS,
		"assets/index-BqK3x_9a.js": "x",
		"assets/app.js":            "y",
		"style.css":                "body{}",
		"data.json":                "{}",
		"logo.svg":                 "<svg/>",
		"mod.wasm":                 "\x00asm",
		"site.webmanifest":         "{}",
		"font.woff2":               "wOF2",
		"pic.avif":                 "....",
		"app.js.map":               "{}",
		"robots.txt":               "User-agent: *",
		"feed.xml":                 "<rss/>",
		"favicon.ico":              "\x00\x00\x01\x00",
		"mod.mjs":                  "export {}",
		"big.bin":                  strings.Repeat("\x00\x01\x02\x03", 4096),
	}
}

func newTestStatic(t *testing.T, files map[string]string, spa bool) *Static {
	t.Helper()
	s, err := NewStatic(writeTree(t, files), spa)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func do(h http.Handler, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestStaticContentTypes(t *testing.T) {
	t.Parallel()
	s := newTestStatic(t, siteFiles(), false)
	cases := map[string]string{
		"/":                 "text/html; charset=utf-8",
		"/style.css":        "text/css; charset=utf-8",
		"/assets/app.js":    "text/javascript; charset=utf-8",
		"/mod.mjs":          "text/javascript; charset=utf-8",
		"/data.json":        "application/json; charset=utf-8",
		"/logo.svg":         "image/svg+xml",
		"/mod.wasm":         "application/wasm",
		"/site.webmanifest": "application/manifest+json; charset=utf-8",
		"/font.woff2":       "font/woff2",
		"/pic.avif":         "image/avif",
		"/app.js.map":       "application/json; charset=utf-8",
		"/robots.txt":       "text/plain; charset=utf-8",
		"/feed.xml":         "text/xml; charset=utf-8",
		"/favicon.ico":      "image/x-icon",
	}
	for path, want := range cases {
		t.Run(path, func(t *testing.T) {
			w := do(s, "GET", path, nil)
			if w.Code != 200 || w.Header().Get("Content-Type") != want {
				t.Errorf("GET %s = %d %q, want 200 %q", path, w.Code, w.Header().Get("Content-Type"), want)
			}
			if w.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("missing nosniff")
			}
		})
	}
}

func TestStaticRouting(t *testing.T) {
	t.Parallel()
	files := siteFiles()
	files["404.html"] = "<h1>custom missing</h1>"
	withCustom404 := newTestStatic(t, files, false)
	plain := newTestStatic(t, siteFiles(), false)
	spa := newTestStatic(t, siteFiles(), true)
	cases := []struct {
		name     string
		h        http.Handler
		path     string
		code     int
		body     string // substring
		location string
	}{
		{"root index", plain, "/", 200, "home", ""},
		{"dir with slash", plain, "/docs/", 200, "docs", ""},
		{"dir without slash redirects", plain, "/docs?x=1", 301, "", "/docs/?x=1"},
		{"clean url", plain, "/about", 200, "about", ""},
		{"explicit html", plain, "/about.html", 200, "about", ""},
		{"dir without index", plain, "/empty/", 404, "404 Not Found", ""},
		{"missing default 404", plain, "/nope", 404, "404 Not Found", ""},
		{"missing custom 404", withCustom404, "/nope", 404, "custom missing", ""},
		{"spa fallback", spa, "/app/settings", 200, "home", ""},
		{"spa no fallback for files", spa, "/missing.js", 404, "404 Not Found", ""},
		{"no spa no fallback", plain, "/app/settings", 404, "404 Not Found", ""},
		{"traversal", plain, "/../../etc/passwd", 404, "404 Not Found", ""},
		{"encoded traversal", plain, "/%2e%2e/%2e%2e/etc/passwd", 404, "404 Not Found", ""},
		{"encoded dotdot root", plain, "/%2e%2e/", 200, "home", ""},
		{"dotdot inside", plain, "/docs/../about", 200, "about", ""},
		{"file with trailing slash", plain, "/about.html/", 404, "404 Not Found", ""},
		{"double slash redirect stays on host", plain, "//docs", 301, "", "/docs/"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := do(tc.h, "GET", tc.path, nil)
			if w.Code != tc.code {
				t.Fatalf("GET %s = %d, want %d (body %q)", tc.path, w.Code, tc.code, w.Body.String())
			}
			if !strings.Contains(w.Body.String(), tc.body) {
				t.Errorf("body %q does not contain %q", w.Body.String(), tc.body)
			}
			if got := w.Header().Get("Location"); got != tc.location {
				t.Errorf("Location = %q, want %q", got, tc.location)
			}
		})
	}
}

func TestStaticEscapingSymlinkRefused(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{"index.html": "x"})
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("secret"), 0o644)
	os.Symlink(secret, filepath.Join(dir, "leak.txt"))
	s, err := NewStatic(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if w := do(s, "GET", "/leak.txt", nil); w.Code != 404 || strings.Contains(w.Body.String(), "secret") {
		t.Errorf("symlink out of root served: %d %q", w.Code, w.Body.String())
	}
}

func TestStaticCacheControl(t *testing.T) {
	t.Parallel()
	s := newTestStatic(t, siteFiles(), false)
	for path, want := range map[string]string{
		"/assets/app.3f2a9c1b.js":   cacheImmutable,
		"/assets/index-BqK3x_9a.js": cacheImmutable,
		"/assets/app.js":            cacheRevalidate, // a hand-named file in assets/
		"/mod.mjs":                  cacheRevalidate,
		"/":                         cacheRevalidate,
		"/about":                    cacheRevalidate,
	} {
		if got := do(s, "GET", path, nil).Header().Get("Cache-Control"); got != want {
			t.Errorf("Cache-Control of %s = %q, want %q", path, got, want)
		}
	}
}

func TestStaticETagAndConditional(t *testing.T) {
	t.Parallel()
	s := newTestStatic(t, siteFiles(), false)
	w := do(s, "GET", "/about", nil)
	etag := w.Header().Get("ETag")
	if !strings.HasPrefix(etag, `"`) || len(etag) < 10 {
		t.Fatalf("ETag = %q, want a strong tag", etag)
	}
	if w2 := do(s, "GET", "/about.html", nil); w2.Header().Get("ETag") != etag {
		t.Errorf("same file, different ETag")
	}
	if w3 := do(s, "GET", "/", nil); w3.Header().Get("ETag") == etag {
		t.Errorf("different files, same ETag")
	}
	for _, inm := range []string{etag, `"x", ` + etag, "W/" + etag, "*"} {
		if w := do(s, "GET", "/about", map[string]string{"If-None-Match": inm}); w.Code != 304 || w.Body.Len() != 0 {
			t.Errorf("If-None-Match %s = %d, want 304", inm, w.Code)
		}
	}
	if w := do(s, "GET", "/about", map[string]string{"If-None-Match": `"other"`}); w.Code != 200 {
		t.Errorf("non-matching If-None-Match = %d", w.Code)
	}
}

func TestStaticGzip(t *testing.T) {
	t.Parallel()
	s := newTestStatic(t, siteFiles(), false)
	path := "/assets/app.3f2a9c1b.js"
	plain := do(s, "GET", path, nil)
	if plain.Header().Get("Content-Encoding") != "" || plain.Body.String() != bigJS {
		t.Fatalf("identity response wrong: %q", plain.Header().Get("Content-Encoding"))
	}
	if plain.Header().Get("Vary") != "Accept-Encoding" {
		t.Errorf("identity Vary = %q", plain.Header().Get("Vary"))
	}
	gz := do(s, "GET", path, map[string]string{"Accept-Encoding": "br;q=0.5, gzip"})
	if gz.Header().Get("Content-Encoding") != "gzip" || gz.Header().Get("Vary") != "Accept-Encoding" {
		t.Fatalf("gzip headers: %v", gz.Header())
	}
	if gz.Header().Get("ETag") == plain.Header().Get("ETag") {
		t.Errorf("gzip variant shares the identity ETag")
	}
	if gz.Header().Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Errorf("gzip Content-Type = %q", gz.Header().Get("Content-Type"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz.Body.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if body, _ := io.ReadAll(zr); string(body) != bigJS {
		t.Errorf("gunzipped body differs")
	}
	if gz.Body.Len() >= len(bigJS) {
		t.Errorf("gzip body not smaller")
	}
	if w := do(s, "GET", path, map[string]string{"Accept-Encoding": "gzip", "If-None-Match": gz.Header().Get("ETag")}); w.Code != 304 {
		t.Errorf("gzip If-None-Match = %d, want 304", w.Code)
	}
	if w := do(s, "GET", path, map[string]string{"Accept-Encoding": "gzip;q=0"}); w.Header().Get("Content-Encoding") != "" {
		t.Errorf("gzip;q=0 still compressed")
	}
	if w := do(s, "HEAD", path, map[string]string{"Accept-Encoding": "gzip"}); w.Body.Len() != 0 || w.Header().Get("Content-Length") != gz.Header().Get("Content-Length") {
		t.Errorf("gzip HEAD: body %d, length %q", w.Body.Len(), w.Header().Get("Content-Length"))
	}
	r := do(s, "GET", path, map[string]string{"Accept-Encoding": "gzip", "Range": "bytes=0-9"})
	if r.Code != 206 || r.Header().Get("Content-Encoding") != "" || r.Body.String() != bigJS[:10] {
		t.Errorf("Range with gzip accepted = %d %q %q", r.Code, r.Header().Get("Content-Encoding"), r.Body.String())
	}
	if w := do(s, "GET", "/style.css", map[string]string{"Accept-Encoding": "gzip"}); w.Header().Get("Content-Encoding") != "" {
		t.Errorf("tiny file compressed")
	}
	if w := do(s, "GET", "/big.bin", map[string]string{"Accept-Encoding": "gzip"}); w.Header().Get("Content-Encoding") != "" || w.Header().Get("Vary") != "" {
		t.Errorf("binary file compressed or varied")
	}
}

func TestStaticRangeAndHead(t *testing.T) {
	t.Parallel()
	s := newTestStatic(t, siteFiles(), false)
	w := do(s, "GET", "/big.bin", map[string]string{"Range": "bytes=4-7"})
	if w.Code != 206 || w.Body.String() != "\x00\x01\x02\x03" || w.Header().Get("Content-Range") != "bytes 4-7/16384" {
		t.Errorf("Range = %d %q %q", w.Code, w.Body.String(), w.Header().Get("Content-Range"))
	}
	h := do(s, "HEAD", "/about", nil)
	if h.Code != 200 || h.Body.Len() != 0 || h.Header().Get("Content-Length") != "14" {
		t.Errorf("HEAD = %d body %d length %q", h.Code, h.Body.Len(), h.Header().Get("Content-Length"))
	}
}

func TestStaticMethodNotAllowed(t *testing.T) {
	t.Parallel()
	s := newTestStatic(t, siteFiles(), false)
	for _, m := range []string{"POST", "PUT", "DELETE", "OPTIONS", "PATCH"} {
		w := do(s, m, "/", nil)
		if w.Code != 405 || w.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s = %d Allow %q", m, w.Code, w.Header().Get("Allow"))
		}
	}
}

func TestStaticCacheBudget(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{"a.html": strings.Repeat("a", 3000), "b.html": strings.Repeat("b", 3000)})
	s, err := newStatic(dir, precompress(context.Background(), dir, defaultPrecompress, slog.Default()), false, &memBudget{limit: 4000})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/a.html", "/b.html", "/a.html", "/b.html"} {
		if w := do(s, "GET", p, map[string]string{"Accept-Encoding": "gzip"}); w.Code != 200 {
			t.Fatalf("GET %s = %d", p, w.Code)
		}
	}
	if used := s.budget.used.Load(); used > 4000 {
		t.Errorf("cache uses %d bytes, budget 4000", used)
	}
	s.release()
	if used := s.budget.used.Load(); used != 0 {
		t.Errorf("after release the budget holds %d bytes", used)
	}
}

func TestStaticGzipLargeFileFromDisk(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("let x = 1; // padding that compresses well\n", 5000) // > inlineMax
	s := newTestStatic(t, map[string]string{"huge.js": big}, false)
	w := do(s, "GET", "/huge.js", map[string]string{"Accept-Encoding": "gzip"})
	if w.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("large js not compressed")
	}
	zr, err := gzip.NewReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(zr); string(got) != big {
		t.Errorf("gunzipped large file differs")
	}
	if w := do(s, "GET", "/huge.js", nil); w.Body.String() != big {
		t.Errorf("identity large file differs")
	}
}

// TestServeWhole304HeadersMatchServeContent: the fast path's 304 carries the
// same headers as http.ServeContent's for the same request (the ETag, no
// Last-Modified, Accept-Ranges or Content-Length), and its 200 the same too.
func TestServeWhole304HeadersMatchServeContent(t *testing.T) {
	mod := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	data := []byte("console.log('hi')\n")
	m := &fileMeta{
		name: "app.js", size: int64(len(data)), modTime: mod, data: data,
		etag: []string{`"abc"`}, ctype: []string{"text/javascript; charset=utf-8"},
		clen: []string{strconv.Itoa(len(data))}, lastMod: []string{mod.Format(http.TimeFormat)},
	}
	for _, hdr := range []map[string]string{
		{"If-None-Match": `"abc"`},
		{"If-Modified-Since": mod.Format(http.TimeFormat)},
		{},
	} {
		req := func() *http.Request {
			r := httptest.NewRequest("GET", "/app.js", nil)
			for k, v := range hdr {
				r.Header.Set(k, v)
			}
			return r
		}
		fast, slow := httptest.NewRecorder(), httptest.NewRecorder()
		for _, w := range []*httptest.ResponseRecorder{fast, slow} {
			w.Header()["Content-Type"] = m.ctype
			w.Header()["Etag"] = m.etag
		}
		serveWhole(fast, req(), m)
		http.ServeContent(slow, req(), "", mod, bytes.NewReader(data))
		if fast.Code != slow.Code || !reflect.DeepEqual(fast.Header(), slow.Header()) {
			t.Errorf("%v: serveWhole %d %v, ServeContent %d %v", hdr, fast.Code, fast.Header(), slow.Code, slow.Header())
		}
	}
}
