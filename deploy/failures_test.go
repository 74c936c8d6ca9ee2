package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"minivercel/deploy"
	"minivercel/internal/testwait"
	"net/http"
	"strings"
	"testing"
	"time"

	"minivercel/edge"
	"minivercel/internal/testenv"
	"minivercel/schema"
)

// liveApp creates a project with one variable and makes an app build of it
// live.
func (e *env) liveApp(name, target, key, value string) (schema.Project, schema.Build) {
	e.t.Helper()
	ctx := context.Background()
	p := e.project(name)
	if _, err := e.svc.SetVars(ctx, e.Admin, name, target, []deploy.Var{{Key: key, Value: value}}); err != nil {
		e.t.Fatal(err)
	}
	b := e.app(p, "main", 200)
	if _, err := e.svc.Activate(ctx, e.Admin, name, b.ID); err != nil {
		e.t.Fatal(err)
	}
	return p, b
}

// TestUnhealthyActivationRecorded: an app that answers its health check with
// 500 is recorded unhealthy with the reason, its process is gone, and the
// previous app serves on with its variables.
func TestUnhealthyActivationRecorded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	p, good := e.liveApp("svc", "", "V_MODE", "first")
	ps := p.Settings()
	ps.HealthTries, ps.HealthIntervalMS = 2, 100
	if _, err := e.Store.UpdateProjectSettings(ctx, p.ID, ps); err != nil {
		t.Fatal(err)
	}
	bad := e.app(p, "main", 500)
	_, err := e.svc.Activate(ctx, e.Admin, "svc", bad.ID)
	if !errors.Is(err, deploy.ErrActivation) || !strings.Contains(err.Error(), "was not activated") {
		t.Fatalf("activating an app that answers 500: %v", err)
	}
	ds, _ := e.Store.ListDeployments(ctx, p.ID)
	if ds[0].BuildID != bad.ID || ds[0].Status != schema.DeploymentUnhealthy || ds[0].Error == "" {
		t.Fatalf("newest deployment %+v, want build %d unhealthy with a reason", ds[0], bad.ID)
	}
	if got := e.appVars("svc." + testBase); got["V_MODE"] != "first" {
		t.Fatalf("the previous app serves %v", got)
	}
	if live := e.liveRows(p); len(live) != 1 || live[0].BuildID != good.ID {
		t.Fatalf("active deployments %+v, want build %d", live, good.ID)
	}
}

// failActivationRecord makes PostgreSQL refuse to record build id as active:
// a real database failure at the one moment after the edge switched and
// before the database agrees, which nothing else can cause on demand.
func (e *env) failActivationRecord(buildID int64) {
	e.t.Helper()
	e.exec(e.t, fmt.Sprintf(`
		CREATE FUNCTION refuse_activation() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'disk full (test)'; END $$;
		CREATE TRIGGER refuse_activation BEFORE UPDATE ON deployments FOR EACH ROW
		WHEN (NEW.status = 'active' AND NEW.build_id = %d) EXECUTE FUNCTION refuse_activation();`, buildID))
}

// TestFailedRecordPutsBackPreviousApp: when the switch happened but the
// database could not record it, the previous build serves again, restarted
// with its variables; the failure is reported, and the database still says
// the previous build is live, which is what is served.
func TestFailedRecordPutsBackPreviousApp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	p, old := e.liveApp("shop", "production", "V_DB", "postgres://prod")
	next := e.app(p, "main", 200)
	e.failActivationRecord(next.ID)
	_, err := e.svc.Activate(ctx, e.Admin, "shop", next.ID)
	// The database's own words stay in the server's log.
	if !errors.Is(err, deploy.ErrActivation) || !strings.Contains(err.Error(), "the server could not switch to it") || strings.Contains(err.Error(), "disk full") {
		t.Fatalf("activation whose record failed: %v", err)
	}
	if id, _ := e.edge.Active("shop"); id != old.ID {
		t.Fatalf("the edge serves build %d, want the previous %d", id, old.ID)
	}
	if got := e.appVars("shop." + testBase); got["V_DB"] != "postgres://prod" {
		t.Fatalf("the previous app came back with %v, want its variables", got)
	}
	if live := e.liveRows(p); len(live) != 1 || live[0].BuildID != old.ID {
		t.Fatalf("active deployments %+v, want build %d", live, old.ID)
	}
}

