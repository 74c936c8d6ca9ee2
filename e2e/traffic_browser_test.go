package e2e

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// signIn logs the browser in as admin with password, from the login page.
func (b *browser) signIn(password string) {
	b.t.Helper()
	b.do("log in",
		chromedp.Navigate(b.base+"/login"),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), "admin"),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS(".topbar")),
	)
}

var trafficSummary = regexp.MustCompile(`^(\d+) requests, (\d+) errors`)

// TestTrafficAndRuntimeLogInBrowser: requests a site served show in the
// traffic page's charts once the edge has flushed them (every second here,
// with MINIVERCEL_TRAFFIC_FLUSH), and a line an app prints after its log
// page was opened appears there live.
func TestTrafficAndRuntimeLogInBrowser(t *testing.T) {
	t.Parallel()
	s := startServer(t, "MINIVERCEL_TRAFFIC_FLUSH=1s")
	b := newBrowser(t, s)
	const password = "traffic-test-password"
	if out, code := s.admin(t, password+"\n", "user", "set-password", "admin", "--password-stdin"); code != 0 {
		t.Fatalf("set password exited %d:\n%s", code, out)
	}
	b.signIn(password)

	s.mustPush(newRepo(t, "main", map[string]string{"index.html": "counted"}), "stats")
	s.waitBody("stats.localhost", "/", "counted")
	for range 3 {
		if code, _ := s.get("stats.localhost", "/"); code != 200 {
			t.Fatalf("GET stats.localhost/ = %d", code)
		}
	}
	if code, _ := s.get("stats.localhost", "/missing"); code != 404 {
		t.Fatalf("GET stats.localhost/missing = %d, want 404", code)
	}

	// The page reads what was flushed: load it again until the 404 is there.
	deadline := time.Now().Add(30 * time.Second)
	for {
		b.do("traffic page", chromedp.Navigate(b.base+"/projects/stats/traffic"), chromedp.WaitVisible(chromedp.CSS("#chart-requests")))
		m := trafficSummary.FindStringSubmatch(eval[string](b, `document.getElementById("traffic-summary").textContent`))
		if m != nil {
			if reqs, _ := strconv.Atoi(m[1]); reqs >= 4 && m[2] != "0" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the traffic page never counted the requests: %q", eval[string](b, `document.getElementById("traffic-summary").textContent`))
		}
		time.Sleep(250 * time.Millisecond)
	}
	for id, want := range map[string]int{"chart-requests": 60, "chart-4xx": 60, "chart-5xx": 60, "chart-p95": 60} {
		if n := eval[int](b, fmt.Sprintf(`document.querySelectorAll("#%s circle.chart-point").length`, id)); n != want {
			t.Errorf("#%s has %d points, want %d", id, n, want)
		}
	}
	if n := eval[int](b, `document.querySelectorAll("#chart-builds rect.chart-bar").length`); n != 1 {
		t.Errorf("#chart-builds has %d bars, want 1 (one build)", n)
	}
	// The 404 shows as a 4xx rate above zero in the current minute.
	if got := eval[string](b, `Array.from(document.querySelectorAll("#chart-4xx circle title")).map(t => t.textContent).filter(s => !s.endsWith(": 0%")).join("|")`); got == "" {
		t.Error("the 4xx chart has no point above 0%")
	}
	b.shot("traffic")
	b.do("day range", chromedp.Click(chromedp.CSS(`a[href="/projects/stats/traffic?range=day"]`)), chromedp.WaitVisible(chromedp.CSS("#chart-requests")))
	if n := eval[int](b, `document.querySelectorAll("#chart-requests circle.chart-point").length`); n != 96 {
		t.Errorf("the day's requests chart has %d points, want 96", n)
	}

	// The runtime log follows the app live.
	app := nodeApp("talker")
	app["server.js"] = `const http = require('http');
http.createServer((req, res) => {
  console.log('asked for ' + req.url);
  res.end('talker');
}).listen(process.env.PORT, process.env.HOST, () => console.log('talker listening'));
`
	s.mustPush(newRepo(t, "main", app), "talk")
	s.waitBody("talk.localhost", "/", "talker")
	b.do("logs page", chromedp.Navigate(b.base+"/projects/stats"), chromedp.Click(chromedp.CSS(`a[href="/projects/stats/logs"]`)),
		chromedp.WaitVisible(chromedp.CSS("h1")))
	b.do("talk's logs", chromedp.Navigate(b.base+"/projects/talk/logs"), chromedp.WaitVisible(chromedp.CSS("#runtime-log")))
	b.waitJS("log goes live", `document.getElementById("log-state").textContent === "Live"`)
	b.waitJS("earlier lines", `document.getElementById("runtime-log").innerText.includes("talker listening")`)
	marker := "after-the-page-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if strings.Contains(eval[string](b, `document.getElementById("runtime-log").innerText`), marker) {
		t.Fatal("the marker is on the page before the app printed it")
	}
	if code, _ := s.get("talk.localhost", "/"+marker); code != 200 {
		t.Fatalf("GET talk.localhost/%s = %d", marker, code)
	}
	b.waitJS("the new line arrives live", `document.getElementById("runtime-log").innerText.includes("asked for /`+marker+`")`)
	b.shot("runtime-log")
}
