package edge

import (
	"container/list"
	"context"
	"strconv"
	"sync"
)

// staticCache keeps the handlers of static builds, so a rollback or a build
// URL serves without opening the tree again. A handler is reference counted:
// the LRU holds one reference while it keeps the handler, every route serving
// it holds one, and so does every request serving a build outside production.
// The last holder to let go returns the handler's share of the memory budget.
// Safe for concurrent use.
type staticCache struct {
	extract extractFunc
	// precompress returns the sidecar of precompressed files of the build
	// extracted at dir, making it first if needed; "" for none. Nil: none.
	precompress func(ctx context.Context, dir string) string
	budget      *memBudget
	max         int // handlers kept besides those in use

	mu   sync.Mutex // guards lru and refs
	lru  *handlerLRU
	refs map[*Static]int
}

// newStaticCache returns a cache whose handlers share cacheBytes of file
// cache and of which at most maxBuilds are kept when nothing uses them.
// precompress (nil: none) gives each build's precompressed files.
func newStaticCache(extract extractFunc, precompress func(ctx context.Context, dir string) string, cacheBytes int64, maxBuilds int) *staticCache {
	return &staticCache{
		extract:     extract,
		precompress: precompress,
		budget:      &memBudget{limit: cacheBytes},
		max:         maxBuilds,
		lru:         newHandlerLRU(),
		refs:        map[*Static]int{},
	}
}

// acquire returns the handler of a static build, extracting the build first
// if needed, with one reference that the caller must hand to a route or drop
// with release, so an LRU eviction in between cannot release a handler about
// to go live. Extraction and precompression run outside the lock so that one slow artifact does
// not stall other activations or build-URL requests.
func (c *staticCache) acquire(ctx context.Context, site Site) (*Static, error) {
	key := strconv.FormatInt(site.BuildID, 10) + "/" + strconv.FormatBool(site.SPA)
	if h := c.hold(key); h != nil {
		return h, nil
	}
	dir, err := c.extract(ctx, site)
	if err != nil {
		return nil, err
	}
	var side string
	if c.precompress != nil {
		side = c.precompress(ctx, dir)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if h := c.holdLocked(key); h != nil {
		return h, nil
	}
	h, err := newStatic(dir, side, site.SPA, c.budget)
	if err != nil {
		return nil, err
	}
	c.refs[h] += 2 // the caller's and the LRU's
	c.lru.add(key, h)
	for c.lru.len() > c.max {
		c.releaseLocked(c.lru.removeOldest())
	}
	return h, nil
}

func (c *staticCache) hold(key string) *Static {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.holdLocked(key)
}

func (c *staticCache) holdLocked(key string) *Static {
	h := c.lru.get(key)
	if h != nil {
		c.refs[h]++
	}
	return h
}

// release drops one reference to h.
func (c *staticCache) release(h *Static) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.releaseLocked(h)
}

// releaseLocked drops one holder of h; the last one returns h's cache
// budget. A released handler still serves the requests that hold it, it just
// stops caching.
func (c *staticCache) releaseLocked(h *Static) {
	c.refs[h]--
	if c.refs[h] <= 0 {
		delete(c.refs, h)
		h.release()
	}
}

// handlerLRU is a plain LRU of site handlers; its caller holds the lock.
type handlerLRU struct {
	order *list.List // front = most recent; values are *lruEntry
	items map[string]*list.Element
}

type lruEntry struct {
	key string
	h   *Static
}

func newHandlerLRU() *handlerLRU {
	return &handlerLRU{order: list.New(), items: map[string]*list.Element{}}
}

func (l *handlerLRU) get(key string) *Static {
	e, ok := l.items[key]
	if !ok {
		return nil
	}
	l.order.MoveToFront(e)
	return e.Value.(*lruEntry).h
}

func (l *handlerLRU) add(key string, h *Static) {
	l.items[key] = l.order.PushFront(&lruEntry{key: key, h: h})
}

func (l *handlerLRU) len() int { return l.order.Len() }

func (l *handlerLRU) removeOldest() *Static {
	e := l.order.Back()
	l.order.Remove(e)
	ent := e.Value.(*lruEntry)
	delete(l.items, ent.key)
	return ent.h
}
