package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"minivercel/schema"
	"minivercel/secret"
)

// Event is one thing a follower of a build learns: a log line (Seq > 0) or the
// build's final status (Done).
type Event struct {
	BuildID int64
	Seq     int
	Line    string
	Status  schema.BuildStatus
	Done    bool
	// Skipped is set on the line that tells a slow follower it missed
	// lines: how many, up to and including Seq. Line then says so for
	// people.
	Skipped int
}

// LogStore is where the broker keeps log lines. *schema.Store satisfies it.
type LogStore interface {
	AppendLogLines(ctx context.Context, buildID int64, firstSeq int, lines []string) error
	LogLines(ctx context.Context, buildID int64, afterSeq int) ([]schema.LogLine, error)
	LogPage(ctx context.Context, buildID int64, afterSeq, limit int) ([]schema.LogLine, error)
	BuildByID(ctx context.Context, id int64) (schema.Build, error)
}

// Broker stores every build log line and fans it out live to followers. While a
// build runs, its whole log is also kept in memory, so a follower that arrives
// at any moment gets every earlier line exactly once and then the live ones;
// after the build ends followers read the stored log.
type Broker struct {
	store LogStore
	log   *slog.Logger

	mu     sync.Mutex
	builds map[int64]*liveLog
	begun  chan struct{} // closed and replaced whenever a build begins
	// stored holds, per build followed from the database, a channel closed
	// when another node announces new lines of it or its end (Announce),
	// and how many followers wait on it: the last one to leave removes it.
	stored map[int64]*announcement
}

type liveLog struct {
	redact  *secret.Redactor // masks the project's secret values; nil masks nothing
	base    int              // lines stored before this run began (an earlier attempt's)
	lines   []string         // lines[i] has seq base+i+1
	stored  int              // how many of lines are in the database
	fenced  bool             // another attempt owns the stored log: nothing more is stored
	subs    map[chan Event]*follower
	flushMu sync.Mutex
}

// follower is one live follower's state while its buffer is full: how many
// lines it missed, and the last of them, which it still gets.
type follower struct {
	skipped int
	tail    []Event // the last followerTail events missed, in order
}

// followerBuffer bounds what a slow follower may fall behind by; past it,
// lines are skipped for that follower and it keeps following: a slow
// follower never slows the build. When there is room again, or at the end,
// it gets a line saying how many lines it missed and then the last
// followerTail of them, so the end of a build (its error, its URLs) always
// reaches it, then Done. followerReserve slots are kept for that.
const (
	followerBuffer  = 4096
	followerTail    = 32
	followerReserve = followerTail + 2
)

// offer sends ev to a live follower's channel, or keeps it as missed when
// the channel is full. It is called with the broker's lock held: the only
// sender.
func offer(ch chan Event, f *follower, ev Event) {
	free := cap(ch) - len(ch) - followerReserve
	if f.skipped > 0 && free >= len(f.tail)+2 {
		catchUp(ch, f)
		free = cap(ch) - len(ch) - followerReserve
	}
	if f.skipped > 0 || free < 1 {
		f.skipped++
		if len(f.tail) == followerTail {
			f.tail = append(f.tail[:0], f.tail[1:]...)
		}
		f.tail = append(f.tail, ev)
		return
	}
	ch <- ev
}

// catchUp sends a follower the notice of what it missed and the last lines
// of it. There is room: offer checks it, and Finish uses the reserve.
func catchUp(ch chan Event, f *follower) {
	if n := f.skipped - len(f.tail); n > 0 {
		ch <- Event{BuildID: f.tail[0].BuildID, Seq: f.tail[0].Seq - 1, Skipped: n, Line: fmt.Sprintf(
			"[%d lines skipped here: this terminal read more slowly than the build wrote; the whole log is stored (minivercel deploy list, the panel)]", n)}
	}
	for _, ev := range f.tail {
		ch <- ev
	}
	f.skipped, f.tail = 0, f.tail[:0]
}

// flushEvery is how often a running build's new lines are written to
// PostgreSQL, and flushTimeout how long one write may take.
const (
	flushEvery   = 50 * time.Millisecond
	flushTimeout = 10 * time.Second
)

// NewBroker returns a broker storing lines in store.
func NewBroker(store LogStore, logger *slog.Logger) *Broker {
	if logger == nil {
		logger = slog.Default()
	}
	return &Broker{store: store, log: logger.With("component", "logs"), builds: map[int64]*liveLog{},
		begun: make(chan struct{}), stored: map[int64]*announcement{}}
}

// Begin opens a build's live log; its lines are stored periodically until Finish.
func (b *Broker) Begin(buildID int64) { b.BeginRedacted(buildID, nil, 0) }

