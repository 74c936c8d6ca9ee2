package panel

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/ssh"
	"pgregory.net/rapid"

	"minivercel/creds"
	"minivercel/deploy"
	"minivercel/internal/testenv"
	"minivercel/schema"
)

func TestAPILogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, nil)
	t.Run("success", func(t *testing.T) {
		var resp loginResponse
		e.call("POST", "/api/auth/login", map[string]string{"username": "admin", "password": "admin-password"}, http.StatusOK, &resp)
		if resp.Token == "" || resp.User.Name != "admin" {
			t.Fatalf("login answer %+v", resp)
		}
		if d := time.Until(resp.ExpiresAt); d < 11*time.Hour || d > 12*time.Hour+time.Minute {
			t.Fatalf("expires_at %s is not about 12 hours away", resp.ExpiresAt)
		}
		code, data, _ := e.request("GET", "/api/me", resp.Token, nil)
		if code != http.StatusOK || !strings.Contains(string(data), `"name":"admin"`) {
			t.Fatalf("GET /api/me with the new token: %d %s", code, data)
		}
	})
	for _, tc := range []struct {
		name string
		body any
		want int
		msg  string
	}{
		{"wrong password", map[string]string{"username": "admin", "password": "nope-nope"}, 401, "invalid username or password"},
		{"unknown user", map[string]string{"username": "ghost", "password": "whatever1"}, 401, "invalid username or password"},
		{"malformed JSON", `{"username":`, 400, "invalid JSON"},
		{"unknown field", map[string]string{"user": "admin"}, 400, "unknown field"},
		{"empty body", "", 400, "JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, data, _ := e.request("POST", "/api/auth/login", "", tc.body)
			var ae apiError
			json.Unmarshal(data, &ae)
			if code != tc.want || !strings.Contains(ae.Error, tc.msg) {
				t.Fatalf("got %d %s, want %d with %q", code, data, tc.want, tc.msg)
			}
		})
	}
	t.Run("form body refused", func(t *testing.T) {
		code, _, _ := e.request("POST", "/api/auth/login", "", `{"username":"admin","password":"admin-password"}`,
			"Content-Type", "application/x-www-form-urlencoded")
		if code != http.StatusUnsupportedMediaType {
			t.Fatalf("status %d, want 415", code)
		}
	})
}

// TestAPILoginRateLimit is the brute-force guard: after 10 failed logins from one
// address within a minute, even the right password gets 429.
func TestAPILoginRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, nil)
	bad := map[string]string{"username": "admin", "password": "wrong-password"}
	for i := 0; i < loginFailuresAllowed; i++ {
		if code, data, _ := e.request("POST", "/api/auth/login", "", bad); code != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d %s", i+1, code, data)
		}
	}
	code, data, h := e.request("POST", "/api/auth/login", "", map[string]string{"username": "admin", "password": "admin-password"})
	if code != http.StatusTooManyRequests || h.Get("Retry-After") == "" || !strings.Contains(string(data), "too many") {
		t.Fatalf("after %d failures: %d %s (Retry-After %q), want 429", loginFailuresAllowed, code, data, h.Get("Retry-After"))
	}
}

func TestAPILoginLimiterWindow(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLoginLimiter(2, time.Minute)
	l.now = func() time.Time { return now }
	for _, step := range []struct {
		ip      string
		advance time.Duration
		success bool
		allowed bool
	}{
		{"a", 0, false, true},
		{"a", 0, true, true}, // a success is not counted
		{"a", 0, false, true},
		{"a", 0, false, false}, // two failures used up
		{"b", 0, false, true},  // per address
		{"a", 61 * time.Second, false, true},
	} {
		now = now.Add(step.advance)
		_, ok := l.begin(step.ip)
		if ok != step.allowed {
			t.Fatalf("step %+v: allowed %v", step, ok)
		}
		if ok && step.success {
			l.succeeded(step.ip)
		}
	}
}

func TestAPIMe(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, nil)
	var u userJSON
	e.call("GET", "/api/me", nil, http.StatusOK, &u)
	if u.Name != "admin" || !u.IsAdmin || u.ID != e.admin.ID {
		t.Fatalf("me = %+v", u)
	}
	code, _, h := e.request("GET", "/api/me", "", nil)
	if code != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("without credentials: %d %q", code, h.Get("WWW-Authenticate"))
	}
}

