package panel

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	fws "github.com/fasthttp/websocket"

	"minivercel/creds"
	"minivercel/deploy"
	"minivercel/deploy/deploytest"
	"minivercel/edge"
	"minivercel/pipeline"
	"minivercel/schema"
	"minivercel/secret"
)

// The shared harness of the API and websocket tests: a real PostgreSQL, a
// real pipeline.Queue and Broker, a real edge.Server, and the panel on a real
// loopback listener reached with net/http and a real websocket client.

func TestMain(m *testing.M) { deploytest.Main(m) }

const testBaseDomain = "test.localhost"

// fixture is what every test environment has: a store and its admin.
type fixture struct {
	t     testing.TB
	store *schema.Store
	admin schema.User
}

// project creates a project through the store, as a first push does.
func (f fixture) project(name string) schema.Project {
	f.t.Helper()
	p, _, err := f.store.EnsureProject(context.Background(), name, f.admin.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

type testEnv struct {
	fixture
	broker *pipeline.Broker
	queue  *pipeline.Queue
	edge   *edge.Server
	srv    *Server
	vars   *secret.Vars
	svc    *deploy.Service
	auth   *creds.Authenticator
	key    []byte // the JWT key
	base   string // http://127.0.0.1:port
	repos  string
	token  string // the admin's session JWT
	client *http.Client
}

// newEnv starts everything; with work the queue runs builds and activations.
// wrap, when not nil, wraps the queue as the panel's Logs.
func newEnv(t testing.TB, work bool, wrap func(Logs) Logs) *testEnv {
	t.Helper()
	ctx := context.Background()
	st := deploytest.New(t, deploytest.Options{BaseDomain: testBaseDomain, Work: work, Sandbox: true})
	store, vars, q, eg := st.Store, st.Vars, st.Queue, st.Edge
	var logs Logs = q
	if wrap != nil {
		logs = wrap(q)
	}
	logger := st.Logger
	srv, key := newTestServerWith(t, Config{BaseDomain: testBaseDomain, Logger: logger}, store, st.Service, logs, eg)
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		<-served
	})
	e := &testEnv{fixture: fixture{t: t, store: store, admin: st.Admin}, broker: st.Broker, queue: q, edge: eg, srv: srv, vars: vars, svc: srv.svc, auth: srv.auth, key: key,
		base: "http://" + srv.Addr().String(), repos: st.Dir("repos"), client: &http.Client{Timeout: 2 * time.Minute}}
	e.token = e.login(st.Admin)
	return e
}

// user creates a user with the password "<name>-password" and returns it with
// a session JWT.
func (e *testEnv) user(name string, admin bool) (schema.User, string) {
	e.t.Helper()
	u, err := e.store.CreateUser(context.Background(), name, admin)
	if err != nil {
		e.t.Fatal(err)
	}
	return u, e.login(u)
}

// login gives a user the password "<name>-password" and returns a session JWT.
func (e *testEnv) login(u schema.User) string {
	e.t.Helper()
	hash, err := creds.HashPassword(u.Name + "-password")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.SetPasswordHash(context.Background(), u.ID, hash); err != nil {
		e.t.Fatal(err)
	}
	tok, err := e.auth.Session(u)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// request sends a request with an optional bearer token; body is a string
// (sent as is) or a value (sent as JSON).
func (e *testEnv) request(method, path, token string, body any, header ...string) (int, []byte, http.Header) {
	e.t.Helper()
	var r io.Reader
	if body != nil {
		switch b := body.(type) {
		case string:
			r = strings.NewReader(b)
		default:
			data, err := json.Marshal(b)
			if err != nil {
				e.t.Fatal(err)
			}
			r = bytes.NewReader(data)
		}
	}
	req, err := http.NewRequest(method, e.base+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, data, resp.Header
}

// call sends an admin request, checks the status and decodes the answer into out.
func (e *testEnv) call(method, path string, body any, want int, out any) {
	e.t.Helper()
	code, data, _ := e.request(method, path, e.token, body)
	if code != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatalf("%s %s: decode %s: %v", method, path, data, err)
		}
	}
}

// apiError is the body of an error answer.
type apiError struct {
	Error string `json:"error"`
	Field string `json:"field"`
}

// expectError sends an admin request and checks an error answer.
func (e *testEnv) expectError(method, path string, body any, want int, field string) apiError {
	e.t.Helper()
	var ae apiError
	e.call(method, path, body, want, &ae)
	if ae.Error == "" || ae.Field != field {
		e.t.Fatalf("%s %s: error %+v, want a message and field %q", method, path, ae, field)
	}
	return ae
}

