package panel

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"html/template"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"minivercel/deploy"
	"minivercel/internal/testenv"
	"minivercel/schema"
	"minivercel/schema/schematest"
	"minivercel/secret"
)

// envSecret is long enough that MaskValue shows its first four characters.
const envSecret = "postgres://app:hunter2-s3cret@db:5432/app"

// TestAPIEnv drives every environment route through its success and error
// answers: strict bodies, fields named in 400s, 201 against 200, 404s, and
// the masked form in every answer but the reveal.
func TestAPIEnv(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, nil)
	p := e.project("app")
	const base = "/api/projects/app/env"

	t.Run("create and update", func(t *testing.T) {
		var v envVarJSON
		e.call("POST", base, map[string]string{"key": "DATABASE_URL", "value": envSecret}, http.StatusCreated, &v)
		if v.Key != "DATABASE_URL" || v.Target != schema.TargetAll || v.Value != secret.MaskValue(envSecret) || v.Value != "post••••••••" || v.UpdatedAt == "" {
			t.Fatalf("created %+v", v)
		}
		e.call("POST", base, map[string]string{"key": "DATABASE_URL", "value": envSecret + "-2", "target": "all"}, http.StatusOK, &v)
		e.call("POST", base, map[string]string{"key": "DATABASE_URL", "value": "prod-only-value", "target": "production"}, http.StatusCreated, &v)
		if v.Target != schema.TargetProduction || v.Value != secret.MaskValue("prod-only-value") {
			t.Fatalf("production variable %+v", v)
		}
		// An empty value is a value: FOO= is a legitimate setting.
		e.call("POST", base, map[string]string{"key": "EMPTY", "value": ""}, http.StatusCreated, nil)
		if got, err := e.vars.Reveal(context.Background(), p.ID, "DATABASE_URL", schema.TargetAll); err != nil || got != envSecret+"-2" {
			t.Fatalf("stored value %q, %v", got, err)
		}
	})
	t.Run("list", func(t *testing.T) {
		var vs []envVarJSON
		code, data, _ := e.request("GET", base, e.token, nil)
		if code != http.StatusOK {
			t.Fatalf("list: %d %s", code, data)
		}
		if bytes.Contains(data, []byte("hunter2")) || bytes.Contains(data, []byte("prod-only")) {
			t.Fatalf("the list holds a value: %s", data)
		}
		if err := json.Unmarshal(data, &vs); err != nil {
			t.Fatal(err)
		}
		if len(vs) != 3 || vs[0].Key != "DATABASE_URL" || vs[0].Target != "all" || vs[1].Target != "production" || vs[2].Key != "EMPTY" {
			t.Fatalf("listed %+v", vs)
		}
		var none []envVarJSON
		e.project("bare")
		e.call("GET", "/api/projects/bare/env", nil, http.StatusOK, &none)
		if none == nil || len(none) != 0 {
			t.Fatalf("a project without variables lists %v, want []", none)
		}
		e.expectError("GET", "/api/projects/ghost/env", nil, http.StatusNotFound, "")
	})
	t.Run("create errors", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			body  any
			field string
		}{
			{"bad key", map[string]string{"key": "1BAD", "value": "x"}, "key"},
			{"key with dash", map[string]string{"key": "BAD-KEY", "value": "x"}, "key"},
			{"empty key", map[string]string{"value": "x"}, "key"},
			{"reserved PORT", map[string]string{"key": "PORT", "value": "1"}, "key"},
			{"reserved prefix", map[string]string{"key": "minivercel_x", "value": "1"}, "key"},
			{"unknown target", map[string]string{"key": "A", "value": "x", "target": "staging"}, "target"},
			{"missing value", map[string]string{"key": "A"}, "value"},
			{"NUL in value", map[string]string{"key": "A", "value": "a\x00b"}, "value"},
			{"value too long", map[string]string{"key": "A", "value": strings.Repeat("x", schema.MaxEnvValueBytes+1)}, "value"},
			{"value not a string", map[string]any{"key": "A", "value": 1}, "value"},
			{"unknown field", map[string]string{"key": "A", "value": "x", "secret": "y"}, ""},
			{"no body", nil, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ae := e.expectError("POST", base, tc.body, http.StatusBadRequest, tc.field)
				if strings.Contains(ae.Error, "a\x00b") {
					t.Errorf("the error repeats the value: %q", ae.Error)
				}
			})
		}
		e.expectError("POST", "/api/projects/ghost/env", map[string]string{"key": "A", "value": "x"}, http.StatusNotFound, "")
		var vs []envVarJSON
		e.call("GET", base, nil, http.StatusOK, &vs)
		if len(vs) != 3 {
			t.Fatalf("a refused request stored something: %+v", vs)
		}
	})
	t.Run("put", func(t *testing.T) {
		var v envVarJSON
		e.call("PUT", base+"/API_TOKEN", map[string]string{"value": "tok_live_0123456789"}, http.StatusCreated, &v)
		if v.Key != "API_TOKEN" || v.Target != "all" || v.Value != "tok_••••••••" {
			t.Fatalf("put created %+v", v)
		}
		e.call("PUT", base+"/API_TOKEN", map[string]string{"value": "tok_live_replaced", "target": "all"}, http.StatusOK, &v)
		e.call("PUT", base+"/API_TOKEN", map[string]string{"value": "tok_test_preview", "target": "preview"}, http.StatusCreated, &v)
		if got, _ := e.vars.Reveal(context.Background(), p.ID, "API_TOKEN", "all"); got != "tok_live_replaced" {
			t.Fatalf("PUT stored %q", got)
		}
		e.expectError("PUT", base+"/BAD-KEY", map[string]string{"value": "x"}, http.StatusBadRequest, "key")
		e.expectError("PUT", base+"/HOST", map[string]string{"value": "x"}, http.StatusBadRequest, "key")
		e.expectError("PUT", base+"/API_TOKEN", map[string]string{"value": "x", "target": "dev"}, http.StatusBadRequest, "target")
		e.expectError("PUT", base+"/API_TOKEN", map[string]string{"target": "all"}, http.StatusBadRequest, "value")
		// The key is the path's; a body naming one is refused, not ignored.
		e.expectError("PUT", base+"/API_TOKEN", map[string]string{"key": "OTHER", "value": "x"}, http.StatusBadRequest, "")
		e.expectError("PUT", "/api/projects/ghost/env/API_TOKEN", map[string]string{"value": "x"}, http.StatusNotFound, "")
	})
	t.Run("reveal", func(t *testing.T) {
		var r revealResponse
		code, data, hdr := e.request("GET", base+"/DATABASE_URL/value", e.token, nil)
		if code != http.StatusOK || json.Unmarshal(data, &r) != nil || r.Value != envSecret+"-2" {
			t.Fatalf("reveal: %d %s", code, data)
		}
		if hdr.Get("Cache-Control") != "no-store" {
			t.Errorf("reveal Cache-Control %q, want no-store", hdr.Get("Cache-Control"))
		}
		e.call("GET", base+"/DATABASE_URL/value?target=production", nil, http.StatusOK, &r)
		if r.Value != "prod-only-value" {
			t.Fatalf("production value %q", r.Value)
		}
		e.expectError("GET", base+"/DATABASE_URL/value?target=preview", nil, http.StatusNotFound, "")
		e.expectError("GET", base+"/NOPE/value", nil, http.StatusNotFound, "")
		e.expectError("GET", base+"/DATABASE_URL/value?target=qa", nil, http.StatusBadRequest, "target")
		e.expectError("GET", "/api/projects/ghost/env/DATABASE_URL/value", nil, http.StatusNotFound, "")

		// The panel's Reveal button: a same-origin fetch with the session
		// cookie and no bearer token.
		code, data, _ = e.request("GET", base+"/DATABASE_URL/value", "", nil, "Cookie", sessionCookie+"="+e.token)
		if code != http.StatusOK || !bytes.Contains(data, []byte("hunter2")) {
			t.Fatalf("reveal with the session cookie: %d %s", code, data)
		}

		// A user who is not an administrator may list but never reveal,
		// whether or not the variable exists.
		_, devToken := e.user("dev", false)
		for _, path := range []string{base + "/DATABASE_URL/value", base + "/NOPE/value", "/api/projects/ghost/env/X/value"} {
			code, data, _ := e.request("GET", path, devToken, nil)
			if code != http.StatusForbidden || bytes.Contains(data, []byte("hunter2")) {
				t.Fatalf("non-admin reveal of %s: %d %s", path, code, data)
			}
		}
		if code, data, _ := e.request("GET", base, devToken, nil); code != http.StatusOK || bytes.Contains(data, []byte("hunter2")) {
			t.Fatalf("non-admin list: %d %s", code, data)
		}
	})
	t.Run("delete", func(t *testing.T) {
		e.call("DELETE", base+"/API_TOKEN?target=preview", nil, http.StatusNoContent, nil)
		e.expectError("DELETE", base+"/API_TOKEN?target=preview", nil, http.StatusNotFound, "")
		e.expectError("DELETE", base+"/API_TOKEN?target=dev", nil, http.StatusBadRequest, "target")
		// Without a target every target of the key goes.
		e.call("DELETE", base+"/DATABASE_URL", nil, http.StatusNoContent, nil)
		e.expectError("DELETE", base+"/DATABASE_URL", nil, http.StatusNotFound, "")
		e.expectError("DELETE", base+"/NEVER_SET", nil, http.StatusNotFound, "")
		e.expectError("DELETE", "/api/projects/ghost/env/API_TOKEN", nil, http.StatusNotFound, "")
		var vs []envVarJSON
		e.call("GET", base, nil, http.StatusOK, &vs)
		if len(vs) != 2 || vs[0].Key != "API_TOKEN" || vs[0].Target != "all" || vs[1].Key != "EMPTY" {
			t.Fatalf("after deletes %+v", vs)
		}
	})
	t.Run("auth", func(t *testing.T) {
		routes := []struct {
			method, path string
			body         any
		}{
			{"GET", base, nil},
			{"POST", base, map[string]string{"key": "A", "value": "x"}},
			{"PUT", base + "/A", map[string]string{"value": "x"}},
			{"DELETE", base + "/EMPTY", nil},
			{"GET", base + "/API_TOKEN/value", nil},
			{"POST", "/api/projects/app/redeploy", nil},
		}
		for _, r := range routes {
			if code, _, _ := e.request(r.method, r.path, "", r.body); code != http.StatusUnauthorized {
				t.Errorf("%s %s without credentials: %d, want 401", r.method, r.path, code)
			}
			if code, _, _ := e.request(r.method, r.path, "forged", r.body); code != http.StatusUnauthorized {
				t.Errorf("%s %s with a forged token: %d, want 401", r.method, r.path, code)
			}
			if r.method == "GET" {
				continue
			}
			// A sibling subdomain (a deployed app) is the same site, so
			// the browser sends the cookie: the Origin check refuses it.
			code, _, _ := e.request(r.method, r.path, "", r.body, "Cookie", sessionCookie+"="+e.token, "Origin", "http://evil."+testBaseDomain)
			if code != http.StatusForbidden {
				t.Errorf("%s %s cross-origin with the cookie: %d, want 403", r.method, r.path, code)
			}
		}
		var vs []envVarJSON
		e.call("GET", base, nil, http.StatusOK, &vs)
		if len(vs) != 2 {
			t.Fatalf("refused requests changed the variables: %+v", vs)
		}
	})
}

