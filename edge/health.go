package edge

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"
)

// healthTTL is how long /healthz reuses the answer of Config.Health: a
// flood of probes costs the database one check a second.
const healthTTL = time.Second

// healthTimeout bounds one call of Config.Health.
const healthTimeout = 2 * time.Second

// healthProbe runs Config.Health for /healthz, at most once per healthTTL.
type healthProbe struct {
	check func(context.Context) error // nil: nothing beyond readiness

	mu      sync.Mutex
	checked time.Time
	err     error
}

// state returns the last answer of the check, running it again when it is
// older than healthTTL (fresh is then true). Concurrent probes wait for one
// check.
func (h *healthProbe) state() (fresh bool, err error) {
	if h == nil || h.check == nil {
		return false, nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if time.Since(h.checked) < healthTTL {
		return false, h.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), healthTimeout)
	defer cancel()
	h.err, h.checked = h.check(ctx), time.Now()
	return true, h.err
}

// serveHealthz answers /healthz on the base domain: 200 "ok" once the
// server is ready and its dependencies answer, 503 with the reason
// otherwise (for load balancers and uptime checks).
func (rt *router) serveHealthz(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fresh, err := rt.health.state()
	if err != nil && fresh {
		rt.log.Warn("health check failed", "err", err) // once a second at most
	}
	switch {
	case !rt.ready.Load():
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "not ready\n")
	case err != nil:
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "database unavailable\n")
	default:
		io.WriteString(w, "ok\n")
	}
}
