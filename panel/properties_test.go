package panel

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/jackc/pgx/v5"
	"pgregory.net/rapid"

	"minivercel/internal/testenv"
	"minivercel/schema"
)

// TestActiveBuildDisplayProperty is the seed's Property 15 (active build
// display): after any sequence of new builds (queued, failed, canceled, or
// succeeded with an artifact that cannot be extracted), activations of real
// builds (through the API, the service or the page's form, older or newer,
// of the production branch or not) and activations that fail, the
// dashboard, the project page, GET /api/projects, GET /api/projects/{name}
// and its builds all show as live exactly the build the database says is
// active, which the edge serves, and mark no other build live. A project
// never activated shows nothing live anywhere.
func TestActiveBuildDisplayProperty(t *testing.T) {
	testenv.Checks(t, 10)
	e := newEnv(t, true, nil)
	ctx := context.Background()
	br := &browser{t: t, srv: e.srv, cookies: map[string]string{sessionCookie: e.token}, origin: "http://example.com"}
	e.call("POST", "/api/projects", map[string]any{"name": "shown"}, http.StatusCreated, nil)
	shown, err := e.store.ProjectByName(ctx, "shown")
	if err != nil {
		t.Fatal(err)
	}
	idle := e.project("idle")
	content := map[int64]string{}
	var real []int64
	for i, branch := range []string{"main", "main", "feature"} {
		html := fmt.Sprintf("<p>build %d of %s</p>", i, branch)
		b := e.realBuild("shown", branch, html)
		content[b.ID] = html
		real = append(real, b.ID)
	}
	// The production branch's last build deployed itself; the feature
	// branch's did not.
	live := real[1]
	e.checkLiveShown(t, br, shown, live, content)
	e.checkLiveShown(t, br, idle, 0, nil)

	rapid.Check(t, func(rt *rapid.T) {
		steps := rapid.SliceOfN(rapid.SampledFrom([]string{"activate", "activate", "broken", "stored"}), 1, 4).Draw(rt, "steps")
		for _, step := range steps {
			switch step {
			case "activate":
				id := real[rapid.IntRange(0, len(real)-1).Draw(rt, "build")]
				switch via := rapid.SampledFrom([]string{"api", "service", "page"}).Draw(rt, "via"); via {
				case "api":
					e.call("POST", "/api/projects/shown/activate", map[string]int64{"build_id": id}, http.StatusOK, nil)
				case "service":
					if _, err := e.svc.Activate(ctx, e.admin, "shown", id); err != nil {
						rt.Fatalf("activate %d: %v", id, err)
					}
				case "page":
					if r := br.post("/projects/shown/activate", url.Values{"build_id": {strconv.FormatInt(id, 10)}}); r.code != http.StatusSeeOther {
						rt.Fatalf("activate form: %d %s", r.code, r.body)
					}
				}
				live = id
			case "broken":
				// Succeeded, but its artifact is not there: the activation
				// fails and the previous build keeps serving.
				b := e.finishedBuild(shown, "main", schema.BuildSucceeded)
				if code, data, _ := e.request("POST", "/api/projects/shown/activate", e.token, map[string]int64{"build_id": b.ID}); code == http.StatusOK {
					rt.Fatalf("activating build %d without an artifact: %d %s", b.ID, code, data)
				}
			case "stored":
				p := rapid.SampledFrom([]schema.Project{shown, idle}).Draw(rt, "project")
				switch st := rapid.SampledFrom([]schema.BuildStatus{schema.BuildQueued, schema.BuildFailed, schema.BuildCanceled, schema.BuildSucceeded}).Draw(rt, "status"); st {
				case schema.BuildQueued:
					e.storedBuild(p)
				default:
					e.finishedBuild(p, p.ProductionBranch, st)
				}
			}
			e.checkLiveShown(rt, br, shown, live, content)
			e.checkLiveShown(rt, br, idle, 0, nil)
		}
	})
}

