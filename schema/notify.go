package schema

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// The channels nodes tell each other things on (PostgreSQL LISTEN/NOTIFY).
// A notification carries a short payload; the facts themselves are in the
// tables, so a lost notification delays a node but never misleads it.
const (
	// ChannelLogs: a build's log has new stored lines, or the build ended.
	// Payload: the build id.
	ChannelLogs = "minivercel_logs"
	// ChannelRoutes: a project's production changed (activated, rolled
	// back, deleted) or its domains did. Payload: the project name.
	ChannelRoutes = "minivercel_routes"
	// ChannelDeploy: a deployment asks every edge to prepare it
	// ("prepare:<id>"), an edge reports ("ready:<id>"), or it will not go
	// live ("abort:<id>").
	ChannelDeploy = "minivercel_deploy"
	// ChannelBuilds: a build was collected by retention ("forget:<id>").
	ChannelBuilds = "minivercel_builds"
)

// Notify sends payload on channel to every node listening, when the
// current transaction (if any) commits.
func (s *Store) Notify(ctx context.Context, channel, payload string) error {
	_, err := s.db.Exec(ctx, `SELECT pg_notify($1, $2)`, channel, payload)
	return MapError(err)
}

// Resync is the payload a Listener delivers to every subscriber after its
// connection was lost and made again: notifications may have been missed
// meanwhile, so subscribers read the state they follow again.
const Resync = ""

// Listener holds one connection that LISTENs on a fixed set of channels
// and hands each notification to the subscribers of its channel. It
// reconnects on its own when the connection breaks (PostgreSQL
// restarting), then tells every subscriber to resync. Safe for concurrent
// use.
type Listener struct {
	connect  func(ctx context.Context) (*pgx.Conn, error)
	channels []string
	log      *slog.Logger

	mu   sync.Mutex
	subs map[string]map[chan string]struct{}
}

// subscriberBuffer bounds the notifications waiting for one subscriber;
// past it they are dropped (subscribers also re-read their state
// periodically, so a drop delays, never loses, what they learn).
const subscriberBuffer = 256

// NewListener returns a Listener on the store's database for channels. It
// listens once Run runs.
func NewListener(store *Store, log *slog.Logger, channels ...string) *Listener {
	cfg := store.Pool().Config().ConnConfig
	return &Listener{
		connect: func(ctx context.Context) (*pgx.Conn, error) {
			return pgx.ConnectConfig(ctx, cfg.Copy())
		},
		channels: channels, log: log.With("component", "events"),
		subs: map[string]map[chan string]struct{}{},
	}
}

// Subscribe returns the notifications of channel, Resync included, and a
// function that ends the subscription.
func (l *Listener) Subscribe(channel string) (<-chan string, func()) {
	ch := make(chan string, subscriberBuffer)
	l.mu.Lock()
	if l.subs[channel] == nil {
		l.subs[channel] = map[chan string]struct{}{}
	}
	l.subs[channel][ch] = struct{}{}
	l.mu.Unlock()
	return ch, func() {
		l.mu.Lock()
		delete(l.subs[channel], ch)
		l.mu.Unlock()
	}
}

func (l *Listener) deliver(channel, payload string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for ch := range l.subs[channel] {
		select {
		case ch <- payload:
		default:
		}
	}
}

// Run listens until ctx ends, reconnecting after a lost connection with a
// wait growing from 100 ms to 5 s.
func (l *Listener) Run(ctx context.Context) {
	wait := 100 * time.Millisecond
	first := true
	for ctx.Err() == nil {
		err := l.listen(ctx, func() {
			wait = 100 * time.Millisecond
			if !first {
				for _, c := range l.channels {
					l.deliver(c, Resync)
				}
			}
			first = false
		})
		if ctx.Err() != nil {
			return
		}
		l.log.Warn("lost the notification connection; reconnecting", "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// listen connects, LISTENs, calls ready, and delivers notifications until
// the connection fails or ctx ends.
func (l *Listener) listen(ctx context.Context, ready func()) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := l.connect(cctx)
	cancel()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, c := range l.channels {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{c}.Sanitize()); err != nil {
			return fmt.Errorf("listen on %s: %w", c, err)
		}
	}
	ready()
	for {
		// A connection to a machine that vanished may never report an
		// error: after a quiet while it is pinged, and a failed ping
		// counts as lost. (A timeout leaves a pgx connection usable.)
		wctx, cancel := context.WithTimeout(ctx, listenerPing)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil && ctx.Err() == nil && wctx.Err() != nil {
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err = conn.Ping(pctx)
			cancel()
			if err == nil {
				continue
			}
		}
		if err != nil {
			return err
		}
		l.deliver(n.Channel, n.Payload)
	}
}

// listenerPing is how long a quiet notification connection waits before
// it checks that its server is still there.
const listenerPing = 30 * time.Second