func TestAPIProjectsCRUD(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, nil)
	var d projectDetailJSON
	e.call("POST", "/api/projects", map[string]any{"name": "blog", "framework": "static", "output_dir": "site"}, http.StatusCreated, &d)
	if d.Name != "blog" || d.URL != "http://blog."+testBaseDomain+"/" || d.Settings.Framework != "static" ||
		d.Settings.OutputDir != "site" || d.Settings.ProductionBranch != "main" || d.ActiveBuild != nil ||
		d.Status != nil || d.Health != "none" {
		t.Fatalf("created %+v", d)
	}
	t.Run("create errors", func(t *testing.T) {
		e.expectError("POST", "/api/projects", map[string]any{"name": "blog"}, http.StatusConflict, "")
		e.expectError("POST", "/api/projects", map[string]any{"name": "Bad_Name"}, http.StatusBadRequest, "name")
		e.expectError("POST", "/api/projects", map[string]any{"name": "a--b"}, http.StatusBadRequest, "name")
		e.expectError("POST", "/api/projects", map[string]any{"name": "admin"}, http.StatusBadRequest, "name")
		e.expectError("POST", "/api/projects", map[string]any{"name": "x", "nope": 1}, http.StatusBadRequest, "")
		e.expectError("POST", "/api/projects", `{"name":`, http.StatusBadRequest, "")
		// A refused setting leaves no project behind.
		e.expectError("POST", "/api/projects", map[string]any{"name": "later", "health_tries": 0}, http.StatusBadRequest, "health_tries")
		e.expectError("GET", "/api/projects/later", nil, http.StatusNotFound, "")
	})
	t.Run("get", func(t *testing.T) {
		var got projectDetailJSON
		e.call("GET", "/api/projects/blog", nil, http.StatusOK, &got)
		if got.Name != "blog" || got.Settings != d.Settings {
			t.Fatalf("got %+v", got)
		}
		e.expectError("GET", "/api/projects/ghost", nil, http.StatusNotFound, "")
	})
	t.Run("patch", func(t *testing.T) {
		for _, tc := range []struct {
			field string
			value any
			ok    bool
			check func(settingsJSON) bool
		}{
			{"production_branch", "release/v2", true, func(s settingsJSON) bool { return s.ProductionBranch == "release/v2" }},
			{"production_branch", "", false, nil},
			{"production_branch", "a..b", false, nil},
			{"production_branch", "with space", false, nil},
			{"framework", "node", true, func(s settingsJSON) bool { return s.Framework == "node" }},
			{"framework", "auto", true, func(s settingsJSON) bool { return s.Framework == "" }},
			{"framework", "rails", false, nil},
			{"install_command", "npm ci --omit=dev", true, func(s settingsJSON) bool { return s.InstallCommand == "npm ci --omit=dev" }},
			{"install_command", "a\nb", false, nil},
			{"build_command", "npm run build:prod", true, func(s settingsJSON) bool { return s.BuildCommand == "npm run build:prod" }},
			{"build_command", strings.Repeat("x", deploy.MaxCommandLen+1), false, nil},
			{"start_command", "node server.js", true, func(s settingsJSON) bool { return s.StartCommand == "node server.js" }},
			{"output_dir", "dist/", true, func(s settingsJSON) bool { return s.OutputDir == "dist" }},
			{"output_dir", "../etc", false, nil},
			{"output_dir", "/etc", false, nil},
			{"health_path", "/healthz", true, func(s settingsJSON) bool { return s.HealthPath == "/healthz" }},
			{"health_path", "healthz", false, nil},
			{"health_tries", 5, true, func(s settingsJSON) bool { return s.HealthTries == 5 }},
			// Times a million nanoseconds, this wraps around to 1 s, inside 100ms–10m,
			// without the clamp.
			{"health_interval_ms", int64(18446744074710), false, nil},
			{"health_tries", 101, false, nil},
			{"health_tries", "5", false, nil},
			{"health_interval_ms", 250, true, func(s settingsJSON) bool { return s.HealthIntervalMS == 250 }},
			{"health_interval_ms", 99, false, nil},
			{"memory_limit", 512 << 20, true, func(s settingsJSON) bool { return s.MemoryLimit == 512<<20 }},
			{"memory_limit", 0, true, func(s settingsJSON) bool { return s.MemoryLimit == 0 }},
			{"memory_limit", 1 << 20, false, nil},
			{"memory_limit", "512M", false, nil},
			{"pids_limit", 128, true, func(s settingsJSON) bool { return s.PidsLimit == 128 }},
			{"pids_limit", -1, false, nil},
		} {
			t.Run(fmt.Sprintf("%s=%v", tc.field, tc.value), func(t *testing.T) {
				body := map[string]any{tc.field: tc.value}
				if !tc.ok {
					e.expectError("PATCH", "/api/projects/blog", body, http.StatusBadRequest, tc.field)
					return
				}
				var got projectDetailJSON
				e.call("PATCH", "/api/projects/blog", body, http.StatusOK, &got)
				if !tc.check(got.Settings) {
					t.Fatalf("settings after PATCH %v: %+v", body, got.Settings)
				}
			})
		}
		// A start command needs a server framework.
		e.call("PATCH", "/api/projects/blog", map[string]any{"framework": "node", "start_command": "node a.js"}, http.StatusOK, nil)
		e.expectError("PATCH", "/api/projects/blog", map[string]any{"framework": "static"}, http.StatusBadRequest, "start_command")
		e.expectError("PATCH", "/api/projects/ghost", map[string]any{"framework": "node"}, http.StatusNotFound, "")
		e.expectError("PATCH", "/api/projects/blog", map[string]any{"colour": "red"}, http.StatusBadRequest, "")
		e.expectError("PATCH", "/api/projects/blog", "[1,2]", http.StatusBadRequest, "")
	})
	t.Run("delete", func(t *testing.T) {
		e.call("DELETE", "/api/projects/blog", nil, http.StatusNoContent, nil)
		e.expectError("GET", "/api/projects/blog", nil, http.StatusNotFound, "")
		e.expectError("DELETE", "/api/projects/blog", nil, http.StatusNotFound, "")
	})
}

