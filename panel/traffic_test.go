package panel

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"minivercel/schema"
	"minivercel/traffic"
)

func TestChartSVG(t *testing.T) {
	for _, tc := range []struct {
		name   string
		c      chart
		want   []string
		count  string
		points int
	}{
		{"line", chart{ID: "c", Title: "Requests", Points: []chartPoint{{"10:00", 1}, {"10:01", 4}, {"10:02", 0}}},
			[]string{`<svg id="c" class="chart chart-line"`, `<polyline class="chart-path"`, `<title>10:01: 4</title>`, `>5</text>`}, "<circle", 3},
		{"bars", chart{ID: "b", Title: "Builds", Unit: "s", Bars: true, Points: []chartPoint{{"#1", 12.5}, {"#2", 30}}},
			[]string{`class="chart chart-bars"`, `<title>#1: 12.5 s</title>`, `>50 s</text>`}, "<rect", 2},
		{"share", chart{ID: "r", Unit: "%", Points: []chartPoint{{"a", 0.25}}}, []string{`<title>a: 25%</title>`}, "<circle", 1},
		{"empty", chart{ID: "e"}, []string{`>1</text>`, `data-points="0"`}, "<circle", 0},
		{"escaped", chart{ID: `x"><script>`, Title: `<b>`, Points: []chartPoint{{`<img src=x>`, 1}}},
			[]string{`id="x&#34;&gt;&lt;script&gt;"`, `&lt;img src=x&gt;: 1`}, "<circle", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svg := string(tc.c.SVG())
			for _, w := range tc.want {
				if !strings.Contains(svg, w) {
					t.Errorf("svg lacks %q:\n%s", w, svg)
				}
			}
			if n := strings.Count(svg, tc.count); n != tc.points {
				t.Errorf("%d %s, want %d", n, tc.count, tc.points)
			}
			if strings.Contains(svg, "<script") || strings.Contains(svg, "<img") || strings.Contains(svg, "NaN") {
				t.Errorf("svg has unescaped text or NaN:\n%s", svg)
			}
		})
	}
}

// trafficEnv is a panel with a project "site" that has traffic in the
// current minute and one finished build.
func trafficEnv(t *testing.T) (*pageEnv, schema.Project) {
	env := newPageEnv(t)
	p := env.project("site")
	buckets := make([]int64, traffic.NumBuckets)
	buckets[traffic.BucketOf(5*time.Millisecond)] = 10
	if err := env.store.AddTraffic(context.Background(), []schema.TrafficMinute{{ProjectID: p.ID,
		Minute: time.Now().UTC().Truncate(time.Minute), Requests: 10, Errors4xx: 2, Errors5xx: 1, Bytes: 1000, LatencyBuckets: buckets}}); err != nil {
		t.Fatal(err)
	}
	env.build(p, "main", "v1", schema.BuildSucceeded)
	return env, p
}

func TestTrafficPage(t *testing.T) {
	t.Parallel()
	env, _ := trafficEnv(t)
	b := env.loggedIn()
	r := b.get("/projects/site")
	mustContain(t, r.body, `href="/projects/site/traffic"`, `href="/projects/site/logs"`)
	for _, tc := range []struct {
		query  string
		points int
	}{{"", 60}, {"?range=hour", 60}, {"?range=day", 96}} {
		t.Run(tc.query, func(t *testing.T) {
			r := b.get("/projects/site/traffic" + tc.query)
			if r.code != http.StatusOK {
				t.Fatalf("traffic page = %d\n%s", r.code, r.body)
			}
			mustContain(t, r.body, "10 requests, 3 errors", `id="chart-requests"`, `id="chart-4xx"`, `id="chart-5xx"`, `id="chart-p95"`,
				`id="chart-builds"`, `data-points="`+strconv.Itoa(tc.points)+`"`, ": 20%</title>", ": 10%</title>")
			if n := strings.Count(r.body, "<circle"); n != 4*tc.points {
				t.Errorf("%d circles, want %d (4 charts of %d points)", n, 4*tc.points, tc.points)
			}
			if n := strings.Count(r.body, `<rect class="chart-bar"`); n != 1 {
				t.Errorf("%d build bars, want 1", n)
			}
		})
	}
	if r := b.get("/projects/site/traffic?range=week"); r.code != http.StatusBadRequest {
		t.Errorf("range=week = %d, want 400", r.code)
	}
}

// TestTrafficAccess: the traffic and logs pages and their JSON are guarded
// as the other project pages are: a session (or a token) is needed, any
// signed-in user sees them, an unknown project is a 404.
func TestTrafficAccess(t *testing.T) {
	t.Parallel()
	env, _ := trafficEnv(t)
	anon := env.browser()
	for _, path := range []string{"/projects/site/traffic", "/projects/site/logs"} {
		if r := anon.get(path); r.code != http.StatusSeeOther || r.location != "/login?next="+url.QueryEscape(path) {
			t.Errorf("GET %s without session = %d to %q", path, r.code, r.location)
		}
	}
	for _, path := range []string{"/api/projects/site/traffic", "/api/projects/site/runtime-logs"} {
		if r := anon.get(path); r.code != http.StatusUnauthorized {
			t.Errorf("GET %s without credentials = %d, want 401", path, r.code)
		}
	}
	member := env.loggedInAs("member", false)
	for _, path := range []string{"/projects/site", "/projects/site/traffic", "/projects/site/logs", "/api/projects/site/traffic"} {
		if r := member.get(path); r.code != http.StatusOK {
			t.Errorf("GET %s as a user who is not admin = %d, as /projects/site gives", path, r.code)
		}
	}
	for _, path := range []string{"/projects/nope", "/projects/nope/traffic", "/projects/nope/logs", "/api/projects/nope/traffic", "/api/projects/nope/runtime-logs"} {
		if r := member.get(path); r.code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, r.code)
		}
	}
}

