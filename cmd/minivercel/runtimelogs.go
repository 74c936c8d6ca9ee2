package main

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"minivercel/schema"
)

// runtimeLogKeep caps the lines kept per deployment; older lines are deleted.
const runtimeLogKeep = 10000

// runtimeLogs stores the lines apps print. RuntimeLog never blocks: lines wait
// in a bounded buffer and are written in batches; when the buffer is full
// (an app printing faster than PostgreSQL takes it) lines are dropped and the
// loss is noted in the log itself.
type runtimeLogs struct {
	store *schema.Store
	log   *slog.Logger
	lines chan runtimeLine
	done  chan struct{}
	once  sync.Once

	mu      sync.Mutex
	dropped map[int64]int
}

type runtimeLine struct {
	deployment int64
	line       string
}

func newRuntimeLogs(store *schema.Store, log *slog.Logger) *runtimeLogs {
	r := &runtimeLogs{store: store, log: log.With("component", "runtime-logs"),
		lines: make(chan runtimeLine, 8192), done: make(chan struct{}), dropped: map[int64]int{}}
	go r.run()
	return r
}

func (r *runtimeLogs) RuntimeLog(deploymentID int64, line string) {
	if deploymentID == 0 {
		return
	}
	select {
	case r.lines <- runtimeLine{deploymentID, line}:
	default:
		r.mu.Lock()
		r.dropped[deploymentID]++
		r.mu.Unlock()
	}
}

// Close writes what is buffered and stops.
func (r *runtimeLogs) Close() {
	r.once.Do(func() { close(r.lines) })
	<-r.done
}

func (r *runtimeLogs) run() {
	defer close(r.done)
	seq := map[int64]int64{}
	written := map[int64]int{}
	batch := map[int64][]string{}
	flush := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r.mu.Lock()
		for id, n := range r.dropped {
			batch[id] = append(batch[id], "[minivercel] "+strconv.Itoa(n)+" lines dropped: the app printed faster than they could be stored")
		}
		clear(r.dropped)
		r.mu.Unlock()
		for id, lines := range batch {
			if _, ok := seq[id]; !ok {
				last, err := r.store.LastRuntimeSeq(ctx, id)
				if err != nil {
					r.log.Error("read runtime log position", "deployment", id, "err", err)
					continue
				}
				seq[id] = last
			}
			if err := r.store.AppendRuntimeLogs(ctx, id, seq[id]+1, lines); err != nil {
				r.log.Error("store runtime log", "deployment", id, "err", err)
				continue
			}
			seq[id] += int64(len(lines))
			if written[id] += len(lines); written[id] >= runtimeLogKeep/10 {
				written[id] = 0
				if err := r.store.TrimRuntimeLogs(ctx, id, runtimeLogKeep); err != nil {
					r.log.Error("trim runtime log", "deployment", id, "err", err)
				}
			}
		}
		clear(batch)
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case l, ok := <-r.lines:
			if !ok {
				flush()
				return
			}
			batch[l.deployment] = append(batch[l.deployment], l.line)
		case <-tick.C:
			flush()
		}
	}
}