// TestAPICrossOriginWritesRefused: a deployed app on a sibling subdomain is the
// same site as the panel, so SameSite cookies do not stop its forged POSTs;
// the Origin check does. Prefix tricks do not pass it.
func TestAPICrossOriginWritesRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, nil)
	host := e.srv.Addr().String()
	for _, origin := range []string{"http://evil." + testBaseDomain, "http://" + host + ".evil.net", "null"} {
		code, data, _ := e.request("POST", "/api/projects", e.token, map[string]any{"name": "forged"}, "Origin", origin)
		if code != http.StatusForbidden {
			t.Fatalf("Origin %s: %d %s, want 403", origin, code, data)
		}
	}
	code, data, _ := e.request("POST", "/api/projects", e.token, map[string]any{"name": "mine"}, "Origin", "http://"+host)
	if code != http.StatusCreated {
		t.Fatalf("same origin: %d %s", code, data)
	}
}

// TestAPIBuildsAndDeployments drives real builds of a static site through the
// API: rebuild, list, logs, cancel, activate, deployments, delete.
func TestAPIBuildsAndDeployments(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true, nil)
	e.call("POST", "/api/projects", map[string]any{"name": "site"}, http.StatusCreated, nil)
	e.project("other")

	e.expectError("POST", "/api/projects/site/builds", nil, http.StatusNotFound, "") // no repository yet
	first := e.realBuild("site", "main", "<h1>one</h1>")
	if first.Status != schema.BuildSucceeded || first.Branch != "main" || first.Kind != "static" || !first.Active ||
		first.DurationMS == nil || first.StartedAt == nil || first.FinishedAt == nil || first.CommitMessage != "deploy main" ||
		!strings.HasPrefix(first.URL, "http://site--") || !strings.HasSuffix(first.URL, "."+testBaseDomain+"/") {
		t.Fatalf("first build %+v", first)
	}
	second := e.realBuild("site", "main", "<h1>two</h1>")
	preview := e.realBuild("site", "feature", "<h1>preview</h1>")
	id := func(b buildJSON) string { return strconv.FormatInt(b.ID, 10) }

	t.Run("list", func(t *testing.T) {
		var bs []buildJSON
		e.call("GET", "/api/projects/site/builds", nil, http.StatusOK, &bs)
		if len(bs) != 3 || bs[0].ID != preview.ID || bs[1].ID != second.ID || bs[2].ID != first.ID {
			t.Fatalf("builds %+v, want newest first", bs)
		}
		if bs[0].Active || !bs[1].Active || bs[2].Active {
			t.Fatalf("active flags %v %v %v, want the second production build", bs[0].Active, bs[1].Active, bs[2].Active)
		}
		e.expectError("GET", "/api/projects/ghost/builds", nil, http.StatusNotFound, "")
		var ps []projectJSON
		e.call("GET", "/api/projects", nil, http.StatusOK, &ps)
		var site projectJSON
		for _, p := range ps {
			if p.Name == "site" {
				site = p
			}
		}
		if site.Status == nil || *site.Status != schema.BuildSucceeded || site.ActiveBuildID == nil || *site.ActiveBuildID != second.ID ||
			site.LastDeployAt == nil || site.Health != "healthy" || site.LatestBuildID == nil || *site.LatestBuildID != preview.ID {
			t.Fatalf("project summary %+v", site)
		}
	})
	t.Run("rebuild errors", func(t *testing.T) {
		e.expectError("POST", "/api/projects/site/builds", map[string]string{"ref": "nope"}, http.StatusNotFound, "")
		e.expectError("POST", "/api/projects/site/builds", map[string]string{"ref": "bad..ref"}, http.StatusBadRequest, "ref")
		e.expectError("POST", "/api/projects/site/builds", map[string]int{"ref": 1}, http.StatusBadRequest, "ref")
		e.expectError("POST", "/api/projects/ghost/builds", nil, http.StatusNotFound, "")
	})
	t.Run("get build", func(t *testing.T) {
		var b buildJSON
		e.call("GET", "/api/builds/"+id(preview), nil, http.StatusOK, &b)
		if b.ID != preview.ID || b.Branch != "feature" || b.Active {
			t.Fatalf("build %+v", b)
		}
		e.expectError("GET", "/api/builds/999999", nil, http.StatusNotFound, "")
		e.expectError("GET", "/api/builds/abc", nil, http.StatusBadRequest, "")
	})
	t.Run("logs", func(t *testing.T) {
		var lines []logLineJSON
		e.call("GET", "/api/builds/"+id(first)+"/logs", nil, http.StatusOK, &lines)
		if len(lines) < 3 || !strings.HasPrefix(lines[0].Line, "-----> Checking out") {
			t.Fatalf("logs %+v", lines)
		}
		for i, l := range lines {
			if l.Seq != i+1 {
				t.Fatalf("line %d has seq %d", i, l.Seq)
			}
		}
		var rest []logLineJSON
		e.call("GET", "/api/builds/"+id(first)+"/logs?after=2", nil, http.StatusOK, &rest)
		if len(rest) != len(lines)-2 || rest[0].Seq != 3 {
			t.Fatalf("after=2: %+v", rest)
		}
		var page []logLineJSON
		e.call("GET", "/api/builds/"+id(first)+"/logs?after=1&limit=2", nil, http.StatusOK, &page)
		if len(page) != 2 || page[0].Seq != 2 || page[1].Seq != 3 {
			t.Fatalf("after=1&limit=2: %+v", page)
		}
		e.expectError("GET", "/api/builds/"+id(first)+"/logs?after=x", nil, http.StatusBadRequest, "after")
		e.expectError("GET", "/api/builds/"+id(first)+"/logs?limit=0", nil, http.StatusBadRequest, "limit")
		e.expectError("GET", "/api/builds/"+id(first)+"/logs?limit=10001", nil, http.StatusBadRequest, "limit")
		e.expectError("GET", "/api/builds/999999/logs", nil, http.StatusNotFound, "")
	})
	t.Run("cancel", func(t *testing.T) {
		e.expectError("POST", "/api/builds/"+id(first)+"/cancel", nil, http.StatusConflict, "")
		e.expectError("POST", "/api/builds/999999/cancel", nil, http.StatusNotFound, "")
		// A queued build without a job (as if its worker had not picked it up).
		queued := e.storedBuild(e.project("site"))
		var b buildJSON
		e.call("POST", "/api/builds/"+strconv.FormatInt(queued.ID, 10)+"/cancel", nil, http.StatusAccepted, &b)
		if b.Status != schema.BuildCanceled {
			t.Fatalf("canceled queued build is %s", b.Status)
		}
	})
	t.Run("activate", func(t *testing.T) {
		var resp activateResponse
		e.call("POST", "/api/projects/site/activate", map[string]int64{"build_id": first.ID}, http.StatusOK, &resp)
		if resp.Build.ID != first.ID || !resp.Build.Active || resp.Deployment == nil || !resp.Deployment.Active || resp.Deployment.BuildID != first.ID {
			t.Fatalf("activate answer %+v", resp)
		}
		if active, ok := e.edge.Active("site"); !ok || active != first.ID {
			t.Fatalf("edge serves %d %v, want %d", active, ok, first.ID)
		}
		e.expectError("POST", "/api/projects/other/activate", map[string]int64{"build_id": first.ID}, http.StatusNotFound, "")
		e.expectError("POST", "/api/projects/ghost/activate", map[string]int64{"build_id": first.ID}, http.StatusNotFound, "")
		e.expectError("POST", "/api/projects/site/activate", map[string]int64{"build_id": 999999}, http.StatusNotFound, "")
		e.expectError("POST", "/api/projects/site/activate", map[string]any{}, http.StatusBadRequest, "build_id")
		e.expectError("POST", "/api/projects/site/activate", map[string]string{"build_id": "x"}, http.StatusBadRequest, "build_id")
		// A failed build is refused with the reason.
		failed := e.storedBuild(e.project("site"))
		e.store.FinishBuild(context.Background(), failed.ID, schema.BuildFailed, "build failed")
		ae := e.expectError("POST", "/api/projects/site/activate", map[string]int64{"build_id": failed.ID}, http.StatusConflict, "")
		if !strings.Contains(ae.Error, "failed") {
			t.Fatalf("409 says %q", ae.Error)
		}
		// A succeeded build whose artifact is gone fails to activate; the
		// previous deployment keeps serving.
		broken := e.storedBuild(e.project("site"))
		e.store.SetBuildArtifact(context.Background(), broken.ID, schema.Artifact{Kind: "static", Path: "/nonexistent/a.tar.gz", SHA256: strings.Repeat("0", 64)})
		e.store.FinishBuild(context.Background(), broken.ID, schema.BuildSucceeded, "")
		ae = e.expectError("POST", "/api/projects/site/activate", map[string]int64{"build_id": broken.ID}, http.StatusBadGateway, "")
		if !strings.HasPrefix(ae.Error, "build "+strconv.FormatInt(broken.ID, 10)+" was not activated: ") {
			t.Fatalf("502 says %q", ae.Error)
		}
		if active, _ := e.edge.Active("site"); active != first.ID {
			t.Fatalf("after a failed activation the edge serves %d, want %d", active, first.ID)
		}
		var ds []deploymentJSON
		e.call("GET", "/api/projects/site/deployments", nil, http.StatusOK, &ds)
		if len(ds) < 4 || ds[0].BuildID != broken.ID || ds[0].Status != schema.DeploymentFailed || ds[0].Error == "" || ds[0].Active {
			t.Fatalf("deployments %+v, want the failed one first", ds)
		}
		active := 0
		for _, d := range ds {
			if d.Active {
				active++
				if d.BuildID != first.ID {
					t.Fatalf("active deployment is of build %d", d.BuildID)
				}
			}
		}
		if active != 1 {
			t.Fatalf("%d active deployments", active)
		}
		e.expectError("GET", "/api/projects/ghost/deployments", nil, http.StatusNotFound, "")
	})
	t.Run("delete project", func(t *testing.T) {
		e.call("DELETE", "/api/projects/site", nil, http.StatusNoContent, nil)
		if _, found := e.edge.Health("site"); found {
			t.Fatal("the edge still serves a deleted project")
		}
		e.expectError("GET", "/api/builds/"+id(first), nil, http.StatusNotFound, "")
	})
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, nil)
	key := newAuthorizedKey(t, "me@laptop")
	var k keyJSON
	e.call("POST", "/api/keys", map[string]string{"public_key": key}, http.StatusCreated, &k)
	if k.Name != "me@laptop" || k.User != "admin" || !strings.HasPrefix(k.Fingerprint, "SHA256:") || strings.Contains(k.PublicKey, "laptop") {
		t.Fatalf("added %+v", k)
	}
	// The fingerprint is the one gitd looks keys up by.
	if u, err := e.store.UserByKeyFingerprint(context.Background(), k.Fingerprint); err != nil || u.ID != e.admin.ID {
		t.Fatalf("lookup by fingerprint: %v %v", u, err)
	}
	e.expectError("POST", "/api/keys", map[string]string{"public_key": key, "name": "again"}, http.StatusConflict, "")
	weakRSA, _ := rsa.GenerateKey(rand.Reader, 1024)
	weak, _ := ssh.NewPublicKey(&weakRSA.PublicKey)
	for name, bad := range map[string]string{
		"garbage":  "not a key",
		"empty":    "",
		"two keys": key + "\n" + newAuthorizedKey(t, "b"),
		"options":  `command="/bin/sh" ` + newAuthorizedKey(t, "c"),
		"weak RSA": string(ssh.MarshalAuthorizedKey(weak)),
	} {
		t.Run(name, func(t *testing.T) {
			e.expectError("POST", "/api/keys", map[string]string{"public_key": bad}, http.StatusBadRequest, "public_key")
		})
	}
	e.expectError("POST", "/api/keys", map[string]string{"public_key": newAuthorizedKey(t, ""), "name": strings.Repeat("n", 101)}, http.StatusBadRequest, "name")
	e.expectError("POST", "/api/keys", `{}{}`, http.StatusBadRequest, "")

	var ks []keyJSON
	e.call("GET", "/api/keys", nil, http.StatusOK, &ks)
	if len(ks) != 1 || ks[0].ID != k.ID {
		t.Fatalf("keys %+v", ks)
	}
	// Another (non-admin) user sees none of them and cannot delete them.
	_, bobToken := e.user("bob", false)
	code, data, _ := e.request("GET", "/api/keys", bobToken, nil)
	if code != http.StatusOK || strings.TrimSpace(string(data)) != "[]" {
		t.Fatalf("bob's keys: %d %s", code, data)
	}
	path := "/api/keys/" + strconv.FormatInt(k.ID, 10)
	if code, _, _ := e.request("DELETE", path, bobToken, nil); code != http.StatusNotFound {
		t.Fatalf("bob deleting admin's key: %d, want 404", code)
	}
	e.call("DELETE", path, nil, http.StatusNoContent, nil)
	e.expectError("DELETE", path, nil, http.StatusNotFound, "")
	e.expectError("DELETE", "/api/keys/x", nil, http.StatusBadRequest, "")
}

