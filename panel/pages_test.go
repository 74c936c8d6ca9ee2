package panel

import (
	"context"
	"errors"
	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"minivercel/creds"
	"minivercel/deploy/deploytest"
	"minivercel/edge"
	"minivercel/internal/testenv"
	"minivercel/pipeline"
	"minivercel/schema"
	"minivercel/secret"
)

// pageEnv is a panel on a fresh database with a real (non-working) build
// queue and a real edge, and one admin with a password.
type pageEnv struct {
	fixture
	srv   *Server
	edge  *edge.Server
	key   []byte // the JWT key
	queue *pipeline.Queue
	vars  *secret.Vars
}

const testPassword = "correct horse battery"

func newPageEnv(t *testing.T) *pageEnv {
	t.Helper()
	ctx := context.Background()
	st := deploytest.New(t, deploytest.Options{BaseDomain: "localhost"})
	store, vars, q, e := st.Store, st.Vars, st.Queue, st.Edge
	srv, key := newTestServerWith(t, Config{}, store, st.Service, q, e)
	admin := st.Admin
	hash, err := creds.HashPassword(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.SetPasswordHash(ctx, admin.ID, hash); err != nil {
		t.Fatal(err)
	}
	return &pageEnv{fixture: fixture{t: t, store: store, admin: admin}, srv: srv, edge: e, key: key, queue: q, vars: vars}
}

// browser keeps cookies between requests, as a browser would.
type browser struct {
	t       testing.TB
	srv     *Server
	cookies map[string]string
	origin  string // sent as Origin on POSTs
}

type response struct {
	code     int
	body     string
	location string
	header   http.Header
}

func (e *pageEnv) browser() *browser {
	return &browser{t: e.t, srv: e.srv, cookies: map[string]string{}, origin: "http://example.com"}
}

// loggedIn returns a browser with a session.
func (e *pageEnv) loggedIn() *browser {
	b := e.browser()
	r := b.post("/login", url.Values{"username": {"admin"}, "password": {testPassword}})
	if r.code != http.StatusSeeOther || b.cookies[sessionCookie] == "" {
		e.t.Fatalf("login = %d %q, cookies %v", r.code, r.body, b.cookies)
	}
	return b
}

func (b *browser) do(req *http.Request) response {
	b.t.Helper()
	for k, v := range b.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	resp, err := b.srv.app.Test(req, -1)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c.Value
		}
	}
	return response{code: resp.StatusCode, body: string(body), location: resp.Header.Get("Location"), header: resp.Header}
}

func (b *browser) get(path string) response {
	b.t.Helper()
	return b.do(httptest.NewRequest(http.MethodGet, path, nil))
}

func (b *browser) post(path string, form url.Values) response {
	b.t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if b.origin != "" {
		req.Header.Set("Origin", b.origin)
	}
	return b.do(req)
}

// follow is a POST followed by the GET of its redirect, as a browser does.
func (b *browser) follow(path string, form url.Values) response {
	b.t.Helper()
	r := b.post(path, form)
	if r.code != http.StatusSeeOther {
		b.t.Fatalf("POST %s = %d, want 303:\n%s", path, r.code, r.body)
	}
	return b.get(r.location)
}

func mustContain(t *testing.T, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("page lacks %q:\n%s", w, body)
		}
	}
}