// TestAPIEnvRevealLogged: a reveal is logged at info with the user and the
// variable, a change with the variable; no log line holds a value.
func TestAPIEnvRevealLogged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := schematest.Store(t)
	var logs bytes.Buffer
	srv, _ := newTestServer(t, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, store, newTestVars(t, store), nil, nil, nil)
	admin, err := store.CreateUser(ctx, "root", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.EnsureProject(ctx, "app", admin.ID); err != nil {
		t.Fatal(err)
	}
	tok, err := srv.auth.Session(admin)
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path, body string) int {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := srv.app.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := do("POST", "/api/projects/app/env", `{"key":"STRIPE_KEY","value":"sk_live_51Habcdefghijkl","target":"production"}`); code != http.StatusCreated {
		t.Fatalf("create = %d", code)
	}
	if code := do("GET", "/api/projects/app/env/STRIPE_KEY/value?target=production", ""); code != http.StatusOK {
		t.Fatalf("reveal = %d", code)
	}
	out := logs.String()
	if strings.Contains(out, "abcdefghijkl") {
		t.Fatalf("a log line holds the value:\n%s", out)
	}
	var revealed string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, `msg="environment variable revealed"`) {
			revealed = line
		}
	}
	for _, want := range []string{"level=INFO", "project=app", "key=STRIPE_KEY", "target=production", "user=root"} {
		if !strings.Contains(revealed, want) {
			t.Errorf("reveal log line %q lacks %q\nall logs:\n%s", revealed, want, out)
		}
	}
	if !strings.Contains(out, `msg="environment variable set"`) {
		t.Errorf("no log line for the change:\n%s", out)
	}
}