// TestAPIProjectListingProperty is the seed's Property 2: whatever set of
// projects exists (made through the API or by a first push), GET
// /api/projects lists exactly them, by name.
func TestAPIProjectListingProperty(t *testing.T) {
	testenv.Checks(t, 30)
	e := newEnv(t, false, nil)
	rapid.Check(t, func(rt *rapid.T) {
		names := rapid.SliceOfNDistinct(rapid.StringMatching(`[a-z][a-z0-9]{0,8}(-[a-z0-9]{1,4})?`), 0, 8, rapid.ID).Draw(rt, "names")
		var want []string
		for i, n := range names {
			if schema.ValidateProjectName(n) != nil {
				continue
			}
			want = append(want, n)
			if i%2 == 0 {
				e.call("POST", "/api/projects", map[string]string{"name": n}, http.StatusCreated, nil)
			} else {
				e.project(n)
			}
		}
		slices.Sort(want)
		var ps []projectJSON
		e.call("GET", "/api/projects", nil, http.StatusOK, &ps)
		var got []string
		for _, p := range ps {
			got = append(got, p.Name)
			if p.URL != "http://"+p.Name+"."+testBaseDomain+"/" || p.ProductionBranch != "main" {
				rt.Fatalf("listed %+v", p)
			}
		}
		if !slices.Equal(got, want) {
			rt.Fatalf("listed %v, want %v", got, want)
		}
		for _, n := range want {
			e.call("DELETE", "/api/projects/"+n, nil, http.StatusNoContent, nil)
		}
	})
}