// build records a finished build of project; succeeded builds get an
// artifact so they can be activated.
func (e *pageEnv) build(p schema.Project, branch, msg string, status schema.BuildStatus) schema.Build {
	e.t.Helper()
	ctx := context.Background()
	b, err := e.store.CreateBuild(ctx, schema.NewBuild{ProjectID: p.ID, Branch: branch,
		CommitSHA: strings.Repeat(strconv.Itoa(int(p.ID)%10), 40), CommitMessage: msg})
	if err != nil {
		e.t.Fatal(err)
	}
	if status == schema.BuildQueued {
		return b
	}
	if err := e.store.StartBuild(ctx, b.ID); err != nil {
		e.t.Fatal(err)
	}
	if status == schema.BuildSucceeded {
		if err := e.store.SetBuildArtifact(ctx, b.ID, schema.Artifact{Kind: "static", Path: "/nonexistent.tar.gz", SHA256: "00"}); err != nil {
			e.t.Fatal(err)
		}
	}
	if status.Done() {
		reason := ""
		if status == schema.BuildFailed {
			reason = "build failed: npm run build exited with 1"
		}
		if err := e.store.FinishBuild(ctx, b.ID, status, reason); err != nil {
			e.t.Fatal(err)
		}
	}
	b, err = e.store.BuildByID(ctx, b.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// TestPagesRequireSession: every page but /login sends a browser without a
// session to the login page, remembering where it was going.
func TestPagesRequireSession(t *testing.T) {
	t.Parallel()
	env := newPageEnv(t)
	b := env.browser()
	for _, path := range []string{"/", "/projects/blog", "/projects/blog/settings", "/builds/1", "/keys", "/nodes"} {
		t.Run(path, func(t *testing.T) {
			r := b.get(path)
			want := "/login?next=" + url.QueryEscape(path)
			if r.code != http.StatusSeeOther || r.location != want {
				t.Errorf("GET %s = %d to %q, want 303 to %q", path, r.code, r.location, want)
			}
		})
	}
	if r := b.post("/projects/blog/delete", url.Values{"confirm": {"blog"}}); r.code != http.StatusSeeOther || !strings.HasPrefix(r.location, "/login") {
		t.Errorf("POST without session = %d to %q", r.code, r.location)
	}
	r := b.get("/login")
	if r.code != http.StatusOK {
		t.Fatalf("login page = %d", r.code)
	}
	mustContain(t, r.body, `name="username"`, `name="password"`, `type="password"`)
	if csp := r.header.Get("Content-Security-Policy"); csp != contentSecurityPolicy {
		t.Errorf("CSP = %q", csp)
	}
}

// TestLogin: wrong credentials re-render the form with one message for both
// unknown users and wrong passwords; right ones set the session cookie and go
// to next, but only to a local path.
func TestLogin(t *testing.T) {
	t.Parallel()
	env := newPageEnv(t)
	for _, tc := range []struct{ name, user, password string }{
		{"wrong password", "admin", "not the password"},
		{"unknown user", "nobody", testPassword},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := env.browser()
			r := b.post("/login", url.Values{"username": {tc.user}, "password": {tc.password}, "next": {"/keys"}})
			if r.code != http.StatusUnauthorized {
				t.Fatalf("code = %d", r.code)
			}
			mustContain(t, r.body, "Invalid username or password", `value="/keys"`)
			if b.cookies[sessionCookie] != "" {
				t.Error("a refused login set a session")
			}
		})
	}
	for _, tc := range []struct{ next, want string }{
		{"/keys", "/keys"},
		{"/projects/blog?tab=1", "/projects/blog?tab=1"},
		{"", "/"},
		{"//evil.example/x", "/"},
		{"/\\evil.example", "/"},
		{"https://evil.example/", "/"},
		{"javascript:alert(1)", "/"},
	} {
		t.Run("next "+tc.next, func(t *testing.T) {
			b := env.browser()
			r := b.post("/login", url.Values{"username": {"admin"}, "password": {testPassword}, "next": {tc.next}})
			if r.code != http.StatusSeeOther || r.location != tc.want {
				t.Fatalf("login = %d to %q, want 303 to %q", r.code, r.location, tc.want)
			}
			if b.cookies[sessionCookie] == "" {
				t.Fatal("no session cookie")
			}
			if r := b.get("/"); r.code != http.StatusOK {
				t.Errorf("dashboard after login = %d", r.code)
			}
		})
	}
	t.Run("logout", func(t *testing.T) {
		b := env.loggedIn()
		r := b.follow("/logout", nil)
		mustContain(t, r.body, "You are signed out")
		if r := b.get("/"); r.code != http.StatusSeeOther {
			t.Errorf("dashboard after logout = %d", r.code)
		}
	})
}

// TestDashboard: the empty state explains how to deploy; a project shows its
// status, live build, URL and health.
func TestDashboard(t *testing.T) {
	t.Parallel()
	env := newPageEnv(t)
	b := env.loggedIn()
	r := b.get("/")
	mustContain(t, r.body, "Deploy your first project", "git remote add minivercel ssh://git@example.com:2222/my-app.git",
		"git push minivercel main")

	p := env.project("blog")
	live := env.build(p, "main", "first post", schema.BuildSucceeded)
	if _, err := env.store.RecordActivation(context.Background(), p.ID, live.ID); err != nil {
		t.Fatal(err)
	}
	env.build(p, "main", "broken <b>markup</b>", schema.BuildFailed)
	env.project("empty")
	r = b.get("/")
	mustContain(t, r.body, `href="/projects/blog"`, "http://blog.localhost/", "blog.localhost", `data-status="failed"`,
		"#"+strconv.FormatInt(live.ID, 10), "broken &lt;b&gt;markup&lt;/b&gt;", "nothing live yet", "Not deployed")
	if strings.Contains(r.body, "<b>markup") {
		t.Error("commit message not escaped")
	}
}

