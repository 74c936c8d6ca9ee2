package deploy_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"minivercel/deploy"
	"minivercel/deploy/deploytest"
	"minivercel/edge"
	"minivercel/hosts"
)

// TestCollectedBuildIsGoneAndCannotGoLive: with two builds kept, a build
// that is neither live, nor a branch's latest, nor among the two newest is
// collected; its build URL and its /preview/ path answer 410 with the reason,
// and activating or rolling back to it is refused with the same reason,
// while the live build (an older one, after a rollback), the branch preview
// and the newest builds serve on. The edge answers 410 at once, though it
// had served the build just before.
func TestCollectedBuildIsGoneAndCannotGoLive(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := deploytest.New(t, deploytest.Options{Work: true, KeepBuilds: 2,
		Runtime: edge.RuntimeConfig{StopTimeout: 2 * time.Second, DrainTimeout: 2 * time.Second}})
	e := &env{Stack: s, t: t, edge: s.Edge, svc: s.Service}
	p := e.project("kept")
	names := hosts.New(testBase)

	b1 := e.site(p, "one")
	preview := e.build(p, "feature", map[string]string{"index.html": "feature"}, "")
	b2, b3, b4 := e.site(p, "two"), e.site(p, "three"), e.site(p, "four")
	for _, b := range []int64{b1.ID, b2.ID, b3.ID, b4.ID} {
		if _, err := e.svc.Activate(ctx, e.Admin, p.Name, b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.svc.Rollback(ctx, e.Admin, p.Name, b1.ID); err != nil {
		t.Fatal(err)
	}
	// Served before it is collected, so the edge remembers it: the
	// collection must make it forget.
	for _, target := range []string{"http://" + names.Build(p.Name, b2.Slug) + "/", "http://" + testBase + hosts.PreviewPath(b2.ID) + "/"} {
		w := httptest.NewRecorder()
		e.edge.Handler().ServeHTTP(w, httptest.NewRequest("GET", target, nil))
		if w.Code != http.StatusOK || w.Body.String() != "two" {
			t.Fatalf("before collection GET %s = %d %q", target, w.Code, w.Body.String())
		}
	}
	if n, err := e.Queue.Collect(ctx, p.ID); err != nil || n != 1 {
		t.Fatalf("Collect = %d, %v; want build %d alone collected", n, err, b2.ID)
	}

	for _, path := range []string{b2.ArtifactPath, filepath.Join(e.Dir("deployments"), strconv.FormatInt(b2.ID, 10))} {
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s of the collected build: %v", path, err)
		}
	}
	reason := "This build was removed to save space: it was one of more than 2 builds kept for kept."
	for _, target := range []string{"http://" + names.Build(p.Name, b2.Slug) + "/", "http://" + testBase + hosts.PreviewPath(b2.ID) + "/"} {
		w := httptest.NewRecorder()
		e.edge.Handler().ServeHTTP(w, httptest.NewRequest("GET", target, nil))
		if w.Code != http.StatusGone || !strings.Contains(w.Body.String(), reason) || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
			t.Errorf("GET %s = %d %q, want 410 with %q", target, w.Code, w.Body.String(), reason)
		}
	}
	for host, want := range map[string]string{
		p.Name + "." + testBase:           "one",
		names.Build(p.Name, b1.Slug):      "one",
		names.Branch(p.Name, "feature"):   "feature",
		names.Build(p.Name, preview.Slug): "feature",
		names.Build(p.Name, b3.Slug):      "three",
		names.Build(p.Name, b4.Slug):      "four",
	} {
		if code, body := e.get(host); code != http.StatusOK || body != want {
			t.Errorf("GET %s = %d %q, want 200 %q", host, code, body, want)
		}
	}

	_, err := e.svc.Activate(ctx, e.Admin, p.Name, b2.ID)
	_, rerr := e.svc.Rollback(ctx, e.Admin, p.Name, b2.ID)
	for _, err := range []error{err, rerr} {
		if !errors.Is(err, deploy.ErrConflict) || !strings.Contains(err.Error(), reason) ||
			!strings.Contains(err.Error(), "minivercel deploy rebuild kept "+b2.CommitSHA[:7]) {
			t.Errorf("activating collected build %d: %v; want a conflict saying why and what to do", b2.ID, err)
		}
	}
	e.checkServes(t, p, b1, "one")
	if code, _ := e.get(names.Build(p.Name, strconv.FormatInt(b2.ID, 10))); code != http.StatusNotFound {
		t.Errorf("a host of no build answers %d, want 404", code)
	}
}