// TestAPILogsPersistedProperty is the seed's Property 10: once a build has ended,
// GET /api/builds/{id}/logs returns every line it produced, in order, and
// ?after=S exactly the ones after S.
func TestAPILogsPersistedProperty(t *testing.T) {
	testenv.Checks(t, 40)
	e := newEnv(t, false, nil)
	p := e.project("logs")
	rapid.Check(t, func(rt *rapid.T) {
		b := e.storedBuild(p)
		lines := rapid.SliceOfN(rapid.StringMatching(`[ -~]{0,40}`), 0, 500).Draw(rt, "lines")
		after := rapid.IntRange(0, len(lines)+1).Draw(rt, "after")
		status := rapid.SampledFrom([]schema.BuildStatus{schema.BuildSucceeded, schema.BuildFailed, schema.BuildCanceled}).Draw(rt, "status")
		e.broker.Begin(b.ID)
		for _, l := range lines {
			e.broker.Publish(b.ID, l)
		}
		e.broker.Flush(b.ID)
		e.store.FinishBuild(context.Background(), b.ID, status, "")
		e.broker.Finish(b.ID, status)
		var got []logLineJSON
		e.call("GET", fmt.Sprintf("/api/builds/%d/logs", b.ID), nil, http.StatusOK, &got)
		if len(got) != len(lines) {
			rt.Fatalf("%d lines stored, want %d", len(got), len(lines))
		}
		for i, l := range got {
			if l.Seq != i+1 || l.Line != lines[i] {
				rt.Fatalf("line %d = %+v, want seq %d %q", i, l, i+1, lines[i])
			}
		}
		var rest []logLineJSON
		e.call("GET", fmt.Sprintf("/api/builds/%d/logs?after=%d", b.ID, after), nil, http.StatusOK, &rest)
		if want := max(len(lines)-after, 0); len(rest) != want || (want > 0 && rest[0].Seq != after+1) {
			rt.Fatalf("after=%d: %d lines, want %d", after, len(rest), want)
		}
	})
}

