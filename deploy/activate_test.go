package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"minivercel/deploy"
	"net/http"
	"testing"

	"pgregory.net/rapid"

	"minivercel/schema"
)

// checkServes fails unless production of p serves b (whose index.html says
// content) and the database agrees: b is the one active deployment.
func (e *env) checkServes(t tb, p schema.Project, b schema.Build, content string) {
	t.Helper()
	if code, body := e.get(p.Name + "." + testBase); code != http.StatusOK || body != content {
		t.Fatalf("%s serves %d %q, want build %d's %q", p.Name, code, body, b.ID, content)
	}
	if id, ok := e.edge.Active(p.Name); !ok || id != b.ID {
		t.Fatalf("the edge routes %s to build %d (%v), want %d", p.Name, id, ok, b.ID)
	}
	live := e.liveRows(p)
	if len(live) != 1 || live[0].BuildID != b.ID {
		t.Fatalf("active deployments of %s: %+v, want one of build %d", p.Name, live, b.ID)
	}
	active, err := e.Store.ActiveBuild(context.Background(), p.ID)
	if err != nil || active.ID != b.ID {
		t.Fatalf("the database says build %d is live (%v), want %d", active.ID, err, b.ID)
	}
}

// TestActivationPipelineProperty is Property 12 (activation pipeline): for
// any sequence of builds and activations of them, each activation either goes
// live completely (the edge serves the build, the database records it as
// the one active deployment) or, for a build that cannot serve, changes
// nothing that is served and is recorded as failed.
func TestActivationPipelineProperty(t *testing.T) {
	ctx := t.Context()
	property(t, 12, "p", func(rt *rapid.T, e *env, p schema.Project) {
		var builds []schema.Build
		contents := map[int64]string{}
		var live *schema.Build
		for i, n := 0, rapid.IntRange(1, 6).Draw(rt, "steps"); i < n; i++ {
			if len(builds) == 0 || rapid.Bool().Draw(rt, "new build") {
				c := fmt.Sprintf("build %d of %s", len(builds)+1, p.Name)
				b := e.site(p, c)
				if rapid.IntRange(0, 4).Draw(rt, "broken") == 0 {
					// An artifact that is not what its checksum says.
					e.breakArtifact(rt, &b)
					c = ""
				}
				builds = append(builds, b)
				contents[b.ID] = c
			}
			b := builds[rapid.IntRange(0, len(builds)-1).Draw(rt, "activate")]
			_, err := e.svc.Activate(ctx, e.Admin, p.Name, b.ID)
			if contents[b.ID] == "" {
				if !errors.Is(err, deploy.ErrActivation) {
					rt.Fatalf("activating a broken build: %v, want ErrActivation", err)
				}
				ds, _ := e.Store.ListDeployments(ctx, p.ID)
				if ds[0].BuildID != b.ID || ds[0].Status != schema.DeploymentFailed {
					rt.Fatalf("newest deployment %+v, want build %d failed", ds[0], b.ID)
				}
			} else {
				if err != nil {
					rt.Fatalf("activate build %d: %v", b.ID, err)
				}
				live = &b
			}
			if live != nil {
				e.checkServes(rt, p, *live, contents[live.ID])
			} else if code, _ := e.get(p.Name + "." + testBase); code != http.StatusNotFound {
				rt.Fatalf("nothing went live, yet %s answers %d", p.Name, code)
			}
		}
	})
}

