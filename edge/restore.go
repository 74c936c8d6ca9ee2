package edge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"minivercel/hosts"
)

// ErrRouted means RestoreSite found its project routed already: a deploy
// or a rollback went live while the server was restoring, and wins.
var ErrRouted = errors.New("project already serves another build")

// startingSet holds the projects whose production the server is still
// restoring after a start. Safe for concurrent use; a nil set holds none.
type startingSet struct{ m sync.Map }

func (s *startingSet) set(project string, on bool) {
	if on {
		s.m.Store(project, true)
	} else {
		s.m.Delete(project)
	}
}

func (s *startingSet) has(project string) bool {
	if s == nil {
		return false
	}
	_, ok := s.m.Load(project)
	return ok
}

// SetStarting marks a project whose production app is being restored
// after a start (or unmarks it): until it is routed, its hosts answer 503
// with Retry-After, which clients and load balancers retry, rather than a
// 404 that says the site does not exist. Activate and Deactivate unmark.
func (s *Server) SetStarting(project string, starting bool) {
	s.starting.set(project, starting)
}

// RestoreSite makes site its project's production, as Activate does, unless
// the project has a route already or was deactivated since the server
// started: then it changes nothing and returns ErrRouted, so that a restore
// (retried in the background) never replaces what a later deploy put live
// nor brings back a deleted project. The project's lock is held only to
// check and to switch, not while the site is prepared: an app's start may
// take its whole restore budget, and the lock is shared with other
// projects.
func (s *Server) RestoreSite(ctx context.Context, site Site, progress func(string)) error {
	if err := hosts.ValidateProject(site.Project); err != nil {
		return fmt.Errorf("restore build %d: %w", site.BuildID, err)
	}
	if s.taken(site.Project) {
		return ErrRouted
	}
	next, err := s.prepare(ctx, site, progress)
	if err != nil {
		return fmt.Errorf("restore %s build %d: %w", site.Project, site.BuildID, err)
	}
	if s.taken(site.Project, func() { s.retire(s.routes.swap(site.Project, next)) }) {
		s.retire(next) // prepared for nothing: let it go
		return ErrRouted
	}
	s.starting.set(site.Project, false)
	s.log.Info("site restored", "project", site.Project, "build_id", site.BuildID)
	return nil
}

// taken reports, under the project's lock, whether a restore must leave the
// project alone: it has a route, or was deactivated since the server
// started. When it is not taken, then runs under the same lock.
func (s *Server) taken(project string, then ...func()) bool {
	mu := s.projectLock(project)
	mu.Lock()
	defer mu.Unlock()
	_, gone := s.deactivated.LoadAndDelete(project)
	if s.routes.get(project) != nil || gone {
		s.starting.set(project, false)
		return true
	}
	for _, f := range then {
		f()
	}
	return false
}

// serveStarting answers a request for a project whose app is still being
// restored.
func serveStarting(w http.ResponseWriter, host string) {
	w.Header().Set("Retry-After", retryAfterStarting)
	statusPage(w, http.StatusServiceUnavailable, "Starting", "503",
		host+" is starting after a restart of its server. Try again in a few seconds.")
}

// retryAfterStarting is the Retry-After of a starting project, in seconds.
const retryAfterStarting = "5"

// restoreRetry bounds the wait between restore attempts of an app.
const (
	restoreRetryMin = 10 * time.Second
	restoreRetryMax = 5 * time.Minute
)

// RestoreRetry is the wait before restore attempt n (from 1) of an app
// that failed to start: doubling from 10 seconds up to 5 minutes.
func RestoreRetry(n int) time.Duration {
	d := restoreRetryMin
	for i := 1; i < n && d < restoreRetryMax; i++ {
		d *= 2
	}
	return min(d, restoreRetryMax)
}
