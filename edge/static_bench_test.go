package edge

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark
// measures the handler and not a recorder.
type discardWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// js100KB is about 100 KB of JavaScript that compresses the way a bundle
// does (repetitive, but not one repeated line).
var js100KB = func() string {
	var b strings.Builder
	for i := 0; b.Len() < 100<<10; i++ {
		fmt.Fprintf(&b, "export function handler%d(e){return e.target.value*%d+\"item-%d\"}\n", i, i%97, i%1013)
	}
	return b.String()
}()

// BenchmarkStaticCompressed100KB serves a 100 KB hashed JS asset to a
// browser that accepts brotli and gzip; SetBytes counts the asset's
// uncompressed size.
func BenchmarkStaticCompressed100KB(b *testing.B) {
	s, err := NewStatic(writeTree(b, map[string]string{"assets/index-DiwrgTda.js": js100KB}), false)
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/assets/index-DiwrgTda.js", nil)
	r.Header.Set("Accept-Encoding", "br, gzip")
	w := &discardWriter{h: http.Header{}}
	s.ServeHTTP(w, r) // warm the file cache
	if w.code != 200 || w.h.Get("Content-Encoding") == "" {
		b.Fatalf("got %d %q", w.code, w.h.Get("Content-Encoding"))
	}
	b.Logf("%s: %d bytes of %d", w.h.Get("Content-Encoding"), w.n, len(js100KB))
	b.SetBytes(int64(len(js100KB)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		clear(w.h)
		w.n = 0
		s.ServeHTTP(w, r)
	}
}