func TestTrafficJSON(t *testing.T) {
	t.Parallel()
	env, _ := trafficEnv(t)
	b := env.loggedIn()
	r := b.get("/api/projects/site/traffic?range=hour")
	if r.code != http.StatusOK {
		t.Fatalf("traffic JSON = %d %s", r.code, r.body)
	}
	var got trafficJSON
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatal(err)
	}
	if got.Project != "site" || got.Range != "hour" || got.StepSeconds != 60 || len(got.Points) != 60 || len(got.Builds) != 1 {
		t.Fatalf("traffic JSON = %+v", got)
	}
	// The minute stored is the newest point, or the one before when a
	// minute began between the store and the request.
	last := got.Points[59]
	if last.Requests == 0 {
		last = got.Points[58]
	}
	wantP95 := float64(traffic.Bounds[traffic.BucketOf(5*time.Millisecond)]) / float64(time.Millisecond)
	if last.Requests != 10 || last.Errors4xx != 2 || last.Errors5xx != 1 || last.Bytes != 1000 || last.PerMinute != 10 ||
		last.Rate4xx != 0.2 || last.Rate5xx != 0.1 || last.P95MS != wantP95 {
		t.Errorf("this minute = %+v (p95 want %v)", last, wantP95)
	}
	if got.Points[0].Requests != 0 || got.Points[0].P95MS != 0 {
		t.Errorf("an hour ago = %+v", got.Points[0])
	}
	r = b.get("/api/projects/site/traffic?range=day")
	err := json.Unmarshal([]byte(r.body), &got)
	var requests int64
	for _, pt := range got.Points[max(0, len(got.Points)-2):] {
		requests += pt.Requests // the newest step, or the one before it when one began meanwhile
	}
	if err != nil || len(got.Points) != 96 || got.StepSeconds != 900 || requests != 10 {
		t.Errorf("day = %d points, step %d, last %+v (%v)", len(got.Points), got.StepSeconds, got.Points[len(got.Points)-1], err)
	}
	if r := b.get("/api/projects/site/traffic?range=year"); r.code != http.StatusBadRequest || !strings.Contains(r.body, "range must be hour or day") {
		t.Errorf("range=year = %d %s", r.code, r.body)
	}
}

func TestRuntimeLogs(t *testing.T) {
	t.Parallel()
	env, p := trafficEnv(t)
	ctx := context.Background()
	b := env.loggedIn()
	if r := b.get("/projects/site/logs"); r.code != http.StatusOK || !strings.Contains(r.body, "Nothing is deployed yet") {
		t.Errorf("logs page before a deployment = %d\n%s", r.code, r.body)
	}
	if r := b.get("/api/projects/site/runtime-logs"); r.code != http.StatusNotFound {
		t.Errorf("runtime logs before a deployment = %d", r.code)
	}
	build := env.build(p, "main", "v2", schema.BuildSucceeded)
	d, err := env.store.RecordActivation(ctx, p.ID, build.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.store.AppendRuntimeLogs(ctx, d.ID, 1, []string{"listening on 3000", "<script>alert(1)</script>"}); err != nil {
		t.Fatal(err)
	}
	r := b.get("/projects/site/logs")
	mustContain(t, r.body, `id="runtime-log"`, `data-deployment="`+strconv.FormatInt(d.ID, 10)+`"`, `data-after="2"`,
		"listening on 3000", "&lt;script&gt;alert(1)&lt;/script&gt;", "runtimelogs.js")
	if strings.Contains(r.body, "<script>alert") {
		t.Error("a log line is not escaped")
	}
	if err := env.store.AppendRuntimeLogs(ctx, d.ID, 3, []string{"three", "four", "five"}); err != nil {
		t.Fatal(err)
	}
	var got runtimeLogsJSON
	r = b.get("/api/projects/site/runtime-logs?deployment=" + strconv.FormatInt(d.ID, 10) + "&after=2&limit=2")
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatalf("%d %s: %v", r.code, r.body, err)
	}
	if got.DeploymentID != d.ID || got.BuildID != build.ID || len(got.Lines) != 2 || got.Lines[0].Line != "three" || got.Next != 4 {
		t.Errorf("after 2, 2 lines = %+v", got)
	}
	r = b.get("/api/projects/site/runtime-logs?after=5")
	if err := json.Unmarshal([]byte(r.body), &got); err != nil || len(got.Lines) != 0 || got.Next != 5 {
		t.Errorf("after the last line = %+v (%v)", got, err)
	}
	other := env.project("other")
	ob := env.build(other, "main", "x", schema.BuildSucceeded)
	od, err := env.store.RecordActivation(ctx, other.ID, ob.ID)
	if err != nil {
		t.Fatal(err)
	}
	for query, want := range map[string]int{
		"?deployment=" + strconv.FormatInt(od.ID, 10): http.StatusNotFound, // another project's
		"?deployment=x": http.StatusBadRequest,
		"?after=-1":     http.StatusBadRequest,
		"?limit=0":      http.StatusBadRequest,
		"?limit=100000": http.StatusOK, // bounded, not refused
	} {
		if r := b.get("/api/projects/site/runtime-logs" + query); r.code != want {
			t.Errorf("runtime-logs%s = %d, want %d: %s", query, r.code, want, r.body)
		}
	}
}
