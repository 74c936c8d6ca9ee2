package edge

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// page2KB is a 2 KB HTML page, the size the field notes measured with wrk.
var page2KB = "<!doctype html><title>bench</title>" + strings.Repeat("<p>lorem ipsum dolor sit</p>\n", 69)

// benchLoad sends GET url with the Host header host from parallel clients
// over kept-alive connections, checks every answer with check (given the
// status and the body's length), and reports requests per second.
func benchLoad(b *testing.B, url, host string, check func(status int, n int64) error) {
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // a redirect would count two requests as one
	}}
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Host = host
		for pb.Next() {
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err := check(resp.StatusCode, n); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// benchHTTP is benchLoad over real loopback HTTP to handler, for the 2 KB
// page.
func benchHTTP(b *testing.B, handler http.Handler, host string) {
	ts := httptest.NewServer(handler)
	defer ts.Close()
	// "/" on both: http.FileServer redirects /index.html to ./
	benchLoad(b, ts.URL+"/", host, func(status int, n int64) error {
		if status != 200 || n != int64(len(page2KB)) {
			return fmt.Errorf("got %d, %d bytes", status, n)
		}
		return nil
	})
}

func BenchmarkEdgeStatic2KB(b *testing.B) {
	tmp := b.TempDir()
	arch, sum := writeArchive(b, tmp, []entry{file("index.html", page2KB)})
	srv := benchServer(b, tmp, RuntimeConfig{})
	if err := srv.Activate(context.Background(), Site{Project: "bench", BuildID: 1, Slug: "benchslug01", ArtifactPath: arch, SHA256: sum}, nil); err != nil {
		b.Fatal(err)
	}
	benchHTTP(b, srv.Handler(), "bench.localhost")
}

func BenchmarkFileServer2KB(b *testing.B) {
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(page2KB), 0o644); err != nil {
		b.Fatal(err)
	}
	benchHTTP(b, http.FileServer(http.Dir(dir)), "localhost")
}
