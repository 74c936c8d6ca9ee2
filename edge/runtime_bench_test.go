package edge

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// trivialNode answers "ok" to everything: the app side of the proxy figures.
const trivialNode = `require('http').createServer((q, r) => r.end('ok')).listen(process.env.PORT, process.env.HOST);`

func benchEdge(b *testing.B) (*Server, string) {
	if _, err := exec.LookPath("node"); err != nil {
		b.Skip("node is not installed")
	}
	tmp := b.TempDir()
	srv, err := New(Config{DeploymentsDir: filepath.Join(tmp, "d"), Logger: slog.New(slog.DiscardHandler),
		Runtime: RuntimeConfig{StopTimeout: 2 * time.Second}}, &fakeLookup{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv, tmp
}

func nodeSite(b *testing.B, tmp string, id int64, body string) Site {
	arch, sum := writeArchive(b, tmp, []entry{file("server.js", body)})
	return Site{Project: "bench", BuildID: id, Slug: fmt.Sprintf("benchslug%02d", id), ArtifactPath: arch, SHA256: sum,
		Start: "node server.js", Health: HealthCheck{Interval: time.Second}}
}

// benchOK is benchHTTP for an app answering "ok".
func benchOK(b *testing.B, handler http.Handler, host string) {
	ts := httptest.NewServer(handler)
	defer ts.Close()
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, _ := http.NewRequest("GET", ts.URL+"/", nil)
		req.Host = host
		for pb.Next() {
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkProxyToNode is requests per second to a trivial Node server
// through the edge; BenchmarkNodeDirect is the same Node server hit without
// the edge, in the same run.
func BenchmarkProxyToNode(b *testing.B) {
	srv, tmp := benchEdge(b)
	if err := srv.Activate(context.Background(), nodeSite(b, tmp, 1, trivialNode), nil); err != nil {
		b.Fatal(err)
	}
	benchOK(b, srv.Handler(), "bench.localhost")
}

func BenchmarkNodeDirect(b *testing.B) {
	srv, tmp := benchEdge(b)
	if err := srv.Activate(context.Background(), nodeSite(b, tmp, 1, trivialNode), nil); err != nil {
		b.Fatal(err)
	}
	port := srv.Port("bench")
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/"
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkSwitchesUnderLoad runs 20 deploy/rollback switches between two
// versions of a Node app while 8 clients send requests, and reports the
// failed requests (goal: 0) and the requests served.
func BenchmarkSwitchesUnderLoad(b *testing.B) {
	srv, tmp := benchEdge(b)
	v1 := nodeSite(b, tmp, 1, `require('http').createServer((q, r) => r.end('v1')).listen(process.env.PORT, process.env.HOST);`)
	v2 := nodeSite(b, tmp, 2, `require('http').createServer((q, r) => r.end('v2')).listen(process.env.PORT, process.env.HOST);`)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	var failed, served atomic.Int64
	for i := 0; i < b.N; i++ {
		if err := srv.Activate(context.Background(), v1, nil); err != nil {
			b.Fatal(err)
		}
		var stop atomic.Bool
		var wg sync.WaitGroup
		tr := &http.Transport{MaxIdleConnsPerHost: 64}
		for w := 0; w < 8; w++ {
			wg.Go(func() {
				for !stop.Load() {
					req, _ := http.NewRequest("GET", ts.URL+"/", nil)
					req.Host = "bench.localhost"
					resp, err := tr.RoundTrip(req)
					if err != nil {
						failed.Add(1)
						continue
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || (string(body) != "v1" && string(body) != "v2") {
						failed.Add(1)
						continue
					}
					served.Add(1)
				}
			})
		}
		for s := 0; s < 20; s++ {
			next := v2
			if s%2 == 1 {
				next = v1
			}
			if err := srv.Activate(context.Background(), next, nil); err != nil {
				b.Fatal(err)
			}
		}
		stop.Store(true)
		wg.Wait()
		tr.CloseIdleConnections()
	}
	b.ReportMetric(float64(failed.Load())/float64(b.N), "failed/20-switches")
	b.ReportMetric(float64(served.Load())/float64(b.N), "served/20-switches")
}

// BenchmarkActivateServerApp measures a server app's activation (extraction
// already done, as after a build) and how much of it is the platform's own
// work: the total minus the app's start time (spawn to first accepted
// connection).
func BenchmarkActivateServerApp(b *testing.B) {
	srv, tmp := benchEdge(b)
	sites := []Site{nodeSite(b, tmp, 1, trivialNode), nodeSite(b, tmp, 2, trivialNode)}
	for _, s := range sites { // extract both once
		if err := srv.Activate(context.Background(), s, nil); err != nil {
			b.Fatal(err)
		}
	}
	var total, appStart time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var spawned, healthy time.Time
		start := time.Now()
		err := srv.Activate(context.Background(), sites[i%2], func(line string) {
			switch {
			case spawned.IsZero():
				spawned = time.Now()
			case len(line) > 7 && line[:7] == "healthy":
				healthy = time.Now()
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		appStart += healthy.Sub(spawned)
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/activation")
	b.ReportMetric(float64((total-appStart).Microseconds())/1000/float64(b.N), "ms/platform-overhead")
}