// storedBuild records a build row without running it.
func (e *testEnv) storedBuild(p schema.Project) schema.Build {
	e.t.Helper()
	b, err := e.store.CreateBuild(context.Background(), schema.NewBuild{ProjectID: p.ID, Branch: p.ProductionBranch, CommitSHA: strings.Repeat("a", 40)})
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// gitPush makes a commit of files on branch and pushes it to the project's
// bare repository (created when missing); it returns the commit id.
func (e *testEnv) gitPush(project, branch string, files map[string]string) string {
	e.t.Helper()
	bare := filepath.Join(e.repos, project+".git")
	work, err := os.MkdirTemp("", "mvwork")
	if err != nil {
		e.t.Fatal(err)
	}
	defer os.RemoveAll(work)
	run := func(dir string, args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
		out, err := cmd.CombinedOutput()
		if err != nil {
			e.t.Fatalf("git %v: %v: %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if _, err := os.Stat(bare); err != nil {
		run(e.repos, "init", "-q", "--bare", bare)
	}
	run(work, "init", "-q", "-b", branch)
	for name, content := range files {
		p := filepath.Join(work, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	run(work, "add", "-A")
	run(work, "commit", "-q", "-m", "deploy "+branch)
	sha := run(work, "rev-parse", "HEAD")
	run(work, "push", "-q", "-f", bare, branch)
	return sha
}

// waitBuild waits for a build to finish.
func (e *testEnv) waitBuild(id int64) schema.Build {
	e.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		b, err := e.store.BuildByID(context.Background(), id)
		if err != nil {
			e.t.Fatal(err)
		}
		if b.Status.Done() {
			return b
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
	e.t.Fatalf("build %d did not finish", id)
	return schema.Build{}
}

// realBuild pushes a static site and builds it through the API.
func (e *testEnv) realBuild(project, branch, content string) buildJSON {
	e.t.Helper()
	e.gitPush(project, branch, map[string]string{"index.html": content})
	var b buildJSON
	e.call("POST", "/api/projects/"+project+"/builds", map[string]string{"ref": branch}, http.StatusAccepted, &b)
	if got := e.waitBuild(b.ID); got.Status != schema.BuildSucceeded {
		logs, _ := e.store.LogLines(context.Background(), b.ID, 0)
		e.t.Fatalf("build %d %s: %s; log: %v", b.ID, got.Status, got.Error, logs)
	}
	e.call("GET", "/api/builds/"+strconv.FormatInt(b.ID, 10), nil, http.StatusOK, &b)
	return b
}

// newTestServer is the panel with the real service and authenticator on a
// fresh JWT key, which it returns. builds and sites may be nil: a panel in a
// process without a build system or edge.
func newTestServer(t testing.TB, cfg Config, store *schema.Store, vars *secret.Vars, builds *pipeline.Queue, logs Logs, sites *edge.Server) (*Server, []byte) {
	t.Helper()
	var b deploy.Builds
	if builds != nil {
		b = builds
	}
	var ps Sites
	if sites != nil {
		ps = sites
	}
	svc, err := deploy.New(deploy.Config{BaseDomain: cfg.BaseDomain, Logger: cfg.Logger}, store, vars, b)
	if err != nil {
		t.Fatal(err)
	}
	return newTestServerWith(t, cfg, store, svc, logs, ps)
}

// newTestServerWith is the panel over a given service.
func newTestServerWith(t testing.TB, cfg Config, store *schema.Store, svc *deploy.Service, logs Logs, sites Sites) (*Server, []byte) {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	auth, err := creds.NewAuthenticator(store, key, 0)
	if err != nil {
		t.Fatal(err)
	}
	if logs == nil {
		logs = noLogs{}
	}
	srv, err := New(cfg, store, svc, auth, logs, sites)
	if err != nil {
		t.Fatal(err)
	}
	return srv, key
}

// noLogs is a panel without a build system: no build has a log to follow.
type noLogs struct{}

func (noLogs) Follow(context.Context, int64) (<-chan pipeline.Event, error) {
	return nil, schema.ErrNotFound
}

// newTestVars is the variables service on a fresh master key.
func newTestVars(t testing.TB, store *schema.Store) *secret.Vars { return deploytest.NewVars(t, store) }

// --- websocket client ---

// wsMsg is any server message.
type wsMsg struct {
	Type    string `json:"type"`
	BuildID int64  `json:"build_id"`
	Seq     int    `json:"seq"`
	Line    string `json:"line"`
	Status  string `json:"status"`
	Final   bool   `json:"final"`
	Count   int    `json:"count"`
	Error   string `json:"error"`
	User    string `json:"user"`
}

type wsClient struct {
	t testing.TB
	c *fws.Conn
}

// dialWS opens /ws with the query and headers given; it does not read.
func (e *testEnv) dialWS(query string, header http.Header) (*wsClient, error) {
	u := "ws://" + e.srv.Addr().String() + "/ws"
	if query != "" {
		u += "?" + query
	}
	c, resp, err := fws.DefaultDialer.Dial(u, header)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s: %w (status %d)", u, err, resp.StatusCode)
		}
		return nil, err
	}
	wc := &wsClient{t: e.t, c: c}
	e.t.Cleanup(func() { c.Close() })
	return wc, nil
}

// connect opens an authenticated connection and waits for "ready".
func (e *testEnv) connect() *wsClient {
	e.t.Helper()
	wc, err := e.dialWS("token="+url.QueryEscape(e.token), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if m := wc.next(10 * time.Second); m.Type != "ready" {
		e.t.Fatalf("first message %+v, want ready", m)
	}
	return wc
}

func (w *wsClient) send(v any) {
	w.t.Helper()
	if err := w.c.WriteJSON(v); err != nil {
		w.t.Fatal(err)
	}
}

// next reads one message, failing the test after timeout.
func (w *wsClient) next(timeout time.Duration) wsMsg {
	w.t.Helper()
	m, err := w.read(timeout)
	if err != nil {
		w.t.Fatalf("websocket read: %v", err)
	}
	return m
}

func (w *wsClient) read(timeout time.Duration) (wsMsg, error) {
	w.c.SetReadDeadline(time.Now().Add(timeout))
	var m wsMsg
	_, data, err := w.c.ReadMessage()
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(data, &m)
}

func (w *wsClient) subscribe(id int64, after int) {
	w.send(map[string]any{"type": "subscribe_build", "build_id": id, "after_seq": after})
}

// collect reads a build's messages until its final status and returns the
// lines (with their seqs checked to rise), the final status and the dropped
// count. Messages of other builds are ignored.
func (w *wsClient) collect(id int64, timeout time.Duration) (lines []wsMsg, final string, dropped int) {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m, err := w.read(time.Until(deadline))
		if err != nil {
			w.t.Fatalf("build %d: after %d lines: %v", id, len(lines), err)
		}
		if m.BuildID != id {
			continue
		}
		switch m.Type {
		case "log":
			lines = append(lines, m)
		case "dropped":
			dropped += m.Count
		case "status":
			if m.Final {
				return lines, m.Status, dropped
			}
		case "error":
			w.t.Fatalf("build %d: error %q", id, m.Error)
		}
	}
}

// newChromium starts headless Chromium for one test, skipping the test where
// Chromium is not installed; the browser ends with the test or after 90 s.
func newChromium(t *testing.T) context.Context {
	t.Helper()
	const chromium = "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("needs Chromium at %s: %v", chromium, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.Headless,
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancel(); cancelCtx(); cancelAlloc() })
	return ctx
}

// signIn is the browser steps of the admin signing in on the login page,
// then waiting on the page next for the element ready.
func (e *testEnv) signIn(next, ready string) []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{
		chromedp.Navigate(e.base + "/login?next=" + next),
		chromedp.SetValue(chromedp.CSS("#username"), "admin"),
		chromedp.SetValue(chromedp.CSS("#password"), "admin-password"),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS(ready)),
	}
}

// TestLargeCookiesAreAccepted: a request with 6 KB of cookies (which any app
// under the base domain may set) reaches the panel's pages and API instead of
// a 431, up to the header size the edge itself accepts.
func TestLargeCookiesAreAccepted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, nil)
	cookie := "app_state=" + strings.Repeat("x", 6000)
	for _, path := range []string{"/login", "/api/projects"} {
		code, _, _ := e.request("GET", path, e.token, nil, "Cookie", cookie)
		if code == http.StatusRequestHeaderFieldsTooLarge || code >= 500 {
			t.Errorf("GET %s with a 6 KB cookie = %d", path, code)
		}
	}
	huge := "app_state=" + strings.Repeat("x", 100<<10)
	if code, _, _ := e.request("GET", "/login", "", nil, "Cookie", huge); code != http.StatusRequestHeaderFieldsTooLarge && code != http.StatusBadRequest {
		t.Errorf("GET /login with 100 KB of headers = %d, want a refusal", code)
	}
}