// checkLiveShown checks that every view shows build live (0: none) as the
// one live build of p, and that the database and the edge agree; content is
// what each served build's page says.
func (e *testEnv) checkLiveShown(t interface{ Fatalf(string, ...any) }, br *browser, p schema.Project, live int64, content map[int64]string) {
	ctx := context.Background()
	db, err := e.store.ActiveBuild(ctx, p.ID)
	switch {
	case errors.Is(err, schema.ErrNotFound):
		db.ID = 0
	case err != nil:
		t.Fatalf("active build of %s: %v", p.Name, err)
	}
	if db.ID != live {
		t.Fatalf("%s: the database says build %d is active, want %d", p.Name, db.ID, live)
	}
	orZero := func(id *int64) int64 {
		if id == nil {
			return 0
		}
		return *id
	}

	var list []projectJSON
	e.call("GET", "/api/projects", nil, http.StatusOK, &list)
	i := slices.IndexFunc(list, func(j projectJSON) bool { return j.Name == p.Name })
	if i < 0 || orZero(list[i].ActiveBuildID) != live {
		t.Fatalf("GET /api/projects: %s not listed with active_build_id %d: %+v", p.Name, live, list)
	}
	var d projectDetailJSON
	e.call("GET", "/api/projects/"+p.Name, nil, http.StatusOK, &d)
	if orZero(d.ActiveBuildID) != live || (live == 0) != (d.ActiveBuild == nil) || (d.ActiveBuild != nil && (d.ActiveBuild.ID != live || !d.ActiveBuild.Active)) {
		t.Fatalf("GET /api/projects/%s: active %d / %+v, want %d", p.Name, orZero(d.ActiveBuildID), d.ActiveBuild, live)
	}
	var bs []buildJSON
	e.call("GET", "/api/projects/"+p.Name+"/builds", nil, http.StatusOK, &bs)
	for _, b := range bs {
		if b.Active != (b.ID == live) {
			t.Fatalf("GET /api/projects/%s/builds: build %d active=%v, live is %d", p.Name, b.ID, b.Active, live)
		}
	}

	liveLink := func(text string) string { return fmt.Sprintf(`<a href="/builds/%d">%s%d</a>`, live, text, live) }
	dash := br.get("/")
	card := between(dash.body, `href="/projects/`+p.Name+`"`, "</li>")
	prod := between(card, "<dt>Production</dt><dd>", "</dd>")
	if (live == 0 && !strings.Contains(prod, "nothing live yet")) || (live != 0 && !strings.HasPrefix(prod, liveLink("#"))) {
		t.Fatalf("dashboard: %s's production shows %q, want build %d", p.Name, prod, live)
	}

	page := br.get("/projects/" + p.Name)
	if page.code != http.StatusOK {
		t.Fatalf("project page of %s: %d", p.Name, page.code)
	}
	card = between(page.body, `id="live-title"`, "</section>")
	if (live == 0 && !strings.Contains(card, "Nothing is live yet")) ||
		(live != 0 && (!strings.Contains(card, liveLink("Build #")) || strings.Count(card, `href="/builds/`) != 1)) {
		t.Fatalf("project page: %s's production card shows %q, want build %d", p.Name, card, live)
	}
	marked := strings.Count(page.body, `class="is-live"`)
	pills := strings.Count(page.body, `pill pill-live`)
	row := between(page.body, `<tr class="is-live">`, "</tr>")
	if want := min(live, 1); int64(marked) != want || int64(pills) != want ||
		(live != 0 && !strings.Contains(row, fmt.Sprintf(`class="build-link" href="/builds/%d"`, live))) {
		t.Fatalf("project page of %s: %d rows and %d pills marked live (row %q), want build %d alone", p.Name, marked, pills, row, live)
	}

	served, ok := e.edge.Active(p.Name)
	if !ok {
		served = 0
	}
	if served != live {
		t.Fatalf("the edge serves build %d of %s, want %d", served, p.Name, live)
	}
	if live != 0 {
		w := httptest.NewRecorder()
		e.edge.Handler().ServeHTTP(w, httptest.NewRequest("GET", "http://"+p.Name+"."+testBaseDomain+"/", nil))
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), content[live]) {
			t.Fatalf("%s serves %d %q, want build %d's %q", p.Name, w.Code, w.Body, live, content[live])
		}
	}
}

// between is the part of s after the first start and before the next end
// ("" when start is missing).
func between(s, start, end string) string {
	_, after, ok := strings.Cut(s, start)
	if !ok {
		return ""
	}
	before, _, _ := strings.Cut(after, end)
	return before
}