// htmlText is how html/template writes a string into text or an attribute.
func htmlText(s string) string {
	var b strings.Builder
	template.Must(template.New("").Parse("{{.}}")).Execute(&b, s)
	return b.String()
}

// encodings are the forms a value could take in an HTML page or a JSON
// answer; none of them may appear.
func encodings(value string) []string {
	j, _ := json.Marshal(value)
	return []string{value, htmlText(value), html.EscapeString(value), string(j[1 : len(j)-1])}
}

func containsAny(body string, forms []string) bool {
	for _, f := range forms {
		if f != "" && strings.Contains(body, f) {
			return true
		}
	}
	return false
}

// TestAPIEnvMaskingProperty is the seed's Property 5 (display with masking):
// for any value of at least 6 characters set through the API, neither the
// list answer nor the settings page contains it in any encoding, both show
// exactly secret.MaskValue's form, the database row holds no plain value, and
// an administrator's reveal gives the value back unchanged.
//
// A value that is part of the page before it is set (six spaces of
// indentation, say), of its own key, or of its masked form would be found
// without any leak; such draws are skipped rather than counted.
func TestAPIEnvMaskingProperty(t *testing.T) {
	testenv.Checks(t, 40)
	e := newEnv(t, false, nil)
	p := e.project("masked")
	b := &browser{t: t, srv: e.srv, cookies: map[string]string{sessionCookie: e.token}}
	ctx := context.Background()
	rapid.Check(t, func(rt *rapid.T) {
		key := rapid.StringMatching(`[A-Z_][A-Z0-9_]{0,15}`).Draw(rt, "key")
		target := rapid.SampledFrom([]string{"all", "production", "preview"}).Draw(rt, "target")
		value := rapid.StringN(6, 80, -1).Draw(rt, "value")
		if deploy.ValidateVar(key, target, value) != nil {
			rt.Skip("not a variable the API accepts")
		}
		masked := secret.MaskValue(value)
		forms := encodings(value)
		_, before, _ := e.request("GET", "/api/projects/masked/env", e.token, nil)
		page := b.get("/projects/masked/settings").body
		if containsAny(page, forms) || containsAny(string(before), forms) || strings.Contains(key, value) || strings.Contains(masked, value) {
			rt.Skip("the value is part of the page without it")
		}

		code, data, _ := e.request("POST", "/api/projects/masked/env", e.token, map[string]string{"key": key, "value": value, "target": target})
		if code != http.StatusCreated && code != http.StatusOK {
			rt.Fatalf("set %s: %d %s", key, code, data)
		}
		if containsAny(string(data), forms) {
			rt.Fatalf("the set answer holds the value: %s", data)
		}
		code, data, _ = e.request("GET", "/api/projects/masked/env", e.token, nil)
		if code != http.StatusOK || containsAny(string(data), forms) {
			rt.Fatalf("the list holds the value: %d %s", code, data)
		}
		var vs []envVarJSON
		if err := json.Unmarshal(data, &vs); err != nil {
			rt.Fatal(err)
		}
		found := false
		for _, v := range vs {
			if v.Key == key && v.Target == target {
				found = true
				if v.Value != masked {
					rt.Fatalf("listed %q, want MaskValue's %q", v.Value, masked)
				}
			}
		}
		if !found {
			rt.Fatalf("%s (%s) not listed: %s", key, target, data)
		}

		r := b.get("/projects/masked/settings")
		if r.code != http.StatusOK {
			rt.Fatalf("settings page = %d", r.code)
		}
		if containsAny(r.body, forms) {
			rt.Fatalf("the settings page holds the value %q", value)
		}
		if !strings.Contains(r.body, `data-masked="`+htmlText(masked)+`">`+htmlText(masked)+`</code>`) {
			rt.Fatalf("the settings page lacks the masked form %q", masked)
		}

		var sealed []byte
		var row string
		if err := e.store.Pool().QueryRow(ctx, `SELECT value_ciphertext, t::text FROM environment_variables t
			WHERE project_id = $1 AND name = $2 AND target = $3`, p.ID, key, target).Scan(&sealed, &row); err != nil {
			rt.Fatal(err)
		}
		if bytes.Contains(sealed, []byte(value)) || strings.Contains(row, value) {
			rt.Fatalf("the database row holds the value in plain text: %s", row)
		}
		var got revealResponse
		code, data, _ = e.request("GET", "/api/projects/masked/env/"+key+"/value?target="+target, e.token, nil)
		if code != http.StatusOK || json.Unmarshal(data, &got) != nil || got.Value != value {
			rt.Fatalf("reveal: %d %q, want %q", code, got.Value, value)
		}
	})
}