// TestProjectPage: builds with status, commit and their own URL; the live one
// marked; older succeeded builds offer a rollback, newer ones an activation.
func TestProjectPage(t *testing.T) {
	t.Parallel()
	env := newPageEnv(t)
	b := env.loggedIn()
	p := env.project("blog")
	old := env.build(p, "main", "v1", schema.BuildSucceeded)
	live := env.build(p, "main", "v2", schema.BuildSucceeded)
	failed := env.build(p, "feature", "v3 broken", schema.BuildFailed)
	newer := env.build(p, "feature", "v4", schema.BuildSucceeded)
	for _, id := range []int64{old.ID, live.ID} {
		if _, err := env.store.RecordActivation(context.Background(), p.ID, id); err != nil {
			t.Fatal(err)
		}
	}
	r := b.get("/projects/blog")
	if r.code != http.StatusOK {
		t.Fatalf("project page = %d", r.code)
	}
	mustContain(t, r.body, "http://blog--"+old.Slug+".localhost/", "Roll back", "Activate", `pill pill-live">Live`,
		"v3 broken", `data-status="failed"`, `value="feature"`, "superseded", `action="/projects/blog/activate"`,
		`name="build_id" value="`+strconv.FormatInt(old.ID, 10)+`"`, `name="build_id" value="`+strconv.FormatInt(newer.ID, 10)+`"`)
	if strings.Contains(r.body, `name="build_id" value="`+strconv.FormatInt(failed.ID, 10)+`"`) {
		t.Error("a failed build offers activation")
	}
	if strings.Contains(r.body, `name="build_id" value="`+strconv.FormatInt(live.ID, 10)+`"`) {
		t.Error("the live build offers activation")
	}
	if r := b.get("/projects/nope"); r.code != http.StatusNotFound || !strings.Contains(r.body, "No project named &#34;nope&#34;.") {
		t.Errorf("unknown project = %d\n%s", r.code, r.body)
	}
}

// TestActivateRefused: the queue's refusal (a failed build) comes back as a
// message on the project page; a build of another project is refused before.
func TestActivateRefused(t *testing.T) {
	t.Parallel()
	env := newPageEnv(t)
	b := env.loggedIn()
	p := env.project("blog")
	failed := env.build(p, "main", "broken", schema.BuildFailed)
	other := env.build(env.project("other"), "main", "x", schema.BuildSucceeded)
	r := b.follow("/projects/blog/activate", url.Values{"build_id": {strconv.FormatInt(failed.ID, 10)}})
	mustContain(t, r.body, "Build "+strconv.FormatInt(failed.ID, 10)+" is failed: only a succeeded build can be activated.")
	r = b.follow("/projects/blog/activate", url.Values{"build_id": {strconv.FormatInt(other.ID, 10)}})
	mustContain(t, r.body, "Project blog has no build "+strconv.FormatInt(other.ID, 10)+".")
}

// TestBuildPage: stored lines are in the page, escaped, with the last seq for
// the live script; a running build has a cancel button, and cancelling a
// queued build through the real queue marks it canceled.
func TestBuildPage(t *testing.T) {
	t.Parallel()
	env := newPageEnv(t)
	b := env.loggedIn()
	p := env.project("blog")
	bl := env.build(p, "main", "add page", schema.BuildRunning)
	if err := env.store.AppendLogLines(context.Background(), bl.ID, 1,
		[]string{"-----> Building", "<script>alert(1)</script>", "\x1b[32mgreen\x1b[0m"}); err != nil {
		t.Fatal(err)
	}
	r := b.get("/builds/" + strconv.FormatInt(bl.ID, 10))
	mustContain(t, r.body, `data-last-seq="3"`, `data-live="true"`, "&lt;script&gt;alert(1)&lt;/script&gt;",
		`class="ln ln-head" data-seq="1"`, ">green<", "Cancel build", `data-status="running"`, "add page")
	if strings.Contains(r.body, "<script>alert(1)") {
		t.Error("log line not escaped")
	}

	queued, err := env.queue.Enqueue(context.Background(),
		schema.NewBuild{ProjectID: p.ID, Branch: "main", CommitSHA: strings.Repeat("a", 40)})
	if err != nil {
		t.Fatal(err)
	}
	id := strconv.FormatInt(queued.ID, 10)
	r = b.follow("/builds/"+id+"/cancel", nil)
	mustContain(t, r.body, "is being canceled", `data-status="canceled"`, `data-live="false"`)
	r = b.follow("/builds/"+id+"/cancel", nil)
	mustContain(t, r.body, "already finished")

	done := env.build(p, "main", "done", schema.BuildSucceeded)
	r = b.get("/builds/" + strconv.FormatInt(done.ID, 10))
	mustContain(t, r.body, `data-live="false"`, "http://blog--"+done.Slug+".localhost/", "This build printed nothing")
	if strings.Contains(r.body, "Cancel build") {
		t.Error("a finished build offers cancel")
	}
	failed := env.build(p, "main", "broken", schema.BuildFailed)
	r = b.get("/builds/" + strconv.FormatInt(failed.ID, 10))
	mustContain(t, r.body, "Build failed:", "npm run build exited with 1", `data-status="failed"`)
	if r := b.get("/builds/999999"); r.code != http.StatusNotFound {
		t.Errorf("unknown build = %d", r.code)
	}
}

