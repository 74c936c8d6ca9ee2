package sshcmd_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"minivercel/deploy"
	"minivercel/deploy/deploytest"
	"minivercel/edge"
	"minivercel/internal/testenv"
	"minivercel/schema"
	"minivercel/sshcmd"
)

// The commands run against the real stack (deploytest): a real database, the
// real service, queue, activator and edge. Builds are recorded in the
// database with real artifacts, as the deploy package's tests make them.

func TestMain(m *testing.M) { deploytest.Main(m) }

type env struct {
	*deploytest.Stack
	t   *testing.T
	cmd *sshcmd.Commands
	dev schema.User // a member: no administrator
}

func newEnv(t *testing.T) *env {
	t.Helper()
	s := deploytest.New(t, deploytest.Options{Work: true,
		Runtime: edge.RuntimeConfig{StopTimeout: 2 * time.Second, DrainTimeout: 2 * time.Second, WebsocketGrace: time.Second}})
	dev, err := s.Store.CreateUser(context.Background(), "dev", false)
	if err != nil {
		t.Fatal(err)
	}
	c := sshcmd.New(sshcmd.Config{BaseDomain: deploytest.BaseDomain, Logger: s.Logger, PollInterval: 20 * time.Millisecond},
		s.Service, s.Store, s.Queue)
	return &env{Stack: s, t: t, cmd: c, dev: dev}
}

