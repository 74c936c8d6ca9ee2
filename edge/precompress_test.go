package edge

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
)

func gunzip(t *testing.T, b []byte) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func unbrotli(t *testing.T, b []byte) string {
	t.Helper()
	out, err := io.ReadAll(brotli.NewReader(bytes.NewReader(b)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func TestPrecompressAtActivation(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, siteFiles())
	if _, err := NewStatic(dir, false); err != nil {
		t.Fatal(err)
	}
	side := dir + precompressSuffix
	for name, want := range map[string]bool{
		"assets/app.3f2a9c1b.js.br": true,
		"assets/app.3f2a9c1b.js.gz": true,
		"style.css.br":              false, // under 1 KiB
		"big.bin.gz":                false, // not text
	} {
		if got := exists(filepath.Join(side, name)); got != want {
			t.Errorf("sidecar has %s: %v, want %v", name, got, want)
		}
	}
	if exists(filepath.Join(dir, "assets/app.3f2a9c1b.js.br")) {
		t.Errorf("variants written into the build's own tree")
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), ".*.tmp-*")); len(left) > 0 {
		t.Errorf("temporary sidecars left: %v", left)
	}
}

func TestPrecompressedServing(t *testing.T) {
	t.Parallel()
	s := newTestStatic(t, siteFiles(), false)
	p := "/assets/app.3f2a9c1b.js"
	cases := []struct {
		accept, enc string
	}{
		{"", ""},
		{"br, gzip", "br"},
		{"gzip, br", "br"},
		{"gzip, deflate, br, zstd", "br"},
		{"gzip", "gzip"},
		{"br;q=0.5, gzip", "gzip"},
		{"br;q=0, gzip;q=0.1", "gzip"},
		{"br;q=0, gzip;q=0", ""},
		{"*", "br"},
		{"*;q=0.5, br;q=0.2", "gzip"},
		{"identity", ""},
		{"deflate", ""},
		{"BR ; q=1.0", "br"},
		{"x-gzip", "gzip"},
		{"br;q=abc, gzip", "gzip"},
	}
	etags := map[string]string{}
	for _, tc := range cases {
		t.Run(tc.accept, func(t *testing.T) {
			w := do(s, "GET", p, map[string]string{"Accept-Encoding": tc.accept})
			h := w.Header()
			if w.Code != 200 || h.Get("Content-Encoding") != tc.enc {
				t.Fatalf("Accept-Encoding %q: %d, Content-Encoding %q, want %q", tc.accept, w.Code, h.Get("Content-Encoding"), tc.enc)
			}
			if h.Get("Vary") != "Accept-Encoding" || h.Get("Content-Type") != "text/javascript; charset=utf-8" || h.Get("Cache-Control") != cacheImmutable {
				t.Errorf("headers: %v", h)
			}
			if h.Get("Content-Length") != "" && h.Get("Content-Length") != strconv.Itoa(w.Body.Len()) {
				t.Errorf("Content-Length %s, body %d", h.Get("Content-Length"), w.Body.Len())
			}
			body := w.Body.String()
			switch tc.enc {
			case "br":
				body = unbrotli(t, w.Body.Bytes())
			case "gzip":
				body = gunzip(t, w.Body.Bytes())
			}
			if body != bigJS {
				t.Errorf("decoded body differs")
			}
			etag := h.Get("ETag")
			want := map[string]string{"br": `-br"`, "gzip": `-gz"`}[tc.enc]
			if want != "" && !strings.HasSuffix(etag, want) {
				t.Errorf("ETag %s does not end in %s", etag, want)
			}
			// The same representation is revalidated by its own tag.
			if w := do(s, "GET", p, map[string]string{"Accept-Encoding": tc.accept, "If-None-Match": etag}); w.Code != 304 || w.Body.Len() != 0 {
				t.Errorf("If-None-Match %s = %d", etag, w.Code)
			}
		})
		etags[tc.enc] = do(s, "GET", p, map[string]string{"Accept-Encoding": tc.accept}).Header().Get("ETag")
	}
	if len(etags) != 3 || etags[""] == etags["br"] || etags[""] == etags["gzip"] || etags["br"] == etags["gzip"] {
		t.Errorf("ETags are not distinct per encoding: %v", etags)
	}
	// A tag of another encoding does not revalidate this one.
	if w := do(s, "GET", p, map[string]string{"Accept-Encoding": "br", "If-None-Match": etags["gzip"]}); w.Code != 200 {
		t.Errorf("gzip ETag revalidated the br response: %d", w.Code)
	}
	h := do(s, "HEAD", p, map[string]string{"Accept-Encoding": "br"})
	if h.Body.Len() != 0 || h.Header().Get("Content-Encoding") != "br" || h.Header().Get("Content-Length") == "" {
		t.Errorf("HEAD br: body %d, %v", h.Body.Len(), h.Header())
	}
}

