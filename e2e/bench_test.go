package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
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

// BenchmarkFrameworksColdWarm measures a Vite app and a Next.js app from
// `git push` to the new page served: the first push (a fresh server:
// nothing cached but the shared npm download cache and toolchains) and a
// second push that changes one source file (the lockfile is the same: the
// install is skipped, the framework's cache restored), and reports each
// artifact's size. It needs the npm registry.
func BenchmarkFrameworksColdWarm(b *testing.B) {
	needRegistry(b, "the Vite and Next.js builds")
	for _, fw := range []struct {
		name, project, host, path string
		files                     map[string]string
		change                    map[string]string
		want                      string
	}{
		{"vite", "vitebench", "vitebench.localhost", "/", viteReactApp(),
			map[string]string{"src/style.css": "body { color: #345; }\n"}, `<div id="root">`},
		{"next", "nextbench", "nextbench.localhost", "/", nextStandaloneApp(),
			map[string]string{"app/page.js": "export default function Page() { return <h1>Warm Next.js build</h1>; }\n"}, "Warm Next.js build"},
	} {
		b.Run(fw.name, func(b *testing.B) {
			s := startServer(b)
			r := newRepo(b, "main", fw.files)
			// As a real project commits it: a lockfile, the cache's key.
			lock := exec.Command("npm", "install", "--package-lock-only", "--ignore-scripts", "--no-audit", "--no-fund")
			lock.Dir = r.dir
			if out, err := lock.CombinedOutput(); err != nil {
				b.Fatalf("npm install --package-lock-only: %v\n%s", err, out)
			}
			r.git("add", "package-lock.json")
			r.git("commit", "-q", "-m", "lockfile")
			for i := 0; i < b.N; i++ {
				start := time.Now()
				out := s.mustPush(r, fw.project)
				cold := time.Since(start)
				r.commit("warm", fw.change)
				start = time.Now()
				warmOut := s.mustPush(r, fw.project)
				for {
					code, body := s.get(fw.host, fw.path)
					if code == 200 && strings.Contains(body, fw.want) {
						break
					}
				}
				warm := time.Since(start)
				if !strings.Contains(warmOut, "install skipped") {
					b.Errorf("the warm push did not skip its install:\n%s", warmOut)
				}
				b.ReportMetric(cold.Seconds(), "s-cold")
				b.ReportMetric(warm.Seconds(), "s-warm")
				if m := artifactSize.FindStringSubmatch(out); m != nil {
					b.Logf("%s: cold %s, warm %s, artifact %s", fw.name, cold.Round(100*time.Millisecond), warm.Round(100*time.Millisecond), m[1])
				}
				r.commit("back", fw.files) // the next round starts from the first version again
			}
		})
	}
}

// artifactSize finds the artifact's size in a push's output ("2.1 MB, sha256 …").
var artifactSize = regexp.MustCompile(`(\d+(?:\.\d+)? [KMG]?B), sha256`)
