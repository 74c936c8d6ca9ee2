package edge

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// page2KB is a 2 KB HTML page, the size the field notes measured with wrk.
var page2KB = "<!doctype html><title>bench</title>" + strings.Repeat("<p>lorem ipsum dolor sit</p>\n", 69)

// benchHTTP drives handler over real loopback HTTP from parallel clients
// and reports requests per second.
func benchHTTP(b *testing.B, handler http.Handler, host string) {
	ts := httptest.NewServer(handler)
	defer ts.Close()
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // a redirect would count two requests as one
	}}
	// "/" on both: http.FileServer redirects /index.html to ./
	url := ts.URL + "/"
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
			if resp.StatusCode != 200 || n != int64(len(page2KB)) {
				b.Errorf("got %d, %d bytes", resp.StatusCode, n)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

func BenchmarkEdgeStatic2KB(b *testing.B) {
	tmp := b.TempDir()
	arch, sum := writeArchive(b, tmp, []entry{file("index.html", page2KB)})
	srv, err := New(Config{DeploymentsDir: filepath.Join(tmp, "d"), Logger: slog.New(slog.DiscardHandler)}, &fakeLookup{})
	if err != nil {
		b.Fatal(err)
	}
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