// dbDigest sums every row of every table of the test database: equal
// digests mean nothing was written in between.
func (e *testEnv) dbDigest() string {
	e.t.Helper()
	ctx := context.Background()
	rows, err := e.store.Pool().Query(ctx, `SELECT quote_ident(table_name) FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1`)
	if err != nil {
		e.t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		e.t.Fatal(err)
	}
	var b strings.Builder
	for _, tbl := range tables {
		var sum string
		if err := e.store.Pool().QueryRow(ctx, `SELECT count(*)::text || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM `+tbl+` t`).Scan(&sum); err != nil {
			e.t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s=%s\n", tbl, sum)
	}
	return b.String()
}

// protocolAction is a change a user can ask for: the websocket message a
// client might try, and the HTTP request that does it.
type protocolAction struct {
	ws           map[string]any
	method, path string
	body         any
}

// protocolActions are the actions of the panel's UI, on project p (which
// delete_project removes), with fresh names from n.
func protocolActions(t *testing.T, p string, n int) []protocolAction {
	fresh := "new" + strconv.Itoa(n)
	key := newAuthorizedKey(t, fresh)
	return []protocolAction{
		{map[string]any{"type": "create_project", "name": fresh}, "POST", "/api/projects", map[string]string{"name": fresh}},
		{map[string]any{"type": "update_project", "project": p, "production_branch": "release"}, "PATCH", "/api/projects/" + p, map[string]string{"production_branch": "release"}},
		{map[string]any{"type": "delete_project", "project": p}, "DELETE", "/api/projects/" + p, nil},
		{map[string]any{"type": "set_env", "project": p, "key": "API_URL", "value": fresh}, "PUT", "/api/projects/" + p + "/env/API_URL", map[string]string{"value": fresh}},
		{map[string]any{"type": "add_domain", "project": p, "domain": fresh + ".example.com"}, "POST", "/api/projects/" + p + "/domains", map[string]string{"domain": fresh + ".example.com"}},
		{map[string]any{"type": "add_key", "public_key": key}, "POST", "/api/keys", map[string]string{"public_key": key}},
	}
}

// TestUIProtocolSelectionProperty is the seed's Property 23 (UI protocol
// selection: HTTP for actions, websocket for live data). Whatever a client
// sends over the websocket besides auth and (un)subscribing, be it the
// message form of a UI action or anything else, it gets an error and the
// database does not change; the same action sent as its HTTP request
// (POST, PATCH, PUT or DELETE) does change it. A GET of any route changes
// nothing. Meanwhile a client that subscribed once is sent the build's
// status changes and every line as they happen, without asking again.
func TestUIProtocolSelectionProperty(t *testing.T) {
	testenv.Checks(t, 25)
	e := newEnv(t, false, nil)
	var gets []string
	for _, r := range e.srv.app.GetRoutes(true) {
		if r.Method == http.MethodGet && r.Path != "/ws" && !slices.Contains(gets, r.Path) {
			gets = append(gets, r.Path)
		}
	}
	n := 0
	rapid.Check(t, func(rt *rapid.T) {
		n++
		name := "proto" + strconv.Itoa(n)
		p := e.project(name)
		b := e.storedBuild(p)
		e.call("PUT", "/api/projects/"+name+"/env/SHOWN", map[string]string{"value": "v"}, http.StatusCreated, nil)
		actions := protocolActions(t, name, n)
		action := rapid.SampledFrom(actions).Draw(rt, "action")

		wc := e.connect()
		wc.subscribe(b.ID, 0)
		if m := wc.next(10 * time.Second); m.Type != "status" || m.Status != "queued" {
			rt.Fatalf("on subscribe: %+v", m)
		}
		before := e.dbDigest()
		tries := rapid.SliceOfN(rapid.OneOf(
			rapid.Just(action.ws),
			rapid.Custom(func(rt *rapid.T) map[string]any {
				m := map[string]any{"type": rapid.OneOf(
					rapid.SampledFrom([]string{"activate", "rollback", "redeploy", "rebuild", "cancel_build", "delete_env", "remove_domain", "logout", "", "AUTH", "Subscribe_build"}),
					rapid.StringMatching(`[a-z_]{1,16}`),
				).Filter(func(s string) bool { return s != "auth" && s != "subscribe_build" && s != "unsubscribe_build" }).Draw(rt, "type")}
				m["build_id"], m["project"] = b.ID, name
				return m
			}),
		), 1, 4).Draw(rt, "websocket messages")
		for _, m := range tries {
			wc.send(m)
			if got := wc.next(10 * time.Second); got.Type != "error" || !strings.Contains(got.Error, "unknown message type") {
				rt.Fatalf("sent %v over the websocket: got %+v, want an error", m, got)
			}
		}
		if after := e.dbDigest(); after != before {
			rt.Fatalf("websocket messages %v changed the database:\n%s\nwant\n%s", tries, after, before)
		}

		route := rapid.SampledFrom(gets).Draw(rt, "GET route")
		path := strings.NewReplacer(":name", name, ":id", strconv.FormatInt(b.ID, 10), ":key", "SHOWN", ":file", "app.css").Replace(route)
		if code, data, _ := e.request("GET", path, e.token, nil, "Cookie", sessionCookie+"="+e.token); code >= 500 {
			rt.Fatalf("GET %s: %d %s", path, code, data)
		}
		if after := e.dbDigest(); after != before {
			rt.Fatalf("GET %s changed the database", path)
		}

		// Live data: the client sends nothing more, and is told.
		lines := rapid.IntRange(0, 20).Draw(rt, "lines")
		status := rapid.SampledFrom([]schema.BuildStatus{schema.BuildSucceeded, schema.BuildFailed, schema.BuildCanceled}).Draw(rt, "status")
		want := make([]string, lines)
		for i := range want {
			want[i] = "line " + strconv.Itoa(i+1)
		}
		publish(e, b.ID, want, status)
		if lines > 0 {
			if m := wc.next(10 * time.Second); m.Type != "status" || m.Status != "running" {
				rt.Fatalf("before the first line: %+v, want running", m)
			}
		}
		got, final, dropped := wc.collect(b.ID, 30*time.Second)
		if final != string(status) || dropped != 0 {
			rt.Fatalf("final %q, dropped %d; want %q", final, dropped, status)
		}
		checkLines(rt, got, want, 0)

		before = e.dbDigest()
		if code, data, _ := e.request(action.method, action.path, e.token, action.body); code < 200 || code > 299 {
			rt.Fatalf("%s %s: %d %s", action.method, action.path, code, data)
		}
		if e.dbDigest() == before {
			rt.Fatalf("%s %s changed nothing", action.method, action.path)
		}
	})
}

// dropConn ends a websocket connection from the client's side: with a close
// message, or by cutting the TCP connection as a lost network does.
func dropConn(wc *wsClient, abrupt bool) {
	if !abrupt {
		_ = wc.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ""), time.Now().Add(time.Second))
	}
	_ = wc.c.NetConn().Close()
}

