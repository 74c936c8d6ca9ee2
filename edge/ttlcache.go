package edge

import (
	"sync"
	"time"
)

// ttlCache remembers answers for a while, bounded in size: when it is full,
// expired entries go, and if it is still full everything goes, so random names
// from scanners can never grow memory. The edge uses one for each lookup it
// caches (build and branch sites, misses, custom domains, certificate
// decisions). Safe for concurrent use.
type ttlCache[V any] struct {
	mu    sync.Mutex
	max   int
	items map[string]ttlEntry[V]
}

type ttlEntry[V any] struct {
	v     V
	until time.Time
}

func newTTLCache[V any](max int) *ttlCache[V] {
	return &ttlCache[V]{max: max, items: map[string]ttlEntry[V]{}}
}

// get returns the value of key if it has not expired at now.
func (c *ttlCache[V]) get(key string, now time.Time) (V, bool) {
	c.mu.Lock()
	e, ok := c.items[key]
	c.mu.Unlock()
	if !ok || !now.Before(e.until) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// put remembers v for key from now until now+ttl.
func (c *ttlCache[V]) put(key string, v V, now time.Time, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.items) >= c.max {
		for k, e := range c.items {
			if now.After(e.until) {
				delete(c.items, k)
			}
		}
		if len(c.items) >= c.max {
			clear(c.items)
		}
	}
	c.items[key] = ttlEntry[V]{v: v, until: now.Add(ttl)}
}

// delete forgets key.
func (c *ttlCache[V]) delete(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.items, key)
}

// len returns how many entries are held, expired ones included.
func (c *ttlCache[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}

// clear forgets everything.
func (c *ttlCache[V]) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.items)
}
