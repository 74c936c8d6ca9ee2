package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"minivercel/creds"
	"minivercel/deploy/deploytest"
	"minivercel/panel"
)

func TestMain(m *testing.M) { deploytest.Main(m) }

const frontBase = "test.localhost"

// frontEnds is one database behind the three front ends: the CLI (run, as a
// shell would call it), the JSON API and the pages of a running panel.
type frontEnds struct {
	t       *testing.T
	dsn     string
	dataDir string
	base    string // the panel's URL
	session string // an administrator's session JWT
}

func newFrontEnds(t *testing.T) *frontEnds {
	t.Helper()
	ctx := context.Background()
	dataDir := t.TempDir()
	st := deploytest.New(t, deploytest.Options{BaseDomain: frontBase, MasterKeyFile: filepath.Join(dataDir, "master.key")})
	f := &frontEnds{t: t, dsn: st.DSN, dataDir: dataDir}
	key := make([]byte, 32)
	rand.Read(key)
	auth, err := creds.NewAuthenticator(st.Store, key, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := panel.New(panel.Config{BaseDomain: frontBase, Logger: st.Logger}, st.Store, st.Service, auth, st.Queue, st.Edge)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	f.base = "http://" + srv.Addr().String()
	if f.session, err = auth.Session(st.Admin); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Store.EnsureProject(ctx, "blog", st.Admin.ID); err != nil {
		t.Fatal(err)
	}
	return f
}

// cli runs the binary's main logic and returns its standard error and exit code.
func (f *frontEnds) cli(stdin string, args ...string) (string, int) {
	var stdout, stderr bytes.Buffer
	args = append(args, "--data-dir", f.dataDir, "--database-url", f.dsn, "--log-level", "error")
	code := run(args, strings.NewReader(stdin), &stdout, &stderr)
	return stderr.String(), code
}

// api sends a JSON request with the session as a bearer token and returns
// the error message it answers.
func (f *frontEnds) api(method, path string, body any) (int, string) {
	f.t.Helper()
	data, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, f.base+path, bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+f.session)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Error string }
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out.Error
}

