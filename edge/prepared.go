package edge

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"minivercel/hosts"
)

// ErrNotPrepared means Commit found nothing prepared under a deployment:
// it was never prepared here, was discarded, or waited too long.
var ErrNotPrepared = errors.New("deployment is not prepared on this edge")

// preparedTTL bounds how long a prepared deployment waits for its Commit:
// past it, it is discarded (its app stopped), so that an activation whose
// coordinator died holds no process for ever.
const preparedTTL = 15 * time.Minute

// preparedSet holds the deployments this edge has ready, by deployment
// id, until they are committed, discarded or expire. Safe for concurrent
// use.
type preparedSet struct {
	sf singleflight.Group
	mu sync.Mutex
	m  map[int64]*preparedRoute
}

type preparedRoute struct {
	rt    *route
	timer *time.Timer
}

func newPreparedSet() *preparedSet { return &preparedSet{m: map[int64]*preparedRoute{}} }

// take removes and returns the route prepared under id, if any.
func (p *preparedSet) take(id int64) *route {
	p.mu.Lock()
	defer p.mu.Unlock()
	pr, ok := p.m[id]
	if !ok {
		return nil
	}
	pr.timer.Stop()
	delete(p.m, id)
	return pr.rt
}

func (p *preparedSet) has(id int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.m[id]
	return ok
}

// Prepare readies a deployment on this edge without routing it: a static
// build is extracted and its handler made, an app is started and
// health-checked, exactly as Activate does before it switches. Commit
// then routes it at once; Discard lets it go. In a cluster this is how a
// deployment becomes live everywhere or nowhere: every edge prepares it,
// and only when all are ready does any of them switch. Concurrent calls
// for one deployment share one preparation, and a deployment prepared
// already is not prepared again. site.DeploymentID must be set.
func (s *Server) Prepare(ctx context.Context, site Site, progress func(string)) error {
	if err := hosts.ValidateProject(site.Project); err != nil {
		return fmt.Errorf("prepare build %d: %w", site.BuildID, err)
	}
	if site.DeploymentID <= 0 {
		return fmt.Errorf("prepare build %d of %s: no deployment id", site.BuildID, site.Project)
	}
	id := site.DeploymentID
	_, err, _ := s.prepared.sf.Do(fmt.Sprint(id), func() (any, error) {
		if s.prepared.has(id) {
			return nil, nil
		}
		rt, err := s.prepare(ctx, site, progress)
		if err != nil {
			return nil, fmt.Errorf("prepare %s build %d: %w", site.Project, site.BuildID, err)
		}
		s.prepared.mu.Lock()
		s.prepared.m[id] = &preparedRoute{rt: rt, timer: time.AfterFunc(preparedTTL, func() {
			if rt := s.prepared.take(id); rt != nil {
				s.log.Warn("prepared deployment never committed; discarded", "project", site.Project, "deployment", id)
				s.retire(rt)
			}
		})}
		s.prepared.mu.Unlock()
		return nil, nil
	})
	return err
}

// Commit routes the deployment prepared under id: it becomes its
// project's production here, and the previous route is retired as
// Activate retires it.
func (s *Server) Commit(deploymentID int64) error {
	rt := s.prepared.take(deploymentID)
	if rt == nil {
		return fmt.Errorf("commit deployment %d: %w", deploymentID, ErrNotPrepared)
	}
	project := rt.site.Project
	mu := s.projectLock(project)
	mu.Lock()
	defer mu.Unlock()
	s.retire(s.routes.swap(project, rt))
	s.starting.set(project, false)
	s.deactivated.Delete(project)
	s.log.Info("site activated", "project", project, "build_id", rt.site.BuildID, "deployment", deploymentID)
	return nil
}

// Discard stops a deployment prepared here that will not go live; one
// not prepared (or committed already) is left alone.
func (s *Server) Discard(deploymentID int64) {
	if rt := s.prepared.take(deploymentID); rt != nil {
		s.retire(rt)
	}
}