// run runs a command line as user and returns its stdout, stderr and exit
// status.
func (e *env) run(user schema.User, stdin string, args ...string) (string, string, int) {
	e.t.Helper()
	var out, errOut strings.Builder
	code := e.cmd.Run(context.Background(), user, args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

// ok runs a command that must succeed and returns its stdout.
func (e *env) ok(user schema.User, stdin string, args ...string) string {
	e.t.Helper()
	out, errOut, code := e.run(user, stdin, args...)
	if code != 0 {
		e.t.Fatalf("%q exited %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
	}
	return out
}

// refused runs a command that must be refused with exit status 1 and the
// service's own message, and returns its stderr.
func (e *env) refused(user schema.User, msg string, args ...string) {
	e.t.Helper()
	e.refusedWith(user, "", msg, args...)
}

// refusedWith is refused for a command given stdin.
func (e *env) refusedWith(user schema.User, stdin, msg string, args ...string) {
	e.t.Helper()
	out, errOut, code := e.run(user, stdin, args...)
	if code != 1 || !strings.HasSuffix(errOut, "\nerror: "+msg+"\n") && errOut != "error: "+msg+"\n" {
		e.t.Fatalf("%q: exit %d, stderr %q; want 1 and %q\nstdout: %s", args, code, errOut, "error: "+msg, out)
	}
}

// decode parses a --json answer.
func decode[T any](t *testing.T, out string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	return v
}

// msg is the message of the service's refusal err.
func msg(t *testing.T, err error) string {
	t.Helper()
	e := deploy.AsError(err)
	if e == nil {
		t.Fatalf("not a refusal: %v", err)
	}
	return e.Msg
}

func (e *env) project(name string) schema.Project { return e.Stack.Project(e.t, name) }

// site records a succeeded static build of the production branch whose
// index.html says content.
func (e *env) site(p schema.Project, content string) schema.Build {
	return e.Stack.Build(e.t, p, p.ProductionBranch, map[string]string{"index.html": content}, "", content,
		"-----> Build", "built "+content)
}

func (e *env) activate(p schema.Project, b schema.Build) {
	e.t.Helper()
	if _, err := e.Service.Activate(context.Background(), e.Admin, p.Name, b.ID); err != nil {
		e.t.Fatal(err)
	}
}

func TestHelpAndUsage(t *testing.T) {
	e := newEnv(t)
	if out := e.ok(e.dev, "", "help"); !strings.Contains(out, "logs PROJECT [-f]") || !strings.Contains(out, "Exit status") {
		t.Fatalf("help:\n%s", out)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no command (a login)", nil, "there is no shell here"},
		{"unknown command", []string{"bash"}, `unknown command "bash"`},
		{"git's other service", []string{"git-upload-archive", "blog"}, "unknown command"},
		{"missing project", []string{"builds"}, "usage: builds PROJECT"},
		{"too many arguments", []string{"builds", "a", "b"}, "usage: builds PROJECT"},
		{"unknown verb", []string{"env", "show", "blog"}, "usage: env list|set|unset|import"},
		{"unknown flag", []string{"projects", "--all"}, "flag provided but not defined: -all"},
		{"build id not a number", []string{"rollback", "blog", "latest"}, `build "latest" is not a build number`},
		{"token id not a number", []string{"tokens", "revoke", "x"}, `token id "x" is not a number`},
		{"pair without =", []string{"env", "set", "blog", "NOVALUE"}, `"NOVALUE" is not KEY=VALUE`},
		{"lines out of range", []string{"logs", "blog", "--lines", "0"}, "--lines: want 1 to"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := e.run(e.dev, "", tc.args...)
			if code != 2 || !strings.Contains(errOut, tc.want) || out != "" {
				t.Fatalf("exit %d, stdout %q, stderr:\n%s\nwant 2 and %q", code, out, errOut, tc.want)
			}
			if wantHelp := tc.args == nil || strings.Contains(tc.want, "unknown command"); wantHelp && !strings.Contains(errOut, sshcmd.Help) {
				t.Fatalf("no help text:\n%s", errOut)
			}
		})
	}
	// Through RunCommand: the line is split, never given to a shell.
	var out, errOut strings.Builder
	if code := e.cmd.RunCommand(context.Background(), e.dev.ID, `env set blog 'A=1`, strings.NewReader(""), &out, &errOut); code != 2 ||
		!strings.Contains(errOut.String(), "never closed") {
		t.Fatalf("unterminated quote: exit %d, %q", code, errOut.String())
	}
	errOut.Reset()
	if code := e.cmd.RunCommand(context.Background(), e.dev.ID, "projects; id", strings.NewReader(""), &out, &errOut); code != 2 {
		t.Fatalf("a shell-looking line: exit %d, %q", code, errOut.String())
	}
}

func TestProjectsBuildsRollbackRedeploy(t *testing.T) {
	e := newEnv(t)
	blog := e.project("blog")
	if out := e.ok(e.dev, "", "builds", "blog"); !strings.Contains(out, "no builds yet") {
		t.Fatalf("builds before any:\n%s", out)
	}
	_, err := e.Service.Redeploy(context.Background(), e.dev, "blog")
	e.refused(e.dev, msg(t, err), "redeploy", "blog")
	_, err = e.Service.Rollback(context.Background(), e.dev, "blog", 0)
	e.refused(e.dev, msg(t, err), "rollback", "blog")

	b1 := e.site(blog, "one")
	b2 := e.site(blog, "two")
	e.activate(blog, b1)
	e.activate(blog, b2)

	out := e.ok(e.dev, "", "projects")
	if !strings.Contains(out, "PROJECT") || !strings.Contains(out, "blog") || !strings.Contains(out, "#"+strconv.FormatInt(b2.ID, 10)) {
		t.Fatalf("projects:\n%s", out)
	}
	ps := decode[[]map[string]any](t, e.ok(e.dev, "", "projects", "--json"))
	if len(ps) != 1 || ps[0]["name"] != "blog" || ps[0]["active_build_id"] != float64(b2.ID) || ps[0]["url"] != "http://blog."+deploytest.BaseDomain {
		t.Fatalf("projects --json: %v", ps)
	}

	out = e.ok(e.dev, "", "builds", "blog")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], strconv.FormatInt(b2.ID, 10)) || !strings.Contains(lines[1], "● live") || strings.Contains(lines[2], "live") {
		t.Fatalf("builds:\n%s", out)
	}
	bs := decode[[]struct {
		ID     int64  `json:"id"`
		Status string `json:"status"`
		Active bool   `json:"active"`
		URL    string `json:"url"`
	}](t, e.ok(e.dev, "", "builds", "--json", "blog"))
	if len(bs) != 2 || bs[0].ID != b2.ID || !bs[0].Active || bs[1].Active || bs[0].Status != "succeeded" || !strings.HasPrefix(bs[0].URL, "http://blog--") {
		t.Fatalf("builds --json: %+v", bs)
	}

	if out := e.ok(e.dev, "", "rollback", "blog"); out != "build #"+strconv.FormatInt(b1.ID, 10)+" is live (main 1111111)\n" {
		t.Fatalf("rollback: %q", out)
	}
	if code, body := get(e, "blog."+deploytest.BaseDomain); code != 200 || body != "one" {
		t.Fatalf("after rollback: %d %q", code, body)
	}
	act := decode[struct {
		Build struct {
			ID     int64 `json:"id"`
			Active bool  `json:"active"`
		} `json:"build"`
		Deployment *struct {
			BuildID int64  `json:"build_id"`
			Status  string `json:"status"`
		} `json:"deployment"`
	}](t, e.ok(e.dev, "", "rollback", "blog", strconv.FormatInt(b2.ID, 10), "--json"))
	if act.Build.ID != b2.ID || !act.Build.Active || act.Deployment == nil || act.Deployment.BuildID != b2.ID || act.Deployment.Status != "active" {
		t.Fatalf("rollback BUILD --json: %+v", act)
	}
	if out := e.ok(e.dev, "", "redeploy", "blog"); !strings.Contains(out, "build #"+strconv.FormatInt(b2.ID, 10)+" is live") {
		t.Fatalf("redeploy: %q", out)
	}

	// Refusals read as the API's: the service's words.
	_, err = e.Service.Activate(context.Background(), e.dev, "blog", 999999)
	e.refused(e.dev, msg(t, err), "rollback", "blog", "999999")
	_, err = e.Service.Project(context.Background(), "nope")
	e.refused(e.dev, msg(t, err), "builds", "nope")
	e.refused(e.dev, msg(t, err), "logs", "nope")
	_, err = e.Service.Rebuild(context.Background(), e.dev, "blog", "")
	e.refused(e.dev, msg(t, err), "rebuild", "blog")
}

