package edge

import (
	"net/http"
	"sync"
	"sync/atomic"
)

// runningApp is a server app whose process passed its health check, as the
// routes and the preview pool hold it. Its methods are safe for concurrent
// use.
type runningApp interface {
	// ServeHTTP proxies a request to the process.
	http.Handler
	// port is the loopback port the process listens on.
	port() int
	// healthy reports whether the process runs and answers its health path.
	healthy() bool
	// drain waits for the requests in flight (closing websockets after a
	// grace period), then stops the process. It returns once it is gone.
	drain()
	// stop ends the process now and returns once it is gone.
	stop()
}

// route is what a project's production host serves: a static build or a
// running app.
type route struct {
	site   Site
	h      http.Handler
	static *Static    // held by the route in the static cache; nil for apps
	app    runningApp // nil for static builds
}

// routeTable maps projects to their production routes. Readers load the
// whole table at once without a lock, so a request keeps the route it
// started with even if a swap happens while it runs; writers replace the
// table. Safe for concurrent use.
type routeTable struct {
	mu  sync.Mutex // orders writers
	cur atomic.Pointer[map[string]*route]
}

func newRouteTable() *routeTable {
	t := &routeTable{}
	empty := map[string]*route{}
	t.cur.Store(&empty)
	return t
}

// get returns the project's route, or nil.
func (t *routeTable) get(project string) *route {
	return (*t.cur.Load())[project]
}

// swap installs rt as the project's route (nil removes it) and returns the
// route it replaced, which the caller now owns: it releases the static
// handler or drains the app.
func (t *routeTable) swap(project string, rt *route) *route {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.cur.Load()
	next := make(map[string]*route, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	if rt == nil {
		delete(next, project)
	} else {
		next[project] = rt
	}
	t.cur.Store(&next)
	return old[project]
}

// apps returns the running apps of every route.
func (t *routeTable) apps() []runningApp {
	var apps []runningApp
	for _, rt := range *t.cur.Load() {
		if rt.app != nil {
			apps = append(apps, rt.app)
		}
	}
	return apps
}

// projects returns the projects with a route.
func (t *routeTable) projects() []string {
	m := *t.cur.Load()
	names := make([]string, 0, len(m))
	for p := range m {
		names = append(names, p)
	}
	return names
}