// TestCrossSiteRefused: a POST from another origin is refused before it does
// anything, even with a valid session cookie.
func TestCrossSiteRefused(t *testing.T) {
	t.Parallel()
	env := newPageEnv(t)
	b := env.loggedIn()
	env.project("blog")
	b.origin = "http://evil.example"
	r := b.post("/projects/blog/delete", url.Values{"confirm": {"blog"}})
	if r.code != http.StatusForbidden || !strings.Contains(r.body, "cross-site request refused") {
		t.Fatalf("cross-site delete = %d\n%s", r.code, r.body)
	}
	if _, err := env.store.ProjectByName(context.Background(), "blog"); err != nil {
		t.Fatalf("project gone after a refused request: %v", err)
	}
	if csp := r.header.Get("Content-Security-Policy"); csp == "" {
		t.Error("error page without CSP")
	}
	// A deployed app is same-site with the panel (a subdomain), and a
	// prefix match of the host would admit look-alike hosts.
	for _, origin := range []string{"http://blog.example.com", "http://example.com.evil.net", "http://example.comevil.net", "null", ""} {
		t.Run("origin "+origin, func(t *testing.T) {
			b.origin = origin
			r := b.post("/projects/blog/delete", url.Values{"confirm": {"blog"}})
			if r.code != http.StatusForbidden {
				t.Errorf("delete from %q = %d", origin, r.code)
			}
		})
	}
	if _, err := env.store.ProjectByName(context.Background(), "blog"); err != nil {
		t.Fatalf("project gone after refused requests: %v", err)
	}
	t.Run("referer of the panel", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodPost, "/projects/blog/redeploy", strings.NewReader("branch=main"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Referer", "http://example.com/projects/blog")
		b.origin = ""
		if r := b.do(req); r.code != http.StatusSeeOther {
			t.Errorf("same-origin POST with only a Referer = %d", r.code)
		}
	})
}

// TestLoginLimit: after too many failures from one address the login page
// refuses further tries for a while, with a clear message.
func TestLoginLimit(t *testing.T) {
	t.Parallel()
	env := newPageEnv(t)
	b := env.browser()
	for i := 0; i < loginFailuresAllowed; i++ {
		if r := b.post("/login", url.Values{"username": {"admin"}, "password": {"guess"}}); r.code != http.StatusUnauthorized {
			t.Fatalf("try %d = %d", i, r.code)
		}
	}
	r := b.post("/login", url.Values{"username": {"admin"}, "password": {testPassword}})
	if r.code != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("try after the limit = %d", r.code)
	}
	mustContain(t, r.body, "Too many failed sign-ins")
}

// TestSettings: bad values come back with a message next to each field and
// the input as typed; good ones are stored.
func TestSettings(t *testing.T) {
	t.Parallel()
	env := newPageEnv(t)
	b := env.loggedIn()
	env.project("blog")
	r := b.get("/projects/blog/settings")
	mustContain(t, r.body, `name="production_branch"`, `value="main"`, "blog.localhost", "Point the domain’s DNS at this server", "Delete project")

	bad := url.Values{"production_branch": {"ma in"}, "framework": {"rails"}, "output_dir": {"../etc"},
		"health_path": {"healthz"}, "health_tries": {"0"}, "health_interval": {"1h"}, "start_command": {"node x.js"},
		"memory_limit": {"lots"}, "pids_limit": {"2"}}
	r = b.post("/projects/blog/settings", bad)
	if r.code != http.StatusUnprocessableEntity {
		t.Fatalf("bad settings = %d", r.code)
	}
	mustContain(t, r.body, `id="production_branch-err"`, `id="framework-err"`, `id="output_dir-err"`,
		`id="health_path-err"`, `id="health_tries-err"`, `id="health_interval-err"`, `value="node x.js"`, `aria-invalid="true"`,
		`id="memory_limit-err"`, `id="pids_limit-err"`)
	if p, _ := env.store.ProjectByName(context.Background(), "blog"); p.StartCommand != "" {
		t.Error("refused settings were stored")
	}

	good := url.Values{"production_branch": {"release"}, "framework": {"node"}, "start_command": {"node server.js"},
		"health_path": {"/healthz"}, "health_tries": {"5"}, "health_interval": {"2s"}, "memory_limit": {"512M"}, "pids_limit": {"128"}}
	r = b.follow("/projects/blog/settings", good)
	mustContain(t, r.body, "Settings saved", `value="release"`, `value="node server.js"`, `value="2s"`, `value="512MiB"`, `value="128"`)
	p, _ := env.store.ProjectByName(context.Background(), "blog")
	if p.ProductionBranch != "release" || p.Framework != "node" || p.HealthTries != 5 || p.HealthIntervalMS != 2000 || p.HealthPath != "/healthz" ||
		p.MemoryLimit != 512<<20 || p.PidsLimit != 128 {
		t.Errorf("stored %+v", p.Settings())
	}
}

// TestDeleteProject: the typed name must match; then the project is gone.
func TestDeleteProject(t *testing.T) {
	t.Parallel()
	env := newPageEnv(t)
	b := env.loggedIn()
	env.project("blog")
	r := b.follow("/projects/blog/delete", url.Values{"confirm": {"blo"}})
	mustContain(t, r.body, "was not deleted")
	r = b.follow("/projects/blog/delete", url.Values{"confirm": {"blog"}})
	mustContain(t, r.body, "Project blog was deleted", "Deploy your first project")
	if _, err := env.store.ProjectByName(context.Background(), "blog"); err == nil {
		t.Error("project still exists")
	}
}

func newPublicKey(t *testing.T, comment string) (authorized, fingerprint string) {
	k := testenv.NewSSHKey(t, comment)
	return k.Authorized, k.Fingerprint
}