// BeginRedacted opens a build's live log whose every line is redacted with r
// before it is stored or sent: no secret value leaves the broker. after is
// the seq of the last line stored already (by an earlier attempt of the
// build, on a worker that died): the log goes on after it.
func (b *Broker) BeginRedacted(buildID int64, r *secret.Redactor, after int) {
	b.mu.Lock()
	if _, ok := b.builds[buildID]; !ok {
		b.builds[buildID] = &liveLog{subs: map[chan Event]*follower{}, redact: r, base: after}
	}
	close(b.begun)
	b.begun = make(chan struct{})
	b.mu.Unlock()
	go b.flushLoop(buildID)
}

func (b *Broker) flushLoop(buildID int64) {
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for range t.C {
		if _, ok := b.flushLive(buildID); !ok {
			return
		}
	}
}

// flushLive flushes the build's live log and returns it; ok is false when
// the build is not live (it finished, or never began).
func (b *Broker) flushLive(buildID int64) (l *liveLog, ok bool) {
	b.mu.Lock()
	l, ok = b.builds[buildID]
	b.mu.Unlock()
	if ok {
		b.flush(buildID, l)
	}
	return l, ok
}

// flush writes the lines not yet stored. flushMu keeps writes of one build in order.
func (b *Broker) flush(buildID int64, l *liveLog) {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	b.mu.Lock()
	from := l.stored
	pending := append([]string(nil), l.lines[from:]...)
	fenced := l.fenced
	b.mu.Unlock()
	if len(pending) == 0 || fenced {
		return
	}
	// Bounded: a frozen database must not keep a build from finishing; the
	// lines stay pending for the next flush.
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	if err := b.store.AppendLogLines(ctx, buildID, l.base+from+1, pending); errors.Is(err, schema.ErrConflict) {
		// Another attempt of the build (on the worker that took it over)
		// writes these seqs: this one's lines are no longer the log's.
		b.log.Warn("build log taken over by another attempt; this worker stops storing its lines", "build", buildID)
		b.mu.Lock()
		l.stored = len(l.lines)
		l.fenced = true
		b.mu.Unlock()
		return
	} else if err != nil {
		b.log.Error("store build log lines", "build", buildID, "err", err)
		return
	}
	b.mu.Lock()
	l.stored = from + len(pending)
	b.mu.Unlock()
}

// Publish appends a line to a running build's log and sends it to followers.
// Lines published for a build that was not begun are dropped.
func (b *Broker) Publish(buildID int64, line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	l, ok := b.builds[buildID]
	if !ok {
		return
	}
	line = l.redact.String(line)
	l.lines = append(l.lines, line)
	ev := Event{BuildID: buildID, Seq: l.base + len(l.lines), Line: line}
	for ch, f := range l.subs {
		offer(ch, f, ev)
	}
}

// Flush stores every line published so far. Call it before recording a build's
// final status, so whoever reads that status finds the whole log stored.
func (b *Broker) Flush(buildID int64) {
	b.flushLive(buildID)
}

// Finish stores the rest of a build's log, tells followers its final status and
// closes their streams. Call it after Flush and after the status is recorded in
// the database.
func (b *Broker) Finish(buildID int64, status schema.BuildStatus) {
	l, ok := b.flushLive(buildID)
	if !ok {
		return
	}
	b.mu.Lock()
	delete(b.builds, buildID)
	// Wake followers waiting on the stored log: a build that began and ended
	// between their two looks is finished now, and they should see it at once.
	close(b.begun)
	b.begun = make(chan struct{})
	for ch, f := range l.subs {
		// The slots offer keeps free: the end and Done always arrive.
		if f.skipped > 0 {
			catchUp(ch, f)
		}
		ch <- Event{BuildID: buildID, Status: status, Done: true}
		close(ch)
	}
	b.mu.Unlock()
}