// TestWSConnectionResilienceProperty is the seed's Property 26 (connection
// resilience): for any number of lines, any part of them published before
// the client first subscribes, and any points at which the client's
// connection drops (cleanly or not), a client that reconnects and
// resubscribes with after_seq of the last line it saw receives every line
// exactly once, in order, and then the final status. The broker also cuts
// each build's first follower off after a few lines (cutOff), as it does to
// one that falls behind.
func TestWSConnectionResilienceProperty(t *testing.T) {
	testenv.Checks(t, 100)
	e := newEnv(t, false, func(l Logs) Logs { return &cutOff{Logs: l, after: 5, cut: map[int64]bool{}} })
	p := e.project("resilient")
	rapid.Check(t, func(rt *rapid.T) {
		b := e.storedBuild(p)
		n := rapid.IntRange(0, 300).Draw(rt, "lines")
		pre := rapid.IntRange(0, n).Draw(rt, "published before subscribing")
		drops := rapid.SliceOfNDistinct(rapid.IntRange(0, n), 0, 5, rapid.ID).Draw(rt, "drop after this many lines")
		slices.Sort(drops)
		status := rapid.SampledFrom([]schema.BuildStatus{schema.BuildSucceeded, schema.BuildFailed, schema.BuildCanceled}).Draw(rt, "status")
		want := make([]string, n)
		for i := range want {
			want[i] = fmt.Sprintf("line %d of build %d", i+1, b.ID)
		}
		e.broker.Begin(b.ID)
		for _, l := range want[:pre] {
			e.broker.Publish(b.ID, l)
		}
		// The rest is published while the client comes and goes.
		published := make(chan error, 1)
		publishRest := func() {
			go func() {
				for _, l := range want[pre:] {
					e.broker.Publish(b.ID, l)
				}
				e.broker.Flush(b.ID)
				err := e.store.FinishBuild(context.Background(), b.ID, status, "")
				e.broker.Finish(b.ID, status)
				published <- err
			}()
		}

		var got []wsMsg
		last, final, started := 0, "", false
		wc := e.connect()
		wc.subscribe(b.ID, 0)
		for final == "" {
			if len(drops) > 0 && len(got) == drops[0] {
				drops = drops[1:]
				dropConn(wc, rapid.Bool().Draw(rt, "abrupt"))
				wc = e.connect()
				wc.subscribe(b.ID, last)
				continue
			}
			m, err := wc.read(30 * time.Second)
			if err != nil {
				rt.Fatalf("after %d lines: %v", len(got), err)
			}
			if m.BuildID != b.ID {
				continue
			}
			switch m.Type {
			case "status":
				if !started {
					started = true
					publishRest()
				}
				if m.Final {
					final = m.Status
				}
			case "log":
				if m.Seq != last+1 {
					rt.Fatalf("line seq %d after %d", m.Seq, last)
				}
				got = append(got, m)
				last = m.Seq
			default:
				rt.Fatalf("got %+v", m)
			}
		}
		if err := <-published; err != nil {
			rt.Fatalf("finish build: %v", err)
		}
		if final != string(status) {
			rt.Fatalf("final status %q, want %q", final, status)
		}
		checkLines(rt, got, want, 0)
	})
}