// TestAPIDeploymentHistoryProperty is the seed's Properties 14 and 15 on real
// builds and real activations: after any sequence of activations, the
// deployments are listed newest first with exactly one active, the last one;
// the project's active_build_id, the builds list's active flags and GET
// /api/builds/{id} all name that build, and the edge serves it.
func TestAPIDeploymentHistoryProperty(t *testing.T) {
	testenv.Checks(t, 8)
	e := newEnv(t, true, nil)
	e.call("POST", "/api/projects", map[string]any{"name": "hist"}, http.StatusCreated, nil)
	var builds []buildJSON
	for i := range 3 {
		builds = append(builds, e.realBuild("hist", "main", fmt.Sprintf("<p>%d</p>", i)))
	}
	rapid.Check(t, func(rt *rapid.T) {
		picks := rapid.SliceOfN(rapid.IntRange(0, len(builds)-1), 1, 4).Draw(rt, "activations")
		var before []deploymentJSON
		e.call("GET", "/api/projects/hist/deployments", nil, http.StatusOK, &before)
		for _, i := range picks {
			e.call("POST", "/api/projects/hist/activate", map[string]int64{"build_id": builds[i].ID}, http.StatusOK, nil)
		}
		last := builds[picks[len(picks)-1]].ID

		var ds []deploymentJSON
		e.call("GET", "/api/projects/hist/deployments", nil, http.StatusOK, &ds)
		if len(ds) != len(before)+len(picks) {
			rt.Fatalf("%d deployments, want %d", len(ds), len(before)+len(picks))
		}
		for i := range picks { // newest first: the new ones, in reverse order of activation
			if want := builds[picks[len(picks)-1-i]].ID; ds[i].BuildID != want {
				rt.Fatalf("deployment %d is of build %d, want %d", i, ds[i].BuildID, want)
			}
		}
		active := 0
		for i, d := range ds {
			if i > 0 && (d.ID >= ds[i-1].ID || d.ActivatedAt.After(ds[i-1].ActivatedAt)) {
				rt.Fatalf("deployments not newest first at %d", i)
			}
			if d.Active {
				active++
				if i != 0 || d.BuildID != last || d.Status != schema.DeploymentActive || d.DeactivatedAt != nil {
					rt.Fatalf("active deployment %+v at %d, want build %d first", d, i, last)
				}
			} else if d.DeactivatedAt == nil {
				rt.Fatalf("inactive deployment %+v has no deactivated_at", d)
			}
		}
		if active != 1 {
			rt.Fatalf("%d active deployments", active)
		}

		var p projectDetailJSON
		e.call("GET", "/api/projects/hist", nil, http.StatusOK, &p)
		if p.ActiveBuildID == nil || *p.ActiveBuildID != last || p.ActiveBuild == nil || p.ActiveBuild.ID != last || !p.ActiveBuild.Active {
			rt.Fatalf("project says active %v / %+v, want %d", p.ActiveBuildID, p.ActiveBuild, last)
		}
		var bs []buildJSON
		e.call("GET", "/api/projects/hist/builds", nil, http.StatusOK, &bs)
		for _, b := range bs {
			if b.Active != (b.ID == last) {
				rt.Fatalf("build %d active=%v, last activation was %d", b.ID, b.Active, last)
			}
			var one buildJSON
			e.call("GET", fmt.Sprintf("/api/builds/%d", b.ID), nil, http.StatusOK, &one)
			if one.Active != b.Active {
				rt.Fatalf("GET /api/builds/%d active=%v, list says %v", b.ID, one.Active, b.Active)
			}
		}
		if id, ok := e.edge.Active("hist"); !ok || id != last {
			rt.Fatalf("edge serves %d, want %d", id, last)
		}
	})
}