// newAuthorizedKey is the authorized_keys line of a fresh key.
func newAuthorizedKey(t *testing.T, comment string) string {
	key, _ := newPublicKey(t, comment)
	return key
}

// TestKeys: the user's own keys are listed, added with clear errors, and
// removed; another user's key cannot be removed.
func TestKeys(t *testing.T) {
	t.Parallel()
	env := newPageEnv(t)
	b := env.loggedIn()
	r := b.get("/keys")
	mustContain(t, r.body, "You have no keys yet")

	key, fp := newPublicKey(t, "me@laptop")
	r = b.follow("/keys", url.Values{"public_key": {key}})
	// html/template writes "+" as "&#43;".
	mustContain(t, r.body, "Key added", strings.ReplaceAll(fp, "+", "&#43;"), "me@laptop")

	for _, tc := range []struct{ name, key, want string }{
		{"empty", "", "Paste a public key"},
		{"garbage", "ssh-ed25519 not-base64", "This is not an SSH public key"},
		{"duplicate", key, "already registered"},
		{"private", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blb\n-----END OPENSSH PRIVATE KEY-----", "That is a private key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := b.post("/keys", url.Values{"public_key": {tc.key}, "label": {"x"}})
			if r.code != http.StatusUnprocessableEntity {
				t.Fatalf("code = %d", r.code)
			}
			mustContain(t, r.body, tc.want)
			if strings.Contains(r.body, "b3Blb") {
				t.Error("private key echoed back")
			}
		})
	}

	other, err := env.store.CreateUser(context.Background(), "other", false)
	if err != nil {
		t.Fatal(err)
	}
	okey, ofp := newPublicKey(t, "other")
	ok, err := env.store.AddKey(context.Background(), other.ID, "other", ofp, okey)
	if err != nil {
		t.Fatal(err)
	}
	if r := b.get("/keys"); strings.Contains(r.body, strings.ReplaceAll(ofp, "+", "&#43;")) {
		t.Error("another user's key is listed")
	}
	// A user who is no administrator learns nothing of another's key: it
	// is as missing as a key that never was. (An administrator may remove
	// any key, from the pages as from the API and the CLI.)
	member := env.loggedInAs("member", false)
	for _, id := range []string{strconv.FormatInt(ok.ID, 10), "999999"} {
		r := member.follow("/keys/"+id+"/delete", nil)
		mustContain(t, r.body, "No key with id or fingerprint &#34;"+id+"&#34;.")
	}
	if _, err := env.store.KeyByID(context.Background(), ok.ID); err != nil {
		t.Errorf("another user's key is gone: %v", err)
	}

	mine, err := env.store.KeysOfUser(context.Background(), env.admin.ID)
	if err != nil || len(mine) != 1 {
		t.Fatalf("keys = %v, %v", mine, err)
	}
	r = b.follow("/keys/"+strconv.FormatInt(mine[0].ID, 10)+"/delete", nil)
	mustContain(t, r.body, "removed", "You have no keys yet")
}

// TestErrorPageAndAssets: unknown paths get the styled 404 page; assets are
// served with their types and cached forever under their hashed URL.
func TestErrorPageAndAssets(t *testing.T) {
	t.Parallel()
	env := newPageEnv(t)
	b := env.loggedIn()
	r := b.get("/no/such/page")
	if r.code != http.StatusNotFound {
		t.Fatalf("code = %d", r.code)
	}
	mustContain(t, r.body, "Page not found", "There is nothing at this address", assetURL("app.css"))
	for _, name := range []string{"app.css", "app.js", "logo.svg"} {
		r := b.get(assetURL(name))
		if r.code != http.StatusOK || !strings.Contains(r.header.Get("Cache-Control"), "immutable") {
			t.Errorf("%s = %d %q", name, r.code, r.header.Get("Cache-Control"))
		}
		want, _ := os.ReadFile("static/" + name)
		if r.body != string(want) {
			t.Errorf("%s body differs", name)
		}
	}
	if r := b.get("/static/app.css"); !strings.HasPrefix(r.header.Get("Content-Type"), "text/css") || r.header.Get("Cache-Control") != "no-cache" {
		t.Errorf("unversioned css: %q %q", r.header.Get("Content-Type"), r.header.Get("Cache-Control"))
	}
}

