package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"minivercel/internal/testenv"
)

// The side-by-side benchmark: the edge, nginx and Caddy serve the same files
// and proxy to the same Node process, measured by wrk in one run. The machine
// it runs on is shared, so rounds are interleaved (each round starts with a
// different server) and the medians' ratios are the result, not the
// absolute figures.
const (
	sbsRounds      = 3
	sbsDuration    = "5s"
	sbsWarmup      = "2s"
	sbsThreads     = "2"
	sbsConnections = "64"
)

// sbsScenario is one load: a path asked of every server, over its static
// listener or its proxy listener.
type sbsScenario struct {
	name  string // in the table and the metrics' units
	path  string
	size  int // the body's length, checked once before the load
	proxy bool
}

// sbsTarget is one server under test: how wrk reaches it for a scenario.
type sbsTarget struct {
	name string
	// url returns the URL and the Host header ("" for the URL's own) of a
	// scenario.
	url func(sbsScenario) (string, string)
	// pid is the process whose RSS is sampled under load; 0: not sampled.
	pid int
}

// wrkResult is what one wrk run measured.
type wrkResult struct {
	rps    float64
	p99    time.Duration
	errors string // wrk's lines about socket errors and non-2xx answers
}

// BenchmarkSideBySide runs wrk against the edge, nginx and Caddy serving a
// 2 KB page, a 100 KB and a 1 MB asset, and proxying to one trivial Node
// server; it prints the median req/s and p99 of each, the edge's ratios to
// the others, the edge's RSS under load, and the top of the edge's CPU
// profile under the 2 KB and the proxy loads. nginx, Caddy and wrk are
// installed from Debian's packages when missing (never under CI); a server
// that cannot be installed is left out of the table.
func BenchmarkSideBySide(b *testing.B) {
	tools := sbsTools(b)
	if tools["wrk"] == "" {
		b.Skip("wrk is not installed: apt-get install -y wrk")
	}
	dir, err := os.MkdirTemp("", "mvsbs")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	// nginx's workers run as nobody: they must read the files.
	if err := os.Chmod(dir, 0o755); err != nil {
		b.Fatal(err)
	}

	// The files, the same bytes for every server.
	files := map[string]string{
		"index.html": sbsPage2KB,
		"100k.js":    sbsAsset(100 << 10),
		"1m.js":      sbsAsset(1 << 20),
	}
	root := filepath.Join(dir, "www")
	if err := os.Mkdir(root, 0o755); err != nil {
		b.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	scenarios := []sbsScenario{
		{name: "static-2KB", path: "/", size: len(files["index.html"])},
		{name: "static-100KB", path: "/100k.js", size: len(files["100k.js"])},
		{name: "static-1MB", path: "/1m.js", size: len(files["1m.js"])},
		{name: "proxy-node", path: "/", size: 2, proxy: true},
	}

	// minivercel: the static site and the Node app pushed as a user would.
	// The app's process is the upstream of all three servers, so the
	// upstream's cost is the same for each.
	// The profiles are served on a unix socket only, in a directory of
	// the server's user alone (0700).
	pprofSock := filepath.Join(testenv.ShortDir(b, "mvpp"), "pprof.sock")
	s := startServer(b, "MINIVERCEL_PPROF_ADDR=unix:"+pprofSock)
	s.mustPush(newRepo(b, "main", files), "site")
	out := s.mustPush(newRepo(b, "main", map[string]string{
		"package.json": `{"name":"upstream","private":true,"scripts":{"start":"node server.js"}}`,
		"server.js":    "require('http').createServer((q, r) => r.end('ok')).listen(process.env.PORT, process.env.HOST, () => console.log('upstream listening on port ' + process.env.PORT));\n",
	}), "nodeapp")
	m := regexp.MustCompile(`upstream listening on port (\d+)`).FindStringSubmatch(out)
	if m == nil {
		b.Fatalf("the push does not say the app's port:\n%s", out)
	}
	upstream := "127.0.0.1:" + m[1]
	edgeURL := fmt.Sprintf("http://127.0.0.1:%d", s.httpPort)
	targets := []sbsTarget{{
		name: "minivercel",
		url: func(sc sbsScenario) (string, string) {
			if sc.proxy {
				return edgeURL + sc.path, "nodeapp.localhost"
			}
			return edgeURL + sc.path, "site.localhost"
		},
		pid: s.cmd.Process.Pid,
	}}
	if tools["nginx"] != "" {
		targets = append(targets, sbsNginx(b, tools["nginx"], dir, root, upstream))
	}
	if tools["caddy"] != "" {
		targets = append(targets, sbsCaddy(b, tools["caddy"], dir, root, upstream))
	}

	// Every server answers every scenario with the right body first.
	for _, t := range targets {
		for _, sc := range scenarios {
			url, host := t.url(sc)
			sbsWaitBody(b, url, host, sc.size)
		}
	}
	for _, t := range targets {
		for _, sc := range scenarios {
			sbsWrk(b, tools["wrk"], t, sc, sbsWarmup)
		}
	}

	results := map[string]map[string][]wrkResult{} // scenario → server → rounds
	rss := map[string]float64{}                    // scenario → the edge's peak RSS, MB
	for round := 0; round < sbsRounds; round++ {
		for _, sc := range scenarios {
			if results[sc.name] == nil {
				results[sc.name] = map[string][]wrkResult{}
			}
			for i := range targets {
				t := targets[(i+round)%len(targets)]
				stop := make(chan struct{})
				var peak float64
				var sampling sync.WaitGroup
				if t.pid != 0 {
					sampling.Go(func() { peak = sbsPeakRSS(t.pid, stop) })
				}
				r := sbsWrk(b, tools["wrk"], t, sc, sbsDuration)
				close(stop)
				sampling.Wait()
				rss[sc.name] = max(rss[sc.name], peak)
				results[sc.name][t.name] = append(results[sc.name][t.name], r)
			}
		}
	}

	// The table.
	var tb strings.Builder
	fmt.Fprintf(&tb, "\nside by side: wrk -t%s -c%s -d%s --latency, median of %d interleaved rounds (req/s, p99)\n",
		sbsThreads, sbsConnections, sbsDuration, sbsRounds)
	fmt.Fprintf(&tb, "| scenario | nginx | caddy | minivercel | minivercel/nginx | minivercel/caddy |\n|---|---|---|---|---|---|\n")
	for _, sc := range scenarios {
		mv := sbsMedian(results[sc.name]["minivercel"])
		row := []string{sc.name}
		for _, name := range []string{"nginx", "caddy", "minivercel"} {
			rs, ok := results[sc.name][name]
			if !ok {
				row = append(row, name+": not installed")
				continue
			}
			med := sbsMedian(rs)
			row = append(row, fmt.Sprintf("%s req/s, p99 %s", sbsThousands(med.rps), sbsMillis(med.p99)))
		}
		for _, name := range []string{"nginx", "caddy"} {
			rs, ok := results[sc.name][name]
			if !ok {
				row = append(row, "–")
				continue
			}
			ratio := mv.rps / sbsMedian(rs).rps
			row = append(row, fmt.Sprintf("%.2f", ratio))
			b.ReportMetric(ratio, "mv/"+name+"-"+sc.name)
		}
		b.ReportMetric(mv.rps, "mv-req/s-"+sc.name)
		fmt.Fprintf(&tb, "| %s |\n", strings.Join(row, " | "))
	}
	fmt.Fprintf(&tb, "\nminivercel serve's peak RSS under load (VmRSS, without PostgreSQL and the Node app):")
	for _, sc := range scenarios {
		fmt.Fprintf(&tb, " %s %.0f MB;", sc.name, rss[sc.name])
		b.ReportMetric(rss[sc.name], "MB-rss-"+sc.name)
	}
	tb.WriteString("\n")
	for _, sc := range scenarios {
		for _, t := range targets {
			for _, r := range results[sc.name][t.name] {
				if r.errors != "" {
					fmt.Fprintf(&tb, "errors: %s %s: %s\n", t.name, sc.name, r.errors)
				}
			}
		}
	}
	fmt.Print(tb.String())

	// Where the edge's time goes: a CPU profile taken while wrk runs.
	for _, sc := range []sbsScenario{scenarios[0], scenarios[3]} {
		sbsProfile(b, tools["wrk"], targets[0], sc, pprofSock, dir)
	}
}

// sbsPage2KB is a 2 KB HTML page, as in the edge's own benchmarks.
var sbsPage2KB = "<!doctype html><title>bench</title>" + strings.Repeat("<p>lorem ipsum dolor sit</p>\n", 69)

// sbsAsset is n bytes of JavaScript-looking text.
func sbsAsset(n int) string {
	line := "console.log('minivercel side by side benchmark asset');\n"
	return strings.Repeat(line, n/len(line)+1)[:n]
}

// sbsTools finds wrk, nginx and Caddy, installing those missing from
// Debian's packages first, except under CI (which runs `make test`, never
// this) or without root. It returns each tool's path, "" for one missing.
func sbsTools(b *testing.B) map[string]string {
	find := func() (map[string]string, []string) {
		paths, missing := map[string]string{}, []string(nil)
		for _, name := range []string{"wrk", "nginx", "caddy"} {
			p, err := exec.LookPath(name)
			if err != nil {
				// root's PATH may lack /usr/sbin, where nginx lives.
				if _, e := os.Stat("/usr/sbin/" + name); e == nil {
					p, err = "/usr/sbin/"+name, nil
				}
			}
			if err == nil {
				paths[name] = p
			} else {
				missing = append(missing, name)
			}
		}
		return paths, missing
	}
	paths, missing := find()
	if len(missing) == 0 || os.Getenv("CI") != "" || os.Geteuid() != 0 {
		return paths
	}
	fmt.Printf("installing %s from Debian's packages\n", strings.Join(missing, ", "))
	// One package at a time: Caddy is missing from some releases, and
	// nginx and wrk are still worth measuring without it.
	for _, name := range missing {
		cmd := exec.Command("apt-get", "install", "-y", "--no-install-recommends", name)
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive"}
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Printf("%s: not installed: apt-get install: %v\n%s\n", name, err, sbsTail(out))
			continue
		}
		if name == "nginx" || name == "caddy" {
			sbsNoService(name)
		}
	}
	paths, _ = find()
	return paths
}

