package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkPushToLive measures, for a static site, the time from the start of
// `git push` to the first 200 response with the new content. The goal is under
// a second on a 2-core machine.
func BenchmarkPushToLive(b *testing.B) {
	s := startServer(b)
	r := newRepo(b, "main", map[string]string{"index.html": "v0"})
	s.mustPush(r, "bench")
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		want := fmt.Sprintf("version %d", i+1)
		r.commit(want, map[string]string{"index.html": want})
		b.StartTimer()
		start := time.Now()
		s.mustPush(r, "bench")
		for {
			if code, body := s.get("bench.localhost", "/"); code == 200 && body == want {
				break
			}
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/push-to-live")
}

// BenchmarkIdleMemory reports the resident memory of an idle `serve` (its own
// process, without PostgreSQL), after start and after a site went live. The goal
// is under 60 MB.
func BenchmarkIdleMemory(b *testing.B) {
	s := startServer(b)
	idle := rssMB(b, s.cmd.Process.Pid)
	r := newRepo(b, "main", map[string]string{"index.html": "hello"})
	s.mustPush(r, "mem")
	for i := 0; i < 100; i++ {
		s.get("mem.localhost", "/")
	}
	var after float64
	for i := 0; i < b.N; i++ {
		after = rssMB(b, s.cmd.Process.Pid)
	}
	b.ReportMetric(idle, "MB-rss-idle")
	b.ReportMetric(after, "MB-rss-after-deploy")
}

func rssMB(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return float64(kb) / 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