// TestActivateAndRedeploy: with a working queue and edge, the Roll back form
// makes an older build live again, and Redeploy starts a build of the branch
// and leads to its page.
func TestActivateAndRedeploy(t *testing.T) {
	t.Parallel()
	env := newEnv(t, true, nil)
	b := &browser{t: t, srv: env.srv, cookies: map[string]string{sessionCookie: env.token}, origin: "http://example.com"}
	env.project("site")
	v1 := env.realBuild("site", "main", "version one")
	v2 := env.realBuild("site", "main", "version two")
	p, err := env.store.ProjectByName(context.Background(), "site")
	if err != nil {
		t.Fatal(err)
	}
	if live, err := env.store.ActiveBuild(context.Background(), p.ID); err != nil || live.ID != v2.ID {
		t.Fatalf("live before rollback = %d, %v; want %d", live.ID, err, v2.ID)
	}
	r := b.get("/projects/site")
	mustContain(t, r.body, "Roll back", `name="build_id" value="`+strconv.FormatInt(v1.ID, 10)+`"`)

	r = b.follow("/projects/site/activate", url.Values{"build_id": {strconv.FormatInt(v1.ID, 10)}})
	mustContain(t, r.body, "Build #"+strconv.FormatInt(v1.ID, 10)+" is live")
	if live, err := env.store.ActiveBuild(context.Background(), p.ID); err != nil || live.ID != v1.ID {
		t.Fatalf("live after rollback = %d, %v; want %d", live.ID, err, v1.ID)
	}
	if id, ok := env.edge.Active("site"); !ok || id != v1.ID {
		t.Errorf("edge serves %d, want %d", id, v1.ID)
	}

	r = b.post("/projects/site/redeploy", url.Values{"branch": {"main"}})
	if r.code != http.StatusSeeOther || !strings.HasPrefix(r.location, "/builds/") {
		t.Fatalf("redeploy = %d to %q", r.code, r.location)
	}
	id, _ := strconv.ParseInt(strings.TrimPrefix(r.location, "/builds/"), 10, 64)
	env.waitBuild(id)
	r = b.get(r.location)
	mustContain(t, r.body, "Build #"+strconv.FormatInt(id, 10), `data-status="succeeded"`, "-----&gt;")

	r = b.follow("/projects/site/redeploy", url.Values{"branch": {"nope"}})
	mustContain(t, r.body, "Project site has no branch or commit &#34;nope&#34;: push it first.")
}

// loggedInAs returns a browser with a session of a new user.
func (e *pageEnv) loggedInAs(name string, admin bool) *browser {
	e.t.Helper()
	ctx := context.Background()
	u, err := e.store.CreateUser(ctx, name, admin)
	if err != nil {
		e.t.Fatal(err)
	}
	hash, err := creds.HashPassword(testPassword)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.SetPasswordHash(ctx, u.ID, hash); err != nil {
		e.t.Fatal(err)
	}
	b := e.browser()
	if r := b.post("/login", url.Values{"username": {name}, "password": {testPassword}}); r.code != http.StatusSeeOther {
		e.t.Fatalf("login as %s = %d", name, r.code)
	}
	return b
}

