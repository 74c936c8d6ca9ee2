package edge

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestHealthPathThatIsNoURLPathRegression: a health path stored before paths
// were validated ("/%zz") made the health checker use a nil request: the
// server panicked at every start. Now the activation fails as unhealthy, the
// app is stopped, and the previous build serves on.
func TestHealthPathThatIsNoURLPathRegression(t *testing.T) {
	t.Parallel()
	e, hs := newAppEdge(t, &logSink{})
	e.activate(e.appSite("web", 1, "good"))
	for i, path := range []string{"/%zz", "/a%", "/%"} {
		s := e.appSite("web", int64(2+i), "never live")
		s.Health = HealthCheck{Path: path, Tries: 1, Interval: 30 * time.Second}
		err := e.srv.Activate(context.Background(), s, nil)
		if !errors.Is(err, ErrUnhealthy) || !strings.Contains(err.Error(), "not a URL path") {
			t.Fatalf("health path %q: Activate = %v, want ErrUnhealthy", path, err)
		}
		if code, body, _ := httpGet(t, hs, "web.localhost", "/"); code != 200 || body != "good" {
			t.Fatalf("after a refused health path = %d %q", code, body)
		}
		if used := e.srv.runtime.ports.inUse(); used != 1 {
			t.Fatalf("%d ports in use, want 1 (the good app's)", used)
		}
	}
}
