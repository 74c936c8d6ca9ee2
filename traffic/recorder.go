package traffic

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"minivercel/schema"
)

// Store is what a Recorder needs of the database (*schema.Store).
// ProjectByName wraps schema.ErrNotFound for a project that does not exist
// (deleted since it served); AddTraffic adds rows into the stored minutes
// and drops those of deleted projects; DeleteTrafficBefore deletes at most
// limit minutes older than before. All are safe for concurrent use and stop
// when ctx ends.
type Store interface {
	ProjectByName(ctx context.Context, name string) (schema.Project, error)
	AddTraffic(ctx context.Context, rows []schema.TrafficMinute) error
	DeleteTrafficBefore(ctx context.Context, before time.Time, limit int) (int64, error)
}

// Config configures a Recorder.
type Config struct {
	// FlushEvery is how often Run writes the counts to the database.
	// Zero: a minute.
	FlushEvery time.Duration
	// MaxProjects caps the projects counted in memory for one minute;
	// requests of further projects in that minute are dropped and
	// counted (Dropped). Zero: 10,000.
	MaxProjects int
	// Retention is how long stored minutes are kept. Zero: 48 h.
	Retention time.Duration
	// Logger receives the recorder's logs. Zero: slog.Default().
	Logger *slog.Logger
	// Now is the clock. Zero: time.Now.
	Now func() time.Time
}

// heldMinutes bounds how many minutes' worth of projects a Recorder holds
// between flushes (the current one and a few a slow flush left behind).
const heldMinutes = 3

// retentionBatch is how many old minutes one delete removes; a flush
// deletes at most retentionRounds of them.
const (
	retentionBatch  = 10000
	retentionRounds = 10
)

// idTTL is how long a project's id is trusted: a project deleted and made
// again under its name gets a new id.
const idTTL = 5 * time.Minute

// maxCachedIDs bounds the name → id cache.
const maxCachedIDs = 10000

// Recorder counts what the edge serves per project per minute and writes
// it to the database (see the package doc). It implements edge.Observer;
// Observe is safe for concurrent use and never blocks on the database.
type Recorder struct {
	cfg   Config
	store Store
	log   *slog.Logger

	mu        sync.Mutex
	counts    map[key]*counts
	perMinute map[int64]int // projects counted per minute (unix seconds)
	dropped   atomic.Int64

	flushMu sync.Mutex // one flush at a time; guards ids
	ids     map[string]cachedID
}

type key struct {
	project string
	minute  int64 // unix seconds, a whole minute
}

type counts struct {
	requests, e4, e5, bytes int64
	latency                 Histogram
}

type cachedID struct {
	id int64
	at time.Time
}

// NewRecorder returns a Recorder writing to store.
func NewRecorder(cfg Config, store Store) *Recorder {
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = time.Minute
	}
	if cfg.MaxProjects <= 0 {
		cfg.MaxProjects = 10000
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 48 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Recorder{cfg: cfg, store: store, log: cfg.Logger.With("component", "traffic"),
		counts: map[key]*counts{}, perMinute: map[int64]int{}, ids: map[string]cachedID{}}
}

// Observe counts one request project served.
func (r *Recorder) Observe(project string, status int, took time.Duration, bytes int64) {
	k := key{project: project, minute: r.cfg.Now().Unix() / 60 * 60}
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.counts[k]
	if c == nil {
		// A cap per minute and on all held: a burst of many projects, or
		// flushes that cannot keep up, cannot grow memory without bound.
		if r.perMinute[k.minute] >= r.cfg.MaxProjects || len(r.counts) >= heldMinutes*r.cfg.MaxProjects {
			r.dropped.Add(1)
			return
		}
		c = &counts{}
		r.counts[k] = c
		r.perMinute[k.minute]++
	}
	c.requests++
	switch {
	case status >= 500:
		c.e5++
	case status >= 400:
		c.e4++
	}
	c.bytes += bytes
	c.latency.Add(took)
}

// Dropped returns how many requests were not counted because the cap on
// projects was reached.
func (r *Recorder) Dropped() int64 { return r.dropped.Load() }

// Held returns how many project-minutes are counted in memory, not yet
// flushed.
func (r *Recorder) Held() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.counts)
}

// Run flushes every FlushEvery until ctx ends. It does not flush at the
// end: Shutdown does, once the edge has stopped serving.
func (r *Recorder) Run(ctx context.Context) {
	tick := time.NewTicker(r.cfg.FlushEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			// Not cut by ctx's end: counts swapped out for a flush are
			// written, not dropped, when the server stops meanwhile.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
			if err := r.Flush(fctx); err != nil {
				r.log.Error("flush traffic", "err", err)
			}
			cancel()
		}
	}
}

// flushTimeout bounds one flush.
const flushTimeout = 30 * time.Second

// Shutdown writes what is counted.
func (r *Recorder) Shutdown(ctx context.Context) error { return r.Flush(ctx) }

// Flush adds the counts held in memory to the database and deletes minutes
// older than the retention. Counts that could not be written are dropped,
// not kept for the next flush: memory stays bounded while the database is
// away, and a chart shows a gap rather than a wrong peak.
func (r *Recorder) Flush(ctx context.Context) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	held := r.counts
	r.counts, r.perMinute = map[key]*counts{}, map[int64]int{}
	r.mu.Unlock()
	if n := r.dropped.Swap(0); n > 0 {
		r.log.Warn("requests not counted: too many projects in a minute", "dropped", n, "max_projects", r.cfg.MaxProjects)
	}

	rows := make([]schema.TrafficMinute, 0, len(held))
	for k, c := range held {
		id, ok, err := r.projectID(ctx, k.project)
		if err != nil {
			return fmt.Errorf("flush traffic: %w", err)
		}
		if !ok { // deleted meanwhile: its counts go with it
			continue
		}
		rows = append(rows, schema.TrafficMinute{ProjectID: id, Minute: time.Unix(k.minute, 0).UTC(),
			Requests: c.requests, Errors4xx: c.e4, Errors5xx: c.e5, Bytes: c.bytes, LatencyBuckets: c.latency[:]})
	}
	if err := r.store.AddTraffic(ctx, rows); err != nil {
		return fmt.Errorf("flush traffic of %d project-minutes: %w", len(rows), err)
	}
	return r.expire(ctx)
}

// expire deletes minutes older than the retention, a bounded number per
// flush; what is left goes at the next.
func (r *Recorder) expire(ctx context.Context) error {
	before := r.cfg.Now().Add(-r.cfg.Retention)
	for range retentionRounds {
		n, err := r.store.DeleteTrafficBefore(ctx, before, retentionBatch)
		if err != nil {
			return fmt.Errorf("delete old traffic: %w", err)
		}
		if n < retentionBatch {
			return nil
		}
	}
	return nil
}

// projectID resolves a project's name, through the cache. ok is false for
// a project that no longer exists.
func (r *Recorder) projectID(ctx context.Context, name string) (id int64, ok bool, err error) {
	now := r.cfg.Now()
	if c, found := r.ids[name]; found && now.Sub(c.at) < idTTL {
		return c.id, true, nil
	}
	p, err := r.store.ProjectByName(ctx, name)
	if errors.Is(err, schema.ErrNotFound) {
		delete(r.ids, name)
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("find project %s: %w", name, err)
	}
	if len(r.ids) >= maxCachedIDs {
		clear(r.ids)
	}
	r.ids[name] = cachedID{id: p.ID, at: now}
	return p.ID, true, nil
}