// TestSettingsEnv: the settings page lists variables masked, adds, replaces
// and deletes them with messages next to the field at fault, offers Reveal to
// administrators only, and never writes a value into the HTML, not even a
// refused one.
func TestSettingsEnv(t *testing.T) {
	t.Parallel()
	env := newPageEnv(t)
	b := env.loggedIn()
	p := env.project("blog")
	ctx := context.Background()
	const token = "tok_live_abcdef123456"

	r := b.get("/projects/blog/settings")
	mustContain(t, r.body, `id="env"`, "No variables yet", `action="/projects/blog/env"`, `name="value"`,
		`<option value="production">`, "Nothing is live yet")
	if strings.Contains(r.body, `action="/projects/blog/env/redeploy"`) {
		t.Error("a project with nothing live offers a redeploy")
	}

	r = b.follow("/projects/blog/env", url.Values{"key": {"API_TOKEN"}, "value": {token}, "target": {"production"}})
	mustContain(t, r.body, "API_TOKEN (production) was added", "applies from the next deploy", `<code class="env-key">API_TOKEN</code>`,
		`data-masked="tok_••••••••">tok_••••••••</code>`,
		`data-reveal="/api/projects/blog/env/API_TOKEN/value?target=production"`, `id="edit-value-API_TOKEN-production"`,
		`action="/projects/blog/env/delete"`, `data-confirm="Delete API_TOKEN (production) from blog?`)
	if strings.Contains(r.body, token) || strings.Contains(r.body, "abcdef123456") {
		t.Fatal("the settings page holds the value")
	}
	if got, err := env.vars.Reveal(ctx, p.ID, "API_TOKEN", "production"); err != nil || got != token {
		t.Fatalf("stored %q, %v", got, err)
	}

	t.Run("refused add", func(t *testing.T) {
		for _, tc := range []struct {
			name, key, value, target, field, want string
		}{
			{"bad key", "1BAD", "secret-value-one", "all", "env-key-err", "use letters, digits and _"},
			{"reserved key", "PORT", "secret-value-two", "all", "env-key-err", "reserved"},
			{"bad target", "GOOD", "secret-value-three", "staging", "env-target-err", "want production, preview or all"},
			{"NUL value", "GOOD", "secret-value\x00four", "all", "env-value-err", "Enter the value again"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := b.post("/projects/blog/env", url.Values{"key": {tc.key}, "value": {tc.value}, "target": {tc.target}})
				if r.code != http.StatusUnprocessableEntity {
					t.Fatalf("code = %d", r.code)
				}
				mustContain(t, r.body, `id="`+tc.field+`"`, tc.want, `aria-invalid="true"`, "The variable was not saved")
				if strings.Contains(r.body, "secret-value") {
					t.Error("a refused value came back into the page")
				}
				if tc.field == "env-key-err" {
					mustContain(t, r.body, `id="env-key" name="key" type="text" value="`+tc.key+`"`)
				}
			})
		}
		if vs, _ := env.vars.List(ctx, p.ID); len(vs) != 1 {
			t.Fatalf("refused forms stored variables: %+v", vs)
		}
	})

	t.Run("edit", func(t *testing.T) {
		row := url.Values{"key": {"API_TOKEN"}, "target": {"production"}, "row": {"API_TOKEN-production"}}
		row.Set("value", strings.Repeat("s", schema.MaxEnvValueBytes+1))
		r := b.post("/projects/blog/env", row)
		if r.code != http.StatusUnprocessableEntity {
			t.Fatalf("too long a value = %d", r.code)
		}
		mustContain(t, r.body, `<details class="env-edit" open>`, `id="edit-value-API_TOKEN-production-err"`, "at most 65536")
		if strings.Contains(r.body, "The variable was not saved") {
			t.Error("an edit row's error is shown on the add form")
		}
		// Browsers send a textarea's line breaks as CRLF.
		row.Set("value", "line one\r\nline two")
		r = b.follow("/projects/blog/env", row)
		mustContain(t, r.body, "API_TOKEN (production) was updated")
		if got, _ := env.vars.Reveal(ctx, p.ID, "API_TOKEN", "production"); got != "line one\nline two" {
			t.Fatalf("edited value %q", got)
		}
		if strings.Contains(r.body, "line one") {
			t.Error("the edited value is in the page")
		}
	})

	t.Run("not an administrator", func(t *testing.T) {
		dev := env.loggedInAs("dev", false)
		r := dev.get("/projects/blog/settings")
		mustContain(t, r.body, "API_TOKEN", `data-masked="line••••••••"`, "Add a variable")
		if strings.Contains(r.body, "data-reveal") {
			t.Error("a user who is not an administrator is offered Reveal")
		}
	})

	t.Run("cross-site", func(t *testing.T) {
		evil := &browser{t: t, srv: env.srv, cookies: b.cookies, origin: "http://blog.example.com"}
		for _, path := range []string{"/projects/blog/env", "/projects/blog/env/delete", "/projects/blog/env/redeploy"} {
			if r := evil.post(path, url.Values{"key": {"API_TOKEN"}, "value": {"x"}, "target": {"production"}}); r.code != http.StatusForbidden {
				t.Errorf("cross-site POST %s = %d", path, r.code)
			}
		}
	})

	t.Run("delete and redeploy without a live build", func(t *testing.T) {
		r := b.follow("/projects/blog/env/delete", url.Values{"key": {"API_TOKEN"}, "target": {"all"}})
		mustContain(t, r.body, "Project blog has no variable API_TOKEN (all).")
		r = b.follow("/projects/blog/env/delete", url.Values{"key": {"API_TOKEN"}, "target": {"production"}})
		mustContain(t, r.body, "API_TOKEN (production) was deleted", "No variables yet")
		r = b.follow("/projects/blog/env/redeploy", nil)
		mustContain(t, r.body, "Project blog has nothing live to redeploy: push or activate a build first.")
	})
}

// TestSettingsEnvRedeploy: with a live build, the settings page offers
// "Redeploy with these values", and the button activates that build again
// through the real queue and edge.
func TestSettingsEnvRedeploy(t *testing.T) {
	t.Parallel()
	env := newEnv(t, true, nil)
	b := &browser{t: t, srv: env.srv, cookies: map[string]string{sessionCookie: env.token}, origin: "http://example.com"}
	env.project("site")
	live := env.realBuild("site", "main", "static")
	id := strconv.FormatInt(live.ID, 10)
	r := b.get("/projects/site/settings")
	mustContain(t, r.body, `action="/projects/site/env/redeploy"`, "Redeploy with these values", "restart build #"+id,
		`data-confirm-title="Redeploy with these values?"`)
	p, err := env.store.ProjectByName(context.Background(), "site")
	if err != nil {
		t.Fatal(err)
	}
	before, _ := env.store.ListDeployments(context.Background(), p.ID)
	r = b.follow("/projects/site/env/redeploy", nil)
	mustContain(t, r.body, "Build #"+id+" was redeployed with the current variables")
	after, _ := env.store.ListDeployments(context.Background(), p.ID)
	if len(after) != len(before)+1 || after[0].BuildID != live.ID || after[0].Status != schema.DeploymentActive {
		t.Fatalf("deployments after redeploy %+v", after)
	}
}

