package edge

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// trivialNode answers "ok" to everything: the app side of the proxy figures.
const trivialNode = `require('http').createServer((q, r) => r.end('ok')).listen(process.env.PORT, process.env.HOST);`

// benchServer is an edge keeping its deployments under tmp, shut down when
// the benchmark ends.
func benchServer(b *testing.B, tmp string, rc RuntimeConfig) *Server {
	srv, err := New(Config{DeploymentsDir: filepath.Join(tmp, "d"), Logger: slog.New(slog.DiscardHandler), Runtime: rc}, &fakeLookup{})
	if err != nil {
		b.Fatal(err)
	}
	shutDownAtEnd(b, srv)
	return srv
}

// benchEdge is a benchServer for Node apps, with the directory their
// artifacts go in.
func benchEdge(b *testing.B) (*Server, string) {
	needNode(b)
	tmp := b.TempDir()
	return benchServer(b, tmp, RuntimeConfig{StopTimeout: 2 * time.Second}), tmp
}

func nodeSite(b *testing.B, tmp string, id int64, body string) Site {
	arch, sum := writeArchive(b, tmp, []entry{file("server.js", body)})
	return Site{Project: "bench", BuildID: id, Slug: fmt.Sprintf("benchslug%02d", id), ArtifactPath: arch, SHA256: sum,
		Start: "node server.js", Health: HealthCheck{Interval: time.Second}}
}

// benchOK is benchLoad for an app answering "ok".
func benchOK(b *testing.B, url, host string) {
	benchLoad(b, url, host, func(status int, _ int64) error {
		if status != 200 {
			return fmt.Errorf("status %d", status)
		}
		return nil
	})
}

// activeNodeEdge is a benchEdge serving the trivial Node app as project
// "bench".
func activeNodeEdge(b *testing.B) *Server {
	srv, tmp := benchEdge(b)
	if err := srv.Activate(context.Background(), nodeSite(b, tmp, 1, trivialNode), nil); err != nil {
		b.Fatal(err)
	}
	return srv
}

// BenchmarkProxyToNode is requests per second to a trivial Node server
// through the edge; BenchmarkNodeDirect is the same Node server hit without
// the edge, in the same run.
func BenchmarkProxyToNode(b *testing.B) {
	srv := activeNodeEdge(b)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	benchOK(b, ts.URL+"/", "bench.localhost")
}

func BenchmarkNodeDirect(b *testing.B) {
	srv := activeNodeEdge(b)
	benchOK(b, "http://127.0.0.1:"+strconv.Itoa(srv.Port("bench"))+"/", "")
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