// TestAPIRedeploy: a server app whose route prints a variable keeps the old
// value after the variable changes, and shows the new one after
// POST /redeploy, which restarts the same build without a rebuild. A project
// with nothing live is a 409.
func TestAPIRedeploy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true, nil)
	e.project("greeter")
	e.call("PUT", "/api/projects/greeter/env/GREETING", map[string]string{"value": "hello from one"}, http.StatusCreated, nil)
	e.gitPush("greeter", "main", map[string]string{
		"package.json": `{"name":"greeter","private":true,"scripts":{"start":"node server.js"}}`,
		"server.js": `require('http').createServer((q, r) => r.end(String(process.env.GREETING)))` +
			`.listen(process.env.PORT, process.env.HOST);`,
	})
	var b buildJSON
	e.call("POST", "/api/projects/greeter/builds", map[string]string{"ref": "main"}, http.StatusAccepted, &b)
	if got := e.waitBuild(b.ID); got.Status != schema.BuildSucceeded || got.StartCommand == "" {
		logs, _ := e.store.LogLines(context.Background(), b.ID, 0)
		t.Fatalf("build %d %s (start %q): %s; log: %v", b.ID, got.Status, got.StartCommand, got.Error, logs)
	}
	visit := func() string {
		t.Helper()
		req := httptest.NewRequest("GET", "http://greeter."+testBaseDomain+"/", nil)
		w := httptest.NewRecorder()
		e.edge.Handler().ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Fatalf("visit = %d %s", w.Code, w.Body)
		}
		return w.Body.String()
	}
	if got := visit(); got != "hello from one" {
		t.Fatalf("first deploy says %q", got)
	}

	e.call("PUT", "/api/projects/greeter/env/GREETING", map[string]string{"value": "hello from two"}, http.StatusOK, nil)
	if got := visit(); got != "hello from one" {
		t.Fatalf("a changed variable reached the running app without a redeploy: %q", got)
	}
	var resp activateResponse
	e.call("POST", "/api/projects/greeter/redeploy", nil, http.StatusOK, &resp)
	if resp.Build.ID != b.ID || !resp.Build.Active || resp.Deployment == nil || !resp.Deployment.Active || resp.Deployment.BuildID != b.ID {
		t.Fatalf("redeploy answer %+v", resp)
	}
	if got := visit(); got != "hello from two" {
		t.Fatalf("after redeploy the app says %q", got)
	}
	var ds []deploymentJSON
	e.call("GET", "/api/projects/greeter/deployments", nil, http.StatusOK, &ds)
	if len(ds) != 2 || ds[0].BuildID != b.ID || ds[1].BuildID != b.ID || !ds[0].Active || ds[1].Active {
		t.Fatalf("deployments %+v, want two of build %d, the newer one active", ds, b.ID)
	}
	var builds []buildJSON
	e.call("GET", "/api/projects/greeter/builds", nil, http.StatusOK, &builds)
	if len(builds) != 1 {
		t.Fatalf("redeploy built again: %d builds", len(builds))
	}

	e.project("idle")
	e.expectError("POST", "/api/projects/idle/redeploy", nil, http.StatusConflict, "")
	e.expectError("POST", "/api/projects/ghost/redeploy", nil, http.StatusNotFound, "")
	e.expectError("POST", "/api/projects/greeter/redeploy", map[string]any{"build_id": 1}, http.StatusBadRequest, "")
}
