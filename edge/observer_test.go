package edge

import (
	"sync"
	"testing"
	"time"
)

// observations is an Observer that keeps what it is told.
type observations struct {
	mu   sync.Mutex
	seen []observed
}

type observed struct {
	project string
	status  int
	bytes   int64
}

func (o *observations) Observe(project string, status int, _ time.Duration, bytes int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen = append(o.seen, observed{project, status, bytes})
}

func (o *observations) take() []observed {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.seen
	o.seen = nil
	return s
}

// TestObserverSeesProjectsOnly: requests a project's build served are
// observed with their status and body size; requests for hosts that name
// no project, and the base domain, are not, so that names a scanner makes
// up never reach what an observer keeps.
func TestObserverSeesProjectsOnly(t *testing.T) {
	t.Parallel()
	obs := &observations{}
	lk := &fakeLookup{}
	e := newEdgeWith(t, lk, func(c *Config) { c.Observer = obs })
	v1 := e.site("shop", 1, map[string]string{"index.html": "hello shop"})
	lk.add(v1)
	e.activate(v1)

	e.expect("shop.localhost", "/", 200, "hello shop")
	e.expect("shop.localhost", "/missing.png", 404, "")
	e.expect("shop--"+v1.Slug+".localhost", "/", 200, "hello shop")
	got := obs.take()
	if len(got) != 3 || got[0] != (observed{"shop", 200, int64(len("hello shop"))}) ||
		got[1].project != "shop" || got[1].status != 404 || got[2] != (observed{"shop", 200, int64(len("hello shop"))}) {
		t.Fatalf("observed %+v, want shop 200, shop 404 and the build URL's 200", got)
	}

	for _, host := range []string{"nosuch.localhost", "nosuch--abcdefghijkl.localhost", "random.example", "localhost"} {
		e.get(host, "/")
	}
	if got := obs.take(); len(got) != 0 {
		t.Fatalf("requests for unknown hosts and the base domain were observed: %+v", got)
	}
}