// sbsNoService stops and disables the system service a package may have
// started on install: the benchmark runs its own process on loopback, and
// leaves no web server listening on port 80 behind it.
func sbsNoService(name string) {
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		exec.Command("systemctl", "disable", "--now", name).Run()
		return
	}
	exec.Command("service", name, "stop").Run()
	exec.Command("update-rc.d", name, "disable").Run()
}

func sbsTail(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}

// sbsNginx starts nginx in the foreground on two loopback ports, configured
// as a careful operator would: sendfile, no access log, long-lived client
// connections, and kept-alive HTTP/1.1 connections to the upstream.
func sbsNginx(b *testing.B, bin, dir, root, upstream string) sbsTarget {
	nd := filepath.Join(dir, "nginx")
	if err := os.Mkdir(nd, 0o755); err != nil {
		b.Fatal(err)
	}
	static, proxy := freePort(b), freePort(b)
	conf := fmt.Sprintf(`daemon off;
worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    upstream node {
        server %[2]s;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:%[3]d;
        root %[4]s;
        index index.html;
    }
    server {
        listen 127.0.0.1:%[5]d;
        location / {
            proxy_pass http://node;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }
    }
}
`, nd, upstream, static, root, proxy)
	confPath := filepath.Join(nd, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	sbsStart(b, "nginx", nd, exec.Command(bin, "-p", nd, "-c", confPath, "-e", filepath.Join(nd, "error.log")), nil)
	return sbsTarget{name: "nginx", url: func(sc sbsScenario) (string, string) {
		if sc.proxy {
			return fmt.Sprintf("http://127.0.0.1:%d%s", proxy, sc.path), ""
		}
		return fmt.Sprintf("http://127.0.0.1:%d%s", static, sc.path), ""
	}}
}

// sbsCaddy starts Caddy in the foreground on two loopback ports: file_server
// and reverse_proxy (which keeps upstream connections alive by itself), with
// no admin endpoint and no automatic HTTPS.
func sbsCaddy(b *testing.B, bin, dir, root, upstream string) sbsTarget {
	cd := filepath.Join(dir, "caddy")
	if err := os.Mkdir(cd, 0o755); err != nil {
		b.Fatal(err)
	}
	static, proxy := freePort(b), freePort(b)
	conf := fmt.Sprintf(`{
	admin off
	auto_https off
}
:%[1]d {
	bind 127.0.0.1
	root * %[2]s
	file_server
}
:%[3]d {
	bind 127.0.0.1
	reverse_proxy %[4]s
}
`, static, root, proxy, upstream)
	confPath := filepath.Join(cd, "Caddyfile")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	// Its data and config directories in the temporary one, not $HOME.
	env := []string{"HOME=" + cd, "XDG_DATA_HOME=" + cd, "XDG_CONFIG_HOME=" + cd}
	sbsStart(b, "caddy", cd, exec.Command(bin, "run", "--config", confPath, "--adapter", "caddyfile"), env)
	return sbsTarget{name: "caddy", url: func(sc sbsScenario) (string, string) {
		if sc.proxy {
			return fmt.Sprintf("http://127.0.0.1:%d%s", proxy, sc.path), ""
		}
		return fmt.Sprintf("http://127.0.0.1:%d%s", static, sc.path), ""
	}}
}

// sbsStart starts cmd as a plain process in a process group of its own,
// its output in dir/<name>.out, and stops the group when the benchmark ends.
func sbsStart(b *testing.B, name, dir string, cmd *exec.Cmd, env []string) {
	logf, err := os.Create(filepath.Join(dir, name+".out"))
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	b.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	// It exiting at once is a configuration error: say what it said.
	select {
	case <-done:
		out, _ := os.ReadFile(logf.Name())
		b.Fatalf("%s exited at start:\n%s", name, out)
	case <-time.After(300 * time.Millisecond):
	}
}

// sbsWaitBody waits until url answers 200 with a body of size bytes.
func sbsWaitBody(b *testing.B, url, host string, size int) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest("GET", url, nil)
		if host != "" {
			req.Host = host
		}
		resp, err := client.Do(req)
		var n int64
		if err == nil {
			n, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && n == int64(size) {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s (Host %q) never answered 200 with %d bytes: %v, %d bytes", url, host, size, err, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sbsWrk runs wrk against t for sc for the given duration.
func sbsWrk(b *testing.B, wrk string, t sbsTarget, sc sbsScenario, duration string) wrkResult {
	r, err := runWrk(wrk, t, sc, duration)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// runWrk is sbsWrk for a goroutine other than the benchmark's.
func runWrk(wrk string, t sbsTarget, sc sbsScenario, duration string) (wrkResult, error) {
	url, host := t.url(sc)
	args := []string{"-t" + sbsThreads, "-c" + sbsConnections, "-d" + duration, "--latency"}
	if host != "" {
		args = append(args, "-H", "Host: "+host)
	}
	cmd := exec.Command(wrk, append(args, url)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	if err == nil {
		var r wrkResult
		if r, err = parseWrk(string(out)); err == nil {
			return r, nil
		}
	}
	return wrkResult{}, fmt.Errorf("wrk %s %s: %w\n%s", t.name, sc.name, err, out)
}

// parseWrk reads the requests per second, the 99th percentile latency and
// any error lines from wrk --latency's output.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	var errs []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return r, fmt.Errorf("requests/sec %q: %w", f[1], err)
			}
			r.rps = v
		case len(f) == 2 && f[0] == "99%":
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return r, err
			}
			r.p99 = d
		case len(f) > 0 && (f[0] == "Socket" || f[0] == "Non-2xx"):
			errs = append(errs, strings.Join(f, " "))
		}
	}
	if r.rps == 0 || r.p99 == 0 {
		return r, fmt.Errorf("no Requests/sec or 99%% latency in wrk's output")
	}
	r.errors = strings.Join(errs, "; ")
	return r, nil
}