// TestPrecompressedRange: a Range request is answered uncompressed, from the
// file's own bytes, whatever the client accepts.
func TestPrecompressedRange(t *testing.T) {
	t.Parallel()
	s := newTestStatic(t, siteFiles(), false)
	w := do(s, "GET", "/assets/app.3f2a9c1b.js", map[string]string{"Accept-Encoding": "br, gzip", "Range": "bytes=10-19"})
	if w.Code != 206 || w.Header().Get("Content-Encoding") != "" || w.Body.String() != bigJS[10:20] {
		t.Errorf("Range = %d %q %q", w.Code, w.Header().Get("Content-Encoding"), w.Body.String())
	}
	if strings.HasSuffix(w.Header().Get("ETag"), `-br"`) {
		t.Errorf("Range answer carries the br ETag")
	}
}

// TestPrecompressedBuildOwnVariants: a build's own x.js.br is served as the
// br variant (and not made again), and asked for by name it is a file of its
// own type, not JavaScript with a Content-Encoding.
func TestPrecompressedBuildOwnVariants(t *testing.T) {
	t.Parallel()
	var own bytes.Buffer
	encBrotli.compress(&own, []byte(bigJS))
	files := map[string]string{"x.js": bigJS, "x.js.br": own.String()}
	dir := writeTree(t, files)
	s, err := NewStatic(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(dir+precompressSuffix, "x.js.br")) || !exists(filepath.Join(dir+precompressSuffix, "x.js.gz")) {
		t.Errorf("sidecar should hold x.js.gz only")
	}
	w := do(s, "GET", "/x.js", map[string]string{"Accept-Encoding": "br"})
	if w.Header().Get("Content-Encoding") != "br" || w.Body.String() != own.String() {
		t.Errorf("the build's own .br was not served: %v", w.Header())
	}
	direct := do(s, "GET", "/x.js.br", map[string]string{"Accept-Encoding": "br, gzip"})
	if direct.Code != 200 || direct.Header().Get("Content-Encoding") != "" || direct.Header().Get("Content-Type") != "application/octet-stream" || direct.Body.String() != own.String() {
		t.Errorf("GET /x.js.br = %d %v", direct.Code, direct.Header())
	}
	gzFile := writeTree(t, map[string]string{"a.css": bigJS, "a.css.gz": "not really gzip"})
	s2, err := NewStatic(gzFile, false)
	if err != nil {
		t.Fatal(err)
	}
	if w := do(s2, "GET", "/a.css", map[string]string{"Accept-Encoding": "gzip"}); w.Body.String() != "not really gzip" {
		t.Errorf("the build's own .gz was not served")
	}
	if w := do(s2, "GET", "/a.css.gz", map[string]string{"Accept-Encoding": "gzip"}); w.Header().Get("Content-Type") != "application/gzip" || w.Header().Get("Content-Encoding") != "" {
		t.Errorf("GET /a.css.gz: %v", w.Header())
	}
}