// page submits a form as a signed-in browser and returns the page it ends on.
func (f *frontEnds) page(path string, form url.Values) string {
	f.t.Helper()
	req, _ := http.NewRequest("POST", f.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", f.base)
	req.AddCookie(&http.Cookie{Name: "mv_session", Value: f.session})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSeeOther {
		// A refusal that redirects carries its message in the flash cookie
		// to the next page.
		next, _ := http.NewRequest("GET", f.base+resp.Header.Get("Location"), nil)
		next.AddCookie(&http.Cookie{Name: "mv_session", Value: f.session})
		for _, c := range resp.Cookies() {
			next.AddCookie(c)
		}
		if resp, err = http.DefaultClient.Do(next); err != nil {
			f.t.Fatal(err)
		}
		defer resp.Body.Close()
	}
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// settingsForm is the settings page's form with every field as stored for a
// new project, changed by the given fields.
func settingsForm(change map[string]string) url.Values {
	form := url.Values{"production_branch": {"main"}, "framework": {""}, "install_command": {""}, "build_command": {""},
		"start_command": {""}, "output_dir": {""}, "health_path": {"/"}, "health_tries": {"3"}, "health_interval": {"5s"}}
	for k, v := range change {
		form.Set(k, v)
	}
	return form
}

// TestFrontEndsRefuseAlike drives the same invalid input through the CLI, the
// API and the pages: each refuses it with the same words (the pages make a
// sentence of them: a capital letter, a full stop), and the CLI exits 2.
func TestFrontEndsRefuseAlike(t *testing.T) {
	t.Parallel()
	f := newFrontEnds(t)
	rk, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := ssh.NewPublicKey(&rk.PublicKey)
	rsa1024 := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk))) + " me@laptop"
	const dsa = "ssh-dss AAAAB3NzaC1kc3MAAAABcA== me@laptop"
	const private = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\n-----END OPENSSH PRIVATE KEY-----"

	type input struct {
		cli       []string
		stdin     string
		method    string
		path      string
		body      any
		pagePath  string
		pageForm  url.Values
		wantField string
	}
	setting := func(flag, jsonField string, jsonValue any, formField, formValue string) input {
		return input{
			cli:    []string{"project", "set", "blog", "--" + flag, formValue},
			method: "PATCH", path: "/api/projects/blog", body: map[string]any{jsonField: jsonValue},
			pagePath: "/projects/blog/settings", pageForm: settingsForm(map[string]string{formField: formValue}),
		}
	}
	envVar := func(key, target string) input {
		cli := []string{"env", "set", "blog", key + "=some value"}
		if target != "" {
			cli = append(cli, "--target", target)
		}
		return input{cli: cli, method: "POST", path: "/api/projects/blog/env", body: map[string]string{"key": key, "value": "some value", "target": target},
			pagePath: "/projects/blog/env", pageForm: url.Values{"key": {key}, "value": {"some value"}, "target": {target}}}
	}
	domain := func(name string) input {
		return input{cli: []string{"domain", "add", "blog", name, "--base-domain", frontBase},
			method: "POST", path: "/api/projects/blog/domains", body: map[string]string{"domain": name},
			pagePath: "/projects/blog/domains", pageForm: url.Values{"domain": {name}}}
	}
	key := func(text string) input {
		return input{cli: []string{"admin", "key", "add", "-"}, stdin: text,
			method: "POST", path: "/api/keys", body: map[string]string{"public_key": text},
			pagePath: "/keys", pageForm: url.Values{"public_key": {text}}}
	}
	for name, in := range map[string]input{
		"health path that is no URL path": setting("health-path", "health_path", "/%zz", "health_path", "/%zz"),
		"relative health path":            setting("health-path", "health_path", "healthz", "health_path", "healthz"),
		"unknown framework":               setting("framework", "framework", "rails", "framework", "rails"),
		"branch with a space":             setting("production-branch", "production_branch", "ma in", "production_branch", "ma in"),
		"output dir outside":              setting("output-dir", "output_dir", "../etc", "output_dir", "../etc"),
		"no health tries":                 setting("health-tries", "health_tries", 0, "health_tries", "0"),
		"interval too long":               setting("health-interval", "health_interval_ms", 3600000, "health_interval", "1h"),
		"start command on a static site": {
			cli:    []string{"project", "set", "blog", "--framework", "static", "--start-command", "node x.js"},
			method: "PATCH", path: "/api/projects/blog", body: map[string]string{"framework": "static", "start_command": "node x.js"},
			pagePath: "/projects/blog/settings", pageForm: settingsForm(map[string]string{"framework": "static", "start_command": "node x.js"}),
		},
		"variable name with a digit first": envVar("1BAD", ""),
		"platform variable":                envVar("PORT", ""),
		"loader variable":                  envVar("LD_PRELOAD", ""),
		"unknown target":                   envVar("API_KEY", "staging"),
		"IP address as a domain":           domain("1.2.3.4"),
		"wildcard domain":                  domain("*.example.com"),
		"the platform's own host":          domain("blog." + frontBase),
		"private key":                      key(private),
		"DSA key":                          key(dsa),
		"short RSA key":                    key(rsa1024),
		"not a key":                        key("ssh-ed25519 nope me@laptop"),
	} {
		t.Run(name, func(t *testing.T) {
			out, code := f.cli(in.stdin, in.cli...)
			msg, ok := strings.CutPrefix(strings.TrimSpace(out), "error: ")
			if code != 2 || !ok || strings.Contains(msg, "\n") {
				t.Fatalf("CLI %v: exit %d, %q; want exit 2 and one error line", in.cli, code, out)
			}
			status, apiMsg := f.api(in.method, in.path, in.body)
			if status != http.StatusBadRequest || apiMsg != msg {
				t.Errorf("API %s %s: %d %q; the CLI said %q", in.method, in.path, status, apiMsg, msg)
			}
			page := f.page(in.pagePath, in.pageForm)
			if !strings.Contains(page, html.EscapeString(msg[1:])) {
				t.Errorf("page %s does not say %q", in.pagePath, msg)
			}
		})
	}
	// None of it changed anything.
	if out, code := f.cli("", "project", "show", "blog"); code != 0 || strings.Contains(out, "rails") {
		t.Fatalf("project show after refusals: %d %s", code, out)
	}
}