// parseWrkDuration reads wrk's latencies: 512.00us, 3.21ms, 1.02s, 1.50m.
func parseWrkDuration(s string) (time.Duration, error) {
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}} {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("latency %q: %w", s, err)
			}
			return time.Duration(v * float64(u.unit)), nil
		}
	}
	return 0, fmt.Errorf("latency %q: unknown unit", s)
}

// sbsMedian is the median req/s and the median p99 of rounds (each its
// own median: the two may come from different rounds).
func sbsMedian(rounds []wrkResult) wrkResult {
	rps := make([]float64, len(rounds))
	p99 := make([]time.Duration, len(rounds))
	for i, r := range rounds {
		rps[i], p99[i] = r.rps, r.p99
	}
	slices.Sort(rps)
	slices.Sort(p99)
	return wrkResult{rps: rps[len(rps)/2], p99: p99[len(p99)/2]}
}

// sbsPeakRSS samples pid's VmRSS every 100 ms until stop closes and returns
// the highest, in MB.
func sbsPeakRSS(pid int, stop <-chan struct{}) float64 {
	var peak float64
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
					kb, _ := strconv.Atoi(f[1])
					peak = max(peak, float64(kb)/1024)
				}
			}
		}
		select {
		case <-stop:
			return peak
		case <-tick.C:
		}
	}
}