// TestAPIEveryRouteRequiresAuth is the seed's Property 24: every API route
// refuses a request without credentials, with a malformed or forged token, an
// expired JWT, a JWT of a deleted user or a revoked API token (401), and
// answers a valid JWT or API token with something other than 401.
func TestAPIEveryRouteRequiresAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, nil)
	ctx := context.Background()
	p := e.project("guarded")
	b := e.storedBuild(p)
	routes := []struct{ method, path string }{
		{"GET", "/api/me"},
		{"GET", "/api/projects"},
		{"POST", "/api/projects"},
		{"GET", "/api/projects/guarded"},
		{"PATCH", "/api/projects/guarded"},
		{"DELETE", "/api/projects/nope"},
		{"GET", "/api/projects/guarded/builds"},
		{"POST", "/api/projects/nope/builds"},
		{"GET", fmt.Sprintf("/api/builds/%d", b.ID)},
		{"GET", fmt.Sprintf("/api/builds/%d/logs", b.ID)},
		{"POST", "/api/builds/999999/cancel"},
		{"POST", "/api/projects/guarded/activate"},
		{"GET", "/api/projects/guarded/deployments"},
		{"POST", "/api/projects/guarded/redeploy"},
		{"GET", "/api/projects/guarded/env"},
		{"POST", "/api/projects/guarded/env"},
		{"PUT", "/api/projects/guarded/env/SOME_KEY"},
		{"DELETE", "/api/projects/guarded/env/SOME_KEY"},
		{"GET", "/api/projects/guarded/env/SOME_KEY/value"},
		{"GET", "/api/projects/guarded/domains"},
		{"POST", "/api/projects/guarded/domains"},
		{"DELETE", "/api/projects/guarded/domains/www.example.com"},
		{"GET", "/api/keys"},
		{"POST", "/api/keys"},
		{"DELETE", "/api/keys/999999"},
		{"GET", "/api/nodes"},
		{"GET", "/api/no-such-route"},
	}
	apiToken, hash := creds.NewToken()
	if _, err := e.store.CreateToken(ctx, e.admin.ID, "ci", hash); err != nil {
		t.Fatal(err)
	}
	revoked, rhash := creds.NewToken()
	rtok, _ := e.store.CreateToken(ctx, e.admin.ID, "old", rhash)
	if err := e.store.RevokeToken(ctx, rtok.ID); err != nil {
		t.Fatal(err)
	}
	sign := func(key []byte, sub int64, exp time.Time) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
			Subject: strconv.FormatInt(sub, 10), Issuer: "minivercel",
			IssuedAt: jwt.NewNumericDate(exp.Add(-time.Hour)), ExpiresAt: jwt.NewNumericDate(exp),
		}).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	gone, goneToken := e.user("gone", false)
	if _, err := e.store.Pool().Exec(ctx, `DELETE FROM users WHERE id = $1`, gone.ID); err != nil {
		t.Fatal(err)
	}
	refused := map[string]string{
		"none":           "",
		"garbage":        "garbage",
		"unknown token":  creds.TokenPrefix + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		"revoked token":  revoked,
		"expired JWT":    sign(e.key, e.admin.ID, time.Now().Add(-time.Minute)),
		"forged JWT":     sign([]byte("another key of at least 32 bytes!!"), e.admin.ID, time.Now().Add(time.Hour)),
		"deleted user":   goneToken,
		"alg none JWT":   "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + strings.Split(sign(e.key, e.admin.ID, time.Now().Add(time.Hour)), ".")[1] + ".",
		"no Bearer word": "",
	}
	accepted := map[string]string{"JWT": e.token, "API token": apiToken}
	credNames := slices.Sorted(func(yield func(string) bool) {
		for k := range refused {
			if !yield(k) {
				return
			}
		}
	})
	rapid.Check(t, func(rt *rapid.T) {
		r := rapid.SampledFrom(routes).Draw(rt, "route")
		var body any
		if r.method != "GET" && r.method != "DELETE" {
			body = map[string]any{}
		}
		cred := rapid.SampledFrom(credNames).Draw(rt, "refused")
		var code int
		if cred == "no Bearer word" {
			code, _, _ = e.request(r.method, r.path, "", body, "Authorization", e.token)
		} else {
			code, _, _ = e.request(r.method, r.path, refused[cred], body)
		}
		if code != http.StatusUnauthorized {
			rt.Fatalf("%s %s with %s: %d, want 401", r.method, r.path, cred, code)
		}
		good := rapid.SampledFrom([]string{"JWT", "API token"}).Draw(rt, "accepted")
		if code, data, _ := e.request(r.method, r.path, accepted[good], body); code == http.StatusUnauthorized || code >= 500 {
			rt.Fatalf("%s %s with a valid %s: %d %s", r.method, r.path, good, code, data)
		}
	})
}