// TestPrecompressBounds: a build over the file bound gets an empty sidecar
// and is served uncompressed, correctly; past the byte bound files stay
// uncompressed; a sidecar that exists is trusted and not made again.
func TestPrecompressBounds(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.DiscardHandler)
	files := map[string]string{"a.js": bigJS, "b.js": bigJS, "c.js": bigJS}

	dir := writeTree(t, files)
	side := precompress(context.Background(), dir, precompressLimits{maxFiles: 2, maxBytes: 1 << 30, timeout: time.Minute}, log)
	if side == "" {
		t.Fatal("no sidecar")
	}
	// Over the file bound, the first maxFiles are compressed, not none.
	if ents, _ := os.ReadDir(side); len(ents) != 4 || !exists(filepath.Join(side, "a.js.br")) || exists(filepath.Join(side, "c.js.br")) {
		t.Errorf("a build over a two-file bound: sidecar %v, want a.js's and b.js's", ents)
	}
	s, err := newStatic(dir, side, false, &memBudget{limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	w := do(s, "GET", "/c.js", map[string]string{"Accept-Encoding": "br, gzip"})
	if w.Code != 200 || w.Header().Get("Content-Encoding") != "" || w.Header().Get("Vary") != "" || w.Body.String() != bigJS {
		t.Errorf("past the bound: %d %v", w.Code, w.Header())
	}

	dir2 := writeTree(t, files)
	side2 := precompress(context.Background(), dir2, precompressLimits{maxFiles: 10, maxBytes: int64(2 * len(bigJS)), timeout: time.Minute}, log)
	n := 0
	for _, f := range []string{"a.js", "b.js", "c.js"} {
		if exists(filepath.Join(side2, f+".br")) {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d files compressed under a two-file byte bound", n)
	}
	// Past the deadline nothing more is compressed, and what is done is
	// published.
	dir3 := writeTree(t, files)
	side3 := precompress(context.Background(), dir3, precompressLimits{maxFiles: 10, maxBytes: 1 << 30, timeout: -1}, log)
	// ("" when another test's build held the semaphore past the deadline.)
	if ents, err := os.ReadDir(side3); side3 != "" && (err != nil || len(ents) != 0) {
		t.Errorf("work past the deadline: %v %v", ents, err)
	}
	// Trusted once made: a second call finds it and does no work.
	os.Remove(filepath.Join(side2, "a.js.br"))
	if again := precompress(context.Background(), dir2, defaultPrecompress, log); again != side2 || exists(filepath.Join(side2, "a.js.br")) {
		t.Errorf("an existing sidecar was made again")
	}
}

// TestPrecompressVariantNameCollision: a build with a.js and a directory
// a.js.br/ (or a.js.gz/) still gets a sidecar, with a.js left out and the
// other files compressed, so the work is not redone at every acquire.
func TestPrecompressVariantNameCollision(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.DiscardHandler)
	for _, ext := range []string{".br", ".gz"} {
		dir := writeTree(t, map[string]string{"a.js": bigJS, "a.js" + ext + "/x.txt": "x", "b.js": bigJS})
		side := precompress(context.Background(), dir, precompressLimits{maxFiles: 10, maxBytes: 1 << 30, timeout: time.Minute}, log)
		if side == "" {
			t.Fatalf("%s: no sidecar", ext)
		}
		if exists(filepath.Join(side, "a.js.br")) || exists(filepath.Join(side, "a.js.gz")) || !exists(filepath.Join(side, "b.js.br")) {
			t.Errorf("%s: a.js compressed or b.js not", ext)
		}
	}
}

// TestPrecompressFileBoundCountsTextOnly: only precompressible files count
// against maxFiles, and past it the first maxFiles are compressed.
func TestPrecompressFileBoundCountsTextOnly(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.DiscardHandler)
	files := map[string]string{"a.js": bigJS, "b.js": bigJS, "c.js": bigJS}
	for i := range 5 {
		files["img"+strconv.Itoa(i)+".png"] = "png"
	}
	dir := writeTree(t, files)
	side := precompress(context.Background(), dir, precompressLimits{maxFiles: 3, maxBytes: 1 << 30, timeout: time.Minute}, log)
	for _, f := range []string{"a.js", "b.js", "c.js"} {
		if !exists(filepath.Join(side, f+".br")) {
			t.Errorf("%s not compressed: images counted against the bound", f)
		}
	}
	dir2 := writeTree(t, files)
	side2 := precompress(context.Background(), dir2, precompressLimits{maxFiles: 1, maxBytes: 1 << 30, timeout: time.Minute}, log)
	if ents, _ := os.ReadDir(side2); len(ents) != 2 {
		t.Errorf("over a one-file bound: %v, want one file's two variants", ents)
	}
}

// TestPrecompressOneBuildAtATime: two builds started together never
// precompress at once; the second waits for the first, then runs.
func TestPrecompressOneBuildAtATime(t *testing.T) {
	// Not parallel: it sets precompressHook, process-wide.
	log := slog.New(slog.DiscardHandler)
	var active, most atomic.Int64
	entered := make(chan struct{}, 2)
	release := make(chan struct{})
	precompressHook = func() {
		n := active.Add(1)
		if n > most.Load() {
			most.Store(n)
		}
		entered <- struct{}{}
		<-release
		active.Add(-1)
	}
	defer func() { precompressHook = nil }()
	lim := precompressLimits{maxFiles: 10, maxBytes: 1 << 30, timeout: time.Hour}
	dirs := []string{writeTree(t, map[string]string{"a.js": bigJS}), writeTree(t, map[string]string{"b.js": bigJS})}
	sides := make([]string, 2)
	var wg sync.WaitGroup
	for i, dir := range dirs {
		wg.Go(func() { sides[i] = precompress(context.Background(), dir, lim, log) })
	}
	<-entered
	// The other build is waiting for the semaphore, or (a bug) running.
	for precompressWaiting.Load() == 0 && active.Load() < 2 {
		runtime.Gosched()
	}
	close(release)
	<-entered
	wg.Wait()
	if most.Load() != 1 {
		t.Errorf("%d builds precompressed at once, want 1", most.Load())
	}
	for i, side := range sides {
		if side == "" {
			t.Errorf("build %d got no sidecar", i)
		}
	}
}