// sbsProfile takes a 5 s CPU profile of the edge, through its pprof unix
// socket sock, while wrk runs sc against it, saves it in dir, and prints the profile's top 15 functions by their own time and by
// their cumulative time.
func sbsProfile(b *testing.B, wrk string, t sbsTarget, sc sbsScenario, sock, dir string) {
	path := filepath.Join(dir, "cpu-"+sc.name+".pprof")
	var load sync.WaitGroup
	var loadErr error
	load.Go(func() { _, loadErr = runWrk(wrk, t, sc, "7s") })
	time.Sleep(time.Second) // the load is running when the profile starts
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return new(net.Dialer).DialContext(ctx, "unix", sock)
		},
	}}
	resp, err := client.Get("http://pprof/debug/pprof/profile?seconds=5")
	if err != nil {
		b.Fatal(err)
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	load.Wait()
	if loadErr != nil {
		b.Fatal(loadErr)
	}
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("cpu profile: %d %v", resp.StatusCode, err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	for _, sort := range []string{"-flat", "-cum"} {
		out, err := exec.Command("go", "tool", "pprof", "-top", sort, "-nodecount=15", binary, path).CombinedOutput()
		if err != nil {
			b.Fatalf("go tool pprof: %v\n%s", err, out)
		}
		fmt.Printf("\nthe edge's CPU profile under %s (%s):\n%s", sc.name, sort, out)
	}
}

// sbsThousands formats v rounded, with thousands separators.
func sbsThousands(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// sbsMillis formats d in milliseconds with two significant decimals.
func sbsMillis(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

func TestParseWrk(t *testing.T) {
	out := `Running 5s test @ http://127.0.0.1:8080/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.52ms  830.11us  14.20ms   80.12%
    Req/Sec    21.31k     2.10k   25.00k    70.00%
  Latency Distribution
     50%    1.40ms
     75%    1.90ms
     90%    2.50ms
     99%    4.75ms
  212345 requests in 5.00s, 480.00MB read
  Socket errors: connect 0, read 0, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:  42469.00
Transfer/sec:     96.00MB
`
	r, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.rps != 42469 || r.p99 != 4750*time.Microsecond {
		t.Errorf("parseWrk = %v req/s, p99 %v; want 42469, 4.75ms", r.rps, r.p99)
	}
	if !strings.Contains(r.errors, "timeout 3") || !strings.Contains(r.errors, "Non-2xx or 3xx responses: 7") {
		t.Errorf("errors = %q", r.errors)
	}
	if _, err := parseWrk("unable to connect to 127.0.0.1:1 Connection refused"); err == nil {
		t.Error("parseWrk of a failed run: no error")
	}
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"512.00us", 512 * time.Microsecond},
		{"3.21ms", 3210 * time.Microsecond},
		{"1.50s", 1500 * time.Millisecond},
		{"1.00m", time.Minute},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got, err := parseWrkDuration(tc.in); err != nil || got != tc.want {
				t.Errorf("parseWrkDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}