// TestBrowserEnvReveal: in Chromium, an administrator's Reveal fetches the
// value from the API with the session cookie and shows it in place; a second
// click masks it again. The page as served never holds the value.
func TestBrowserEnvReveal(t *testing.T) {
	t.Parallel()
	env := newEnv(t, false, nil)
	p := env.project("blog")
	const value = "sk_live_<b>&\"quoted\"</b>"
	if _, err := env.vars.Set(context.Background(), p.ID, "STRIPE_KEY", "production", value); err != nil {
		t.Fatal(err)
	}
	ctx := newChromium(t)
	cell := `document.getElementById("val-STRIPE_KEY-production")`
	text := func() string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](cell+`.textContent`))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if err := chromedp.Do(ctx, env.signIn("/projects/blog/settings", `button[data-reveal]`)...); err != nil {
		t.Fatalf("open settings: %v", err)
	}
	if got := text(); got != "sk_l••••••••" {
		t.Fatalf("masked cell shows %q", got)
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`button[data-reveal]`)),
		chromedp.WaitVisible(chromedp.CSS(".env-value.is-revealed")),
	); err != nil {
		t.Fatalf("reveal: %v", err)
	}
	if got := text(); got != value {
		t.Fatalf("revealed %q, want %q", got, value)
	}
	// The value was set as text: its markup did not become elements.
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](cell+`.children.length`)); n != 0 {
		t.Fatalf("the revealed value became %d elements", n)
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`button[data-reveal]`)),
		chromedp.WaitNotPresent(chromedp.CSS(".env-value.is-revealed")),
	); err != nil {
		t.Fatalf("hide: %v", err)
	}
	if got := text(); got != "sk_l••••••••" {
		t.Fatalf("after the second click the cell shows %q", got)
	}
}

// TestSameOriginRefusesSandboxedPreviews: a /preview/ page on the panel's own
// host runs sandboxed, so its requests carry Origin "null" and a same-host
// Referer; the Referer must not rescue them. Sec-Fetch-Site cross-site is
// refused too.
func TestSameOriginRefusesSandboxedPreviews(t *testing.T) {
	app := fiber.New()
	app.Post("/x", sameOrigin, func(c *fiber.Ctx) error { return c.SendString("ok") })
	cases := []struct {
		name    string
		headers map[string]string
		want    int
	}{
		{"null origin with a same-host referer", map[string]string{"Origin": "null", "Referer": "http://example.test/preview/4/"}, 403},
		{"cross-site fetch metadata", map[string]string{"Origin": "http://example.test", "Sec-Fetch-Site": "same-site"}, 403},
		{"look-alike origin", map[string]string{"Origin": "http://example.test.evil.net"}, 403},
		{"same origin", map[string]string{"Origin": "http://example.test", "Sec-Fetch-Site": "same-origin"}, 200},
		{"referer only", map[string]string{"Referer": "http://example.test/keys"}, 200},
		{"neither", map[string]string{}, 403},
	}
	for _, tc := range cases {
		req := httptest.NewRequest("POST", "http://example.test/x", nil)
		for k, v := range tc.headers {
			req.Header.Set(k, v)
		}
		resp, err := app.Test(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
}

// TestSignOutEndsEverySession: after a sign-out, a session token issued
// before it (another browser, a stolen cookie) is refused; so it is after a
// password change. (Tokens are back-dated rather than waiting for the clock.)
func TestSignOutEndsEverySession(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t)
	ctx := context.Background()
	u, _ := e.srv.store.UserByName(ctx, "admin")
	earlier := func() string {
		claims := jwt.RegisteredClaims{
			Subject: strconv.FormatInt(u.ID, 10), Issuer: "minivercel",
			IssuedAt:  jwt.NewNumericDate(time.Now().Add(-time.Minute)),
			ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour)),
		}
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(e.key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	// The test's setup set the password a moment ago, which ended older
	// sessions: pretend that happened long ago.
	rewind := func() {
		if _, err := e.srv.store.Pool().Exec(ctx, `UPDATE users SET sessions_valid_after = now() - interval '1 hour'`); err != nil {
			t.Fatal(err)
		}
	}
	rewind()
	stolen := earlier()
	if _, err := e.srv.auth.Authenticate(ctx, stolen); err != nil {
		t.Fatalf("a valid session refused: %v", err)
	}
	b := e.loggedIn()
	if r := b.post("/logout", nil); r.code != http.StatusSeeOther {
		t.Fatalf("logout = %d", r.code)
	}
	if _, err := e.srv.auth.Authenticate(ctx, stolen); !errors.Is(err, creds.ErrBadCredentials) {
		t.Fatalf("a session from before the sign-out: %v, want ErrBadCredentials", err)
	}
	b2 := e.loggedIn()
	if _, err := e.srv.auth.Authenticate(ctx, b2.cookies[sessionCookie]); err != nil {
		t.Fatalf("a new session after the sign-out: %v", err)
	}
	rewind()
	if _, err := e.srv.auth.Authenticate(ctx, earlier()); err != nil {
		t.Fatalf("a valid session refused: %v", err)
	}
	hash, _ := creds.HashPassword("another password 42")
	if err := e.srv.store.SetPasswordHash(ctx, u.ID, hash); err != nil {
		t.Fatal(err)
	}
	if _, err := e.srv.auth.Authenticate(ctx, earlier()); !errors.Is(err, creds.ErrBadCredentials) {
		t.Fatalf("a session from before a password change: %v, want ErrBadCredentials", err)
	}
}