// afterSwitch is the real edge with one addition: right after it switched to
// build buildID, then runs. It times a fault that nothing else can place
// between the switch and what follows it.
type afterSwitch struct {
	deploy.Edge
	project string
	buildID int64
	then    func()
}

func (a afterSwitch) Commit(deploymentID int64) error {
	err := a.Edge.Commit(deploymentID)
	if cur, _ := a.Edge.Active(a.project); err == nil && cur == a.buildID {
		a.then()
	}
	return err
}

// TestFailedRecordWithUnreadableVariables: if the previous app cannot get its
// variables back, it is not restarted without them: the new build, started
// with its variables, serves on, and the error says why nothing was put back.
func TestFailedRecordWithUnreadableVariables(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	p, _ := e.liveApp("pay", "", "V_KEY", "sk_live_123456")
	next := e.app(p, "main", 200)
	e.failActivationRecord(next.ID)
	corrupt := func() {
		e.exec(t, `UPDATE environment_variables SET value_ciphertext = '\x00'`)
	}
	act := deploy.NewActivator(afterSwitch{Edge: e.edge, project: "pay", buildID: next.ID, then: corrupt}, e.Store, e.Vars, nil)
	err := act.Activate(ctx, next, nil)
	if err == nil || !strings.Contains(err.Error(), "record activation") || !strings.Contains(err.Error(), "read the project's variables") {
		t.Fatalf("activation whose record failed and whose put-back cannot read variables: %v", err)
	}
	if id, _ := e.edge.Active("pay"); id != next.ID {
		t.Fatalf("the edge serves build %d, want the new %d, which has its variables", id, next.ID)
	}
	if got := e.appVars("pay." + testBase); got["V_KEY"] != "sk_live_123456" {
		t.Fatalf("the serving app has %v", got)
	}
}