// TestRollbackEquivalentProperty is Property 13 (rollback equivalent to a
// deployment): whatever happened before, rolling back to a build leaves the
// same state as deploying it: the edge serves exactly its files, the
// database has it as the one active deployment, and the history gains one
// row, as for any deployment. Rollback without a build goes to the build
// that served before the live one.
func TestRollbackEquivalentProperty(t *testing.T) {
	ctx := t.Context()
	property(t, 12, "r", func(rt *rapid.T, e *env, p schema.Project) {
		var builds []schema.Build
		contents := map[int64]string{}
		var history []int64 // builds in the order they went live
		for i, n := 0, rapid.IntRange(2, 7).Draw(rt, "steps"); i < n; i++ {
			before, _ := e.Store.ListDeployments(ctx, p.ID)
			var want schema.Build
			switch op := rapid.IntRange(0, 2).Draw(rt, "op"); {
			case op == 0 || len(builds) == 0:
				c := fmt.Sprintf("%s build %d", p.Name, len(builds)+1)
				want = e.site(p, c)
				builds = append(builds, want)
				contents[want.ID] = c
				if _, err := e.svc.Activate(ctx, e.Admin, p.Name, want.ID); err != nil {
					rt.Fatal(err)
				}
			case op == 1:
				want = builds[rapid.IntRange(0, len(builds)-1).Draw(rt, "to")]
				got, err := e.svc.Rollback(ctx, e.Admin, p.Name, want.ID)
				if err != nil || got.ID != want.ID {
					rt.Fatalf("rollback to %d: %d, %v", want.ID, got.ID, err)
				}
			default:
				got, err := e.svc.Rollback(ctx, e.Admin, p.Name, 0)
				prev := int64(0)
				for j := len(history) - 1; j >= 0; j-- {
					if history[j] != history[len(history)-1] {
						prev = history[j]
						break
					}
				}
				if prev == 0 {
					if !errors.Is(err, deploy.ErrConflict) {
						rt.Fatalf("rollback with nothing earlier: %v, want ErrConflict", err)
					}
					continue
				}
				if err != nil || got.ID != prev {
					rt.Fatalf("rollback to the previous build: %d, %v; want %d (history %v)", got.ID, err, prev, history)
				}
				want = got
			}
			history = append(history, want.ID)
			e.checkServes(rt, p, want, contents[want.ID])
			after, _ := e.Store.ListDeployments(ctx, p.ID)
			if len(after) != len(before)+1 || after[0].BuildID != want.ID {
				rt.Fatalf("history after going to %d: %d rows (was %d), newest %+v", want.ID, len(after), len(before), after[0])
			}
		}
	})
}

// TestDeploymentHistoryProperty is Property 14 (deployment history): every
// activation adds exactly one row, newest first; at most one row is active
// and it is the build served; every earlier active row is superseded; failed
// and unhealthy rows are never active and keep their reason.
func TestDeploymentHistoryProperty(t *testing.T) {
	ctx := t.Context()
	property(t, 12, "h", func(rt *rapid.T, e *env, p schema.Project) {
		good := e.site(p, "good")
		bad := e.site(p, "bad")
		e.breakArtifact(rt, &bad)
		n := rapid.IntRange(1, 8).Draw(rt, "activations")
		served := int64(0)
		for i := 0; i < n; i++ {
			b := good
			if rapid.Bool().Draw(rt, "bad") {
				b = bad
			}
			if _, err := e.svc.Activate(ctx, e.Admin, p.Name, b.ID); err == nil {
				served = b.ID
			}
		}
		ds, err := e.Store.ListDeployments(ctx, p.ID)
		if err != nil || len(ds) != n {
			rt.Fatalf("%d activations left %d rows (%v)", n, len(ds), err)
		}
		active := 0
		for i, d := range ds {
			if i > 0 && ds[i-1].ID <= d.ID {
				rt.Fatalf("history not newest first: %+v", ds)
			}
			switch d.Status {
			case schema.DeploymentActive:
				active++
				if d.BuildID != served {
					rt.Fatalf("active row of build %d, served %d", d.BuildID, served)
				}
			case schema.DeploymentFailed, schema.DeploymentUnhealthy:
				if d.BuildID != bad.ID || d.Error == "" {
					rt.Fatalf("failed row %+v", d)
				}
			case schema.DeploymentSuperseded:
				if d.BuildID != good.ID {
					rt.Fatalf("superseded row of a build that never went live: %+v", d)
				}
			default:
				rt.Fatalf("row left %s: %+v", d.Status, d)
			}
		}
		if (served == 0) != (active == 0) || active > 1 {
			rt.Fatalf("%d active rows, served %d", active, served)
		}
	})
}

// tb is what both *testing.T and *rapid.T offer.
type tb interface {
	Helper()
	Fatalf(format string, args ...any)
}
