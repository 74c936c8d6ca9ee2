package edge

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestRestoreLeavesNewerAndDeletedProjectsAlone: a restore retried in the
// background never replaces a build that went live meanwhile, and never
// brings back a project deleted since the start.
func TestRestoreLeavesNewerAndDeletedProjectsAlone(t *testing.T) {
	t.Parallel()
	e := newTestEdge(t)
	ctx := context.Background()
	old := e.site("shop", 1, map[string]string{"index.html": "old"})
	newer := e.site("shop", 2, map[string]string{"index.html": "newer"})
	e.activate(newer)
	if err := e.srv.RestoreSite(ctx, old, nil); !errors.Is(err, ErrRouted) {
		t.Fatalf("restoring an older build over a live one = %v, want ErrRouted", err)
	}
	e.expect("shop.localhost", "/", 200, "newer")

	gone := e.site("gone", 3, map[string]string{"index.html": "gone"})
	e.srv.SetStarting("gone", true)
	e.srv.Deactivate("gone")
	if err := e.srv.RestoreSite(ctx, gone, nil); !errors.Is(err, ErrRouted) {
		t.Fatalf("restoring a project deleted since the start = %v, want ErrRouted", err)
	}
	e.expect("gone.localhost", "/", 404, "")
	// An activation (a new push of that name) is served again.
	e.activate(gone)
	e.expect("gone.localhost", "/", 200, "gone")
}

// TestRestoreDoesNotHoldOtherProjectsUp: an app whose restore waits for a
// health check that never passes does not keep another project, one that
// shares its lock stripe, from being served meanwhile.
func TestRestoreDoesNotHoldOtherProjectsUp(t *testing.T) {
	t.Parallel()
	e, _ := newAppEdge(t, &logSink{})
	hang := e.site("hang", 1, map[string]string{"server.js": "setInterval(() => {}, 1000);"})
	hang.Start = "node server.js"
	hang.Health = HealthCheck{Path: "/", Tries: 1000, Interval: 50 * time.Millisecond}
	other := ""
	for i := range 10000 {
		if name := fmt.Sprintf("site%d", i); e.srv.projectLock(name) == e.srv.projectLock("hang") {
			other = name
			break
		}
	}
	if other == "" {
		t.Fatal("no project name shares hang's lock stripe")
	}
	ctx, cancel := context.WithCancel(context.Background())
	restored := make(chan error, 1)
	go func() { restored <- e.srv.RestoreSite(ctx, hang, nil) }()
	site := e.site(other, 2, map[string]string{"index.html": "served"})
	done := make(chan error, 1)
	go func() { done <- e.srv.RestoreSite(context.Background(), site, nil) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("restoring %s: %v", other, err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("%s waited for hang's restore", other)
	}
	select {
	case err := <-restored:
		t.Fatalf("hang's restore ended early: %v", err)
	default:
	}
	e.expect(other+".localhost", "/", 200, "served")
	cancel()
	if err := <-restored; err == nil {
		t.Fatal("hang's restore succeeded")
	}
}