// TestRestoreSkipsBrokenProject: at start, the static sites serve at once;
// a project whose variables cannot be decrypted is never started without
// them, answers 503 "starting" meanwhile, is tried again, and comes back
// once its variables are readable again.
func TestRestoreSkipsBrokenProject(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fine := e.project("fine")
	fb := e.site(fine, "still here")
	if _, err := e.svc.Activate(ctx, e.Admin, "fine", fb.ID); err != nil {
		t.Fatal(err)
	}
	e.liveApp("broken", "", "V_X", "some value")
	e.exec(t, `UPDATE environment_variables SET value_ciphertext = '\x00'`)
	// A restarted server: a new edge on the same directory.
	e.edge.Deactivate("broken")
	restarted := e.NewEdge(t)
	act := deploy.NewActivator(restarted, e.Store, e.Vars, nil)
	attempts := make(chan int, 1000)
	act.RestoreRetry = func(n int) time.Duration {
		attempts <- n
		return 10 * time.Millisecond
	}
	n, err := act.Restore(ctx)
	if err != nil || n != 2 {
		t.Fatalf("Restore = %d, %v; want both sites on their way", n, err)
	}
	defer act.WaitRestored()
	defer cancel()
	e.edge = restarted
	if code, body := e.get("fine." + testBase); code != http.StatusOK || body != "still here" {
		t.Fatalf("fine after restore = %d %q", code, body)
	}
	testwait.Recv(t, attempts, "a failed restore attempt of the broken project")
	if _, ok := restarted.Active("broken"); ok {
		t.Fatal("the project whose variables cannot be read was started anyway")
	}
	if code, body := e.get("broken." + testBase); code != http.StatusServiceUnavailable || !strings.Contains(body, "starting") {
		t.Fatalf("broken while it cannot start = %d %q, want 503 starting", code, body)
	}
	// The variables are readable again (set anew): the next attempt serves.
	if _, err := e.svc.SetVars(ctx, e.Admin, "broken", "", []deploy.Var{{Key: "V_X", Value: "a new value"}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if _, ok := restarted.Active("broken"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the broken project did not come back once its variables could be read")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := e.appVars("broken." + testBase); got["V_X"] != "a new value" {
		t.Fatalf("the restored app has %v", got)
	}
}

// TestLookupServesOnlySucceededBuilds: the real filter behind preview hosts:
// a failed, canceled or running build, or one without an artifact, is as
// unknown as a missing one.
func TestLookupServesOnlySucceededBuilds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	p := e.project("prev")
	ok := e.site(p, "fine")
	l := deploy.NewLookup(e.Store, e.Vars)
	if s, err := l.SiteBySlug(ctx, "prev", ok.Slug); err != nil || s.BuildID != ok.ID {
		t.Fatalf("succeeded build: %+v, %v", s, err)
	}
	if s, err := l.SiteByBuildID(ctx, ok.ID); err != nil || s.BuildID != ok.ID {
		t.Fatalf("succeeded build by id: %+v, %v", s, err)
	}
	if s, err := l.SiteByBranch(ctx, "prev", "main"); err != nil || s.BuildID != ok.ID {
		t.Fatalf("branch: %+v, %v", s, err)
	}
	for _, status := range []schema.BuildStatus{schema.BuildFailed, schema.BuildCanceled} {
		b := e.site(p, "not this one")
		e.exec(t, `UPDATE builds SET status = $2 WHERE id = $1`, b.ID, string(status))
		if _, err := l.SiteBySlug(ctx, "prev", b.Slug); !errors.Is(err, edge.ErrUnknownSite) {
			t.Errorf("%s build by slug: %v, want ErrUnknownSite", status, err)
		}
		if _, err := l.SiteByBuildID(ctx, b.ID); !errors.Is(err, edge.ErrUnknownSite) {
			t.Errorf("%s build by id: %v, want ErrUnknownSite", status, err)
		}
		if s, err := l.SiteByBranch(ctx, "prev", "main"); err != nil || s.BuildID != ok.ID {
			t.Errorf("branch after a %s build: %+v, %v; want the succeeded %d", status, s, err, ok.ID)
		}
	}
	if _, err := l.SiteBySlug(ctx, "other", ok.Slug); !errors.Is(err, edge.ErrUnknownSite) {
		t.Errorf("another project's slug: %v", err)
	}
}

// TestCertPolicyAgainstDatabase: certificates only for hosts the database
// knows, checked against the real tables.
func TestCertPolicyAgainstDatabase(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	p := e.project("blog")
	b := e.site(p, "x")
	failed := e.site(p, "y")
	e.exec(t, `UPDATE builds SET status = 'failed' WHERE id = $1`, failed.ID)
	if _, _, err := e.svc.AddDomain(ctx, e.Admin, "blog", "www.example.org"); err != nil {
		t.Fatal(err)
	}
	policy := deploy.NewCertPolicy(e.Store, testBase)
	for host, want := range map[string]bool{
		testBase:                                     true,
		"blog." + testBase:                           true,
		"blog--" + b.Slug + "." + testBase:           true,
		"blog--git-main." + testBase:                 true,
		"www.example.org":                            true,
		"blog--" + failed.Slug + "." + testBase:      false,
		"nope." + testBase:                           false,
		"blog--zzzzzzzzzzzz." + testBase:             false,
		"blog--git-nobranch." + testBase:             false,
		"a.b." + testBase:                            false,
		"evil.example.org":                           false,
		"127.0.0.1":                                  false,
		strings.Repeat("x", 70) + "." + testBase:     false,
		"blog--" + b.Slug + "." + testBase + ".evil": false,
	} {
		got, err := policy.Allowed(ctx, host)
		if err != nil || got != want {
			t.Errorf("Allowed(%q) = %v, %v; want %v", host, got, err, want)
		}
	}
}

// TestNoOneGetsNothing: a zero user, as a request without a signed-in user
// would carry, is not the CLI's Operator: it lists no keys, adds none (to the
// admin or anyone), and makes no token.
func TestNoOneGetsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	keys, err := deploy.ParseKeys(testenv.NewSSHKey(t, "x@y").Authorized)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.AddKeys(ctx, deploy.Operator, "", keys, ""); err != nil {
		t.Fatal(err)
	}
	var nobody schema.User
	if ks, err := e.svc.Keys(ctx, nobody); err != nil || len(ks) != 0 {
		t.Fatalf("Keys(nobody) = %v, %v; want none", ks, err)
	}
	other, _ := deploy.ParseKeys(testenv.NewSSHKey(t, "a@b").Authorized)
	if _, err := e.svc.AddKeys(ctx, nobody, "", other, ""); !errors.Is(err, deploy.ErrForbidden) {
		t.Fatalf("AddKeys(nobody) = %v, want ErrForbidden", err)
	}
	if _, _, err := e.svc.CreateToken(ctx, nobody, "", ""); !errors.Is(err, deploy.ErrForbidden) {
		t.Fatalf("CreateToken(nobody) = %v, want ErrForbidden", err)
	}
	if ks, _ := e.svc.Keys(ctx, deploy.Operator); len(ks) != 1 {
		t.Fatalf("keys after the refusals: %+v", ks)
	}
}