func get(e *env, host string) (int, string) {
	e.t.Helper()
	rec := newRecorder()
	e.Edge.Handler().ServeHTTP(rec, newRequest(host))
	return rec.Code, rec.Body.String()
}

func TestRebuild(t *testing.T) {
	e := newEnv(t)
	e.project("app")
	// A real repository, as a push leaves it.
	bare := filepath.Join(e.Dir("repos"), "app.git")
	work := t.TempDir()
	for _, args := range [][]string{
		{"init", "-q", "--bare", bare},
		{"-C", work, "init", "-q", "-b", "main"},
		{"-C", work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "first"},
		{"-C", work, "push", "-q", bare, "main"},
	} {
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	b := decode[struct {
		ID      int64  `json:"id"`
		Project string `json:"project"`
		Branch  string `json:"branch"`
		Status  string `json:"status"`
	}](t, e.ok(e.dev, "", "rebuild", "app", "main", "--json"))
	if b.ID == 0 || b.Project != "app" || b.Branch != "main" {
		t.Fatalf("rebuild --json: %+v", b)
	}
	// Followed to its end: an empty commit has nothing to serve, so the
	// build fails, and so does the command.
	out, errOut, code := e.run(e.dev, "", "logs", "app", "--build", strconv.FormatInt(b.ID, 10), "-f")
	if code != 1 || !strings.Contains(errOut, "build #"+strconv.FormatInt(b.ID, 10)+" failed") || out == "" {
		t.Fatalf("logs --build -f of a failing build: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if out := e.ok(e.dev, "", "rebuild", "app"); !strings.Contains(out, "is queued; follow it with: logs app --build") {
		t.Fatalf("rebuild: %q", out)
	}
}

func TestEnv(t *testing.T) {
	e := newEnv(t)
	e.project("blog")
	const secretValue = "s3cr3t-value-that-is-long"
	out := e.ok(e.dev, "", "env", "set", "blog", "API_KEY="+secretValue, "MODE=fast", "--target", "production")
	if out != "set API_KEY\nset MODE\ntakes effect on the next deploy (or now: redeploy blog)\n" {
		t.Fatalf("env set: %q", out)
	}
	out = e.ok(e.dev, "", "env", "list", "blog")
	if strings.Contains(out, secretValue) || !strings.Contains(out, "API_KEY") || !strings.Contains(out, "production") {
		t.Fatalf("env list shows a value or misses a variable:\n%s", out)
	}
	vars, err := e.Service.Vars(context.Background(), "blog")
	if err != nil {
		t.Fatal(err)
	}
	listed := decode[[]struct{ Key, Target, Value string }](t, e.ok(e.dev, "", "env", "list", "blog", "--json"))
	if len(listed) != 2 || listed[0].Key != vars[0].Name || listed[0].Value != vars[0].Masked || strings.Contains(listed[0].Value+listed[1].Value, secretValue) {
		t.Fatalf("env list --json: %+v (service: %+v)", listed, vars)
	}

	// import: a .env on stdin.
	res := decode[[]struct {
		Key     string `json:"key"`
		Target  string `json:"target"`
		Created bool   `json:"created"`
	}](t, e.ok(e.dev, "# comment\nexport GREETING=\"hello world\"\nMODE=slow\n", "env", "import", "blog", "--json"))
	if len(res) != 2 || res[0].Key != "GREETING" || !res[0].Created || res[1].Key != "MODE" || !res[1].Created || res[0].Target != "all" {
		t.Fatalf("env import --json: %+v", res)
	}
	if got, err := e.Service.RevealVar(context.Background(), e.Admin, "blog", "GREETING", ""); err != nil || got != "hello world" {
		t.Fatalf("imported GREETING = %q, %v", got, err)
	}
	e.refusedWith(e.dev, "NOEQUALS\n", "stdin is not a .env file: line 1: want KEY=VALUE", "env", "import", "blog")
	_, err = e.Service.SetVars(context.Background(), e.dev, "blog", "", nil)
	e.refused(e.dev, msg(t, err), "env", "import", "blog")

	if out := e.ok(e.dev, "", "env", "unset", "blog", "MODE"); out != "unset MODE\n" {
		t.Fatalf("env unset: %q", out)
	}
	err = e.Service.UnsetVar(context.Background(), e.dev, "blog", "MODE", "")
	e.refused(e.dev, msg(t, err), "env", "unset", "blog", "MODE")
	_, err = e.Service.SetVars(context.Background(), e.dev, "blog", "", []deploy.Var{{Key: "1BAD", Value: "x"}})
	e.refused(e.dev, msg(t, err), "env", "set", "blog", "1BAD=x")
	_, err = e.Service.SetVars(context.Background(), e.dev, "blog", "staging", []deploy.Var{{Key: "A", Value: "x"}})
	e.refused(e.dev, msg(t, err), "env", "set", "blog", "A=x", "--target", "staging")
}

func TestDomains(t *testing.T) {
	e := newEnv(t)
	e.project("blog")
	e.project("shop")
	if out := e.ok(e.dev, "", "domains", "list", "blog"); !strings.Contains(out, "no custom domains") {
		t.Fatalf("domains list: %q", out)
	}
	if out := e.ok(e.dev, "", "domains", "add", "blog", "WWW.Example.com"); out != "www.example.com now serves blog; point its DNS at this server\n" {
		t.Fatalf("domains add: %q", out)
	}
	if out := e.ok(e.dev, "", "domains", "add", "blog", "www.example.com"); out != "www.example.com already serves blog\n" {
		t.Fatalf("domains add again: %q", out)
	}
	ds := decode[[]struct {
		Domain     string `json:"domain"`
		CertStatus string `json:"cert_status"`
		URL        string `json:"url"`
	}](t, e.ok(e.dev, "", "domains", "list", "blog", "--json"))
	if len(ds) != 1 || ds[0].Domain != "www.example.com" || ds[0].URL != "http://www.example.com" || ds[0].CertStatus == "" {
		t.Fatalf("domains list --json: %+v", ds)
	}
	_, _, err := e.Service.AddDomain(context.Background(), e.dev, "shop", "www.example.com")
	e.refused(e.dev, msg(t, err), "domains", "add", "shop", "www.example.com")
	_, _, err = e.Service.AddDomain(context.Background(), e.dev, "shop", "shop."+deploytest.BaseDomain)
	e.refused(e.dev, msg(t, err), "domains", "add", "shop", "shop."+deploytest.BaseDomain)
	if out := e.ok(e.dev, "", "domains", "remove", "blog", "www.example.com"); out != "removed www.example.com from blog\n" {
		t.Fatalf("domains remove: %q", out)
	}
	_, err = e.Service.RemoveDomain(context.Background(), e.dev, "blog", "www.example.com")
	e.refused(e.dev, msg(t, err), "domains", "remove", "blog", "www.example.com")
}

func TestKeysAndTokens(t *testing.T) {
	e := newEnv(t)
	key := testenv.NewSSHKey(t, "dev@laptop").Authorized
	added := decode[[]struct {
		ID          int64  `json:"id"`
		User        string `json:"user"`
		Name        string `json:"name"`
		Fingerprint string `json:"fingerprint"`
	}](t, e.ok(e.dev, key+"\n", "keys", "add", "--json"))
	if len(added) != 1 || added[0].User != "dev" || added[0].Name != "dev@laptop" {
		t.Fatalf("keys add --json: %+v", added)
	}
	out := e.ok(e.dev, "", "keys", "list")
	if !strings.Contains(out, added[0].Fingerprint) || !strings.Contains(out, "dev@laptop") {
		t.Fatalf("keys list:\n%s", out)
	}
	// The same key again, and a private key, are the service's refusals.
	_, err := e.Service.AddKeys(context.Background(), e.dev, "", mustParse(t, key), "")
	e.refusedWith(e.dev, key, msg(t, err), "keys", "add")
	_, err = deploy.ParseKeys("")
	e.refused(e.dev, msg(t, err), "keys", "add")
	if _, errOut, code := e.run(e.dev, "-----BEGIN OPENSSH PRIVATE KEY-----\n", "keys", "add"); code != 1 || !strings.Contains(errOut, "that is a private key") {
		t.Fatalf("a private key: %d %q", code, errOut)
	}
	// The admin's keys are not dev's to see or remove.
	adminKey, err := e.Service.AddKeys(context.Background(), e.Admin, "", mustParse(t, testenv.NewSSHKey(t, "admin").Authorized), "")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(e.ok(e.dev, "", "keys", "list"), adminKey[0].Fingerprint) {
		t.Fatal("dev sees the admin's key")
	}
	_, err = e.Service.RemoveKey(context.Background(), e.dev, adminKey[0].Fingerprint)
	e.refused(e.dev, msg(t, err), "keys", "remove", adminKey[0].Fingerprint)
	if out := e.ok(e.dev, "", "keys", "remove", strconv.FormatInt(added[0].ID, 10)); !strings.Contains(out, "removed key") {
		t.Fatalf("keys remove: %q", out)
	}

	// Tokens: shown once, alone on stdout; listed without the secret.
	out, errOut, code := e.run(e.dev, "", "tokens", "create", "--name", "ci")
	token := strings.TrimSpace(out)
	if code != 0 || token == "" || strings.Contains(token, "\n") || !strings.Contains(errOut, "shown once") {
		t.Fatalf("tokens create: %d %q %q", code, out, errOut)
	}
	if uid, err := e.Service.UserByToken(context.Background(), token); err != nil || uid != e.dev.ID {
		t.Fatalf("the token is dev's: %d, %v", uid, err)
	}
	created := decode[struct {
		ID    int64  `json:"id"`
		User  string `json:"user"`
		Name  string `json:"name"`
		Token string `json:"token"`
	}](t, e.ok(e.dev, "", "tokens", "create", "--json"))
	if created.Token == "" || created.User != "dev" {
		t.Fatalf("tokens create --json: %+v", created)
	}
	listed := e.ok(e.dev, "", "tokens", "list", "--json")
	if strings.Contains(listed, token) || strings.Contains(listed, created.Token) || strings.Contains(listed, `"token"`) {
		t.Fatalf("tokens list shows a token: %s", listed)
	}
	if ts := decode[[]map[string]any](t, listed); len(ts) != 2 {
		t.Fatalf("tokens list --json: %v", ts)
	}
	_, adminTok, err := e.Service.CreateToken(context.Background(), e.Admin, "", "admin's")
	if err != nil {
		t.Fatal(err)
	}
	err = e.Service.RevokeToken(context.Background(), e.dev, adminTok.ID)
	e.refused(e.dev, msg(t, err), "tokens", "revoke", strconv.FormatInt(adminTok.ID, 10))
	if out := e.ok(e.dev, "", "tokens", "revoke", strconv.FormatInt(created.ID, 10)); out != "revoked token "+strconv.FormatInt(created.ID, 10)+"\n" {
		t.Fatalf("tokens revoke: %q", out)
	}
	if out := e.ok(e.Admin, "", "tokens", "list"); !strings.Contains(out, "admin's") || !strings.Contains(out, "ci") {
		t.Fatalf("an administrator lists every token:\n%s", out)
	}
}

func mustParse(t *testing.T, key string) []deploy.PublicKey {
	t.Helper()
	k, err := deploy.ParseKeys(key)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestLogs(t *testing.T) {
	e := newEnv(t)
	blog := e.project("blog")
	_, err := e.Service.LogDeployment(context.Background(), "blog")
	e.refused(e.dev, msg(t, err), "logs", "blog")

	b := e.site(blog, "one")
	if out := e.ok(e.dev, "", "logs", "blog", "--build", strconv.FormatInt(b.ID, 10)); !strings.HasSuffix(out, "  -----> Build\n"+out[strings.Index(out, "  built")-8:]) || !strings.Contains(out, "built one") {
		t.Fatalf("logs --build:\n%s", out)
	}
	if out := e.ok(e.dev, "", "logs", "blog", "--build", strconv.FormatInt(b.ID, 10), "-f"); out != "-----> Build\nbuilt one\n" {
		t.Fatalf("logs --build -f of a finished build: %q", out)
	}
	_, err = e.Service.ProjectBuild(context.Background(), "blog", b.ID+100)
	e.refused(e.dev, msg(t, err), "logs", "blog", "--build", strconv.FormatInt(b.ID+100, 10))

	e.activate(blog, b)
	d, err := e.Service.LogDeployment(context.Background(), "blog")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := e.Store.AppendRuntimeLogs(ctx, d.ID, 1, []string{"first", "second", "third"}); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := e.run(e.dev, "", "logs", "blog", "--lines", "2")
	if code != 0 || !strings.Contains(errOut, "deployment "+strconv.FormatInt(d.ID, 10)) ||
		strings.Contains(out, "first") || !strings.HasSuffix(out, "  second\n"+out[len(out)-len("15:04:05  third\n"):]) {
		t.Fatalf("logs --lines 2: %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(e.ok(e.dev, "", "logs", "blog", "--json")), "\n")
	if len(lines) != 3 || decode[struct {
		Seq  int64  `json:"seq"`
		Line string `json:"line"`
	}](t, lines[2]).Line != "third" {
		t.Fatalf("logs --json: %q", lines)
	}

	// -f: a line stored after the command started arrives; the command
	// ends, with status 0, when its context does (the client went away).
	fctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- e.cmd.Run(fctx, e.dev, []string{"logs", "blog", "-f", "--lines", "1"}, strings.NewReader(""), pw, io.Discard)
		pw.Close()
	}()
	rd := bufio.NewReader(pr)
	if l, err := rd.ReadString('\n'); err != nil || !strings.HasSuffix(l, "  third\n") {
		t.Fatalf("first line followed: %q, %v", l, err)
	}
	if err := e.Store.AppendRuntimeLogs(ctx, d.ID, 4, []string{"fourth, written later"}); err != nil {
		t.Fatal(err)
	}
	if l, err := rd.ReadString('\n'); err != nil || !strings.HasSuffix(l, "  fourth, written later\n") {
		t.Fatalf("a new line followed: %q, %v", l, err)
	}
	cancel()
	go io.Copy(io.Discard, rd)
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("logs -f ended with %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("logs -f did not end when its context did")
	}

	// A user follows at most 8 logs at once: the 9th is refused until one
	// ends. Control characters an app prints reach no terminal raw.
	if err := e.Store.AppendRuntimeLogs(ctx, d.ID, 5, []string{"evil \x1b]0;owned\x07 title"}); err != nil {
		t.Fatal(err)
	}
	if out := e.ok(e.dev, "", "logs", "blog", "--lines", "1"); strings.ContainsRune(out, 0x1b) || !strings.Contains(out, `evil \x1b]0;owned\x07 title`) {
		t.Fatalf("a control sequence in a runtime line: %q", out)
	}
	var followers []context.CancelFunc
	ended := make(chan int, 8)
	for range 8 {
		fctx, cancel := context.WithCancel(ctx)
		followers = append(followers, cancel)
		pr, pw := io.Pipe()
		go func() {
			ended <- e.cmd.Run(fctx, e.dev, []string{"logs", "blog", "-f", "--lines", "1"}, strings.NewReader(""), pw, io.Discard)
			pw.Close()
		}()
		rd := bufio.NewReader(pr)
		if _, err := rd.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		go io.Copy(io.Discard, rd)
	}
	e.refused(e.dev, "too many logs followed: you follow 8 logs already; stop one first", "logs", "blog", "-f")
	followers[0]()
	<-ended
	if out := e.ok(e.dev, "", "logs", "blog", "--lines", "1"); out == "" {
		t.Fatal("logs without -f after the limit")
	}
	for _, cancel := range followers[1:] {
		cancel()
	}
}