// Follow returns every line of the build's log so far, then each new line as it
// is published, then a Done event with the final status; the channel closes after
// Done or when ctx ends. Lines arrive in order, each at most once; a follower
// that reads more slowly than the build writes misses lines and gets, in
// their place, one line saying how many (with the seq of the last one it
// missed), and follows on to Done.
func (b *Broker) Follow(ctx context.Context, buildID int64) (<-chan Event, error) {
	out := make(chan Event, 64)
	b.mu.Lock()
	l, live := b.builds[buildID]
	// A build resumed after its first worker died has its first lines in
	// the database only: it is followed from there.
	live = live && l.base == 0
	var snapshot []string
	var ch chan Event
	if live {
		snapshot = append([]string(nil), l.lines...)
		ch = make(chan Event, followerBuffer)
		l.subs[ch] = &follower{}
	}
	b.mu.Unlock()

	if !live {
		// Not running here: it is queued (no lines yet) or finished (all stored).
		go b.followStored(ctx, buildID, out)
		return out, nil
	}
	go func() {
		defer close(out)
		defer b.unsubscribe(buildID, ch)
		for i, line := range snapshot {
			if !send(ctx, out, Event{BuildID: buildID, Seq: i + 1, Line: line}) {
				return
			}
		}
		for {
			select {
			case ev, ok := <-ch:
				if !ok || !send(ctx, out, ev) || ev.Done {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// replayPage is how many stored lines a follower reads at a time.
const replayPage = 1000

// followStored serves a build that is not live in this process: its stored lines,
// and, while it is still queued, a wait for it to begin here.
func (b *Broker) followStored(ctx context.Context, buildID int64, out chan Event) {
	seq := 0
	var announced chan struct{}
	defer func() { b.unannounced(buildID, announced) }()
	for {
		// Listen before reading: an announcement made while the database
		// is read wakes the wait that follows.
		b.unannounced(buildID, announced)
		announced = b.announced(buildID)
		// Status before lines: a build is marked done only after its last line
		// is stored (Flush), so a done status read first means the lines read
		// next are complete.
		build, err := b.store.BuildByID(ctx, buildID)
		if err != nil {
			close(out)
			return
		}
		// The stored log is read a page at a time: a follower of a long
		// log holds one page in memory, not the whole log.
		for {
			lines, err := b.store.LogPage(ctx, buildID, seq, replayPage)
			if err != nil {
				close(out)
				return
			}
			for _, l := range lines {
				seq = l.Seq
				if !send(ctx, out, Event{BuildID: buildID, Seq: l.Seq, Line: l.Line}) {
					close(out)
					return
				}
			}
			if len(lines) < replayPage {
				break
			}
		}
		if build.Status.Done() {
			send(ctx, out, Event{BuildID: buildID, Status: build.Status, Done: true})
			close(out)
			return
		}
		// Queued or running elsewhere: switch to the live log once it
		// begins here (and every line before it was read), else wait for
		// another node to announce more.
		b.mu.Lock()
		begun := b.begun
		l, live := b.builds[buildID]
		live = live && seq >= l.base
		var ch chan Event
		var rest []string
		if live {
			ch = make(chan Event, followerBuffer)
			l.subs[ch] = &follower{}
			if seq-l.base < len(l.lines) {
				rest = append(rest, l.lines[seq-l.base:]...)
			}
		}
		b.mu.Unlock()
		if live {
			defer close(out)
			defer b.unsubscribe(buildID, ch)
			for i, line := range rest {
				if !send(ctx, out, Event{BuildID: buildID, Seq: seq + i + 1, Line: line}) {
					return
				}
			}
			seq += len(rest)
			for {
				select {
				case ev, ok := <-ch:
					if !ok {
						return
					}
					if !ev.Done && ev.Seq <= seq {
						continue
					}
					if !send(ctx, out, ev) || ev.Done {
						return
					}
				case <-ctx.Done():
					return
				}
			}
		}
		select {
		case <-ctx.Done():
			close(out)
			return
		case <-begun:
		case <-announced:
		case <-time.After(storedPoll):
		}
	}
}

// storedPoll is how long a follower of a build running on another node
// waits for an announcement before it reads the database anyway: a lost
// notification delays lines by this much at most.
const storedPoll = time.Second

// announcement is what followers of one build from the database wait on.
type announcement struct {
	ch      chan struct{}
	waiters int
}

// announced returns the channel the next Announce of buildID closes; the
// caller gives it back with unannounced.
func (b *Broker) announced(buildID int64) chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	a := b.stored[buildID]
	if a == nil {
		a = &announcement{ch: make(chan struct{})}
		b.stored[buildID] = a
	}
	a.waiters++
	return a.ch
}

// unannounced gives back a channel announced returned (nil: none).
func (b *Broker) unannounced(buildID int64, ch chan struct{}) {
	if ch == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if a := b.stored[buildID]; a != nil && a.ch == ch {
		if a.waiters--; a.waiters == 0 {
			delete(b.stored, buildID)
		}
	}
}

// Announce wakes the followers of a build that this process is not
// running, reading it from the database: another node stored lines of
// it, or ended it (schema.ChannelLogs). Resync wakes them all.
func (b *Broker) Announce(buildID int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if buildID != 0 {
		if a, ok := b.stored[buildID]; ok {
			close(a.ch)
			delete(b.stored, buildID)
		}
		return
	}
	for id, a := range b.stored {
		close(a.ch)
		delete(b.stored, id)
	}
}

func (b *Broker) unsubscribe(buildID int64, ch chan Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if l, ok := b.builds[buildID]; ok {
		if _, ok := l.subs[ch]; ok {
			delete(l.subs, ch)
			close(ch)
		}
	}
}

func send(ctx context.Context, out chan<- Event, ev Event) bool {
	select {
	case out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}
