package nodes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"minivercel/schema"
)

const (
	// HeartbeatEvery is how often a node records that it is alive.
	HeartbeatEvery = 3 * time.Second
	// DeadAfter is how long a node may go unseen before it counts as dead
	// (stale): five missed heartbeats. A node that dies is noticed within
	// 15 s, well under the 30 s the issue asks.
	DeadAfter = 15 * time.Second
	// stopTimeout bounds recording the stop once the node is shutting down.
	stopTimeout = 2 * time.Second
	// minRound is the least time one heartbeat round gets, however short
	// the period: a first connection may take longer than a test's 20 ms.
	minRound = time.Second
)

// The states of a listed node (State).
const (
	// StateLive: heartbeating.
	StateLive = "live"
	// StateStale: not seen for more than DeadAfter and never said it
	// stopped; it died, hangs or lost its database.
	StateStale = "stale"
	// StateStopped: it shut down and said so.
	StateStopped = "stopped"
)

// State says what n is at now, which must be the database's clock
// (schema.Store.Now), the clock n's times were taken by.
func State(n schema.Node, now time.Time) string {
	switch {
	case n.StoppedAt != nil:
		return StateStopped
	case now.Sub(n.LastSeen) > DeadAfter:
		return StateStale
	}
	return StateLive
}

// Ago says how long before now t was, shortly: "3s ago", "5m ago", "2h ago",
// "4d ago". now must be the clock t was taken by.
func Ago(t, now time.Time) string {
	d := max(now.Sub(t), 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// Registry keeps one node's row in the nodes table: Run registers it,
// heartbeats it and records its stop.
type Registry struct {
	store *schema.Store
	self  schema.Node
	every time.Duration
	log   *slog.Logger
}

// NewRegistry returns the registry of the node self (its ID, Roles, Address
// and Version; its times are the database's to set). every is the heartbeat
// period, HeartbeatEvery when zero; log nil is slog.Default(). An id that
// ValidateID refuses, or no role, is an error.
func NewRegistry(store *schema.Store, self schema.Node, every time.Duration, log *slog.Logger) (*Registry, error) {
	if store == nil {
		return nil, errors.New("new node registry: the store is required")
	}
	if err := ValidateID(self.ID); err != nil {
		return nil, fmt.Errorf("new node registry: %w", err)
	}
	if len(self.Roles) == 0 {
		return nil, fmt.Errorf("new node registry: %w: node %s has no role", ErrInvalidRoles, self.ID)
	}
	if every <= 0 {
		every = HeartbeatEvery
	}
	if self.Instance == "" {
		b := make([]byte, 8)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		self.Instance = hex.EncodeToString(b)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Registry{store: store, self: self, every: every, log: log.With("component", "nodes", "node", self.ID)}, nil
}

// Run registers the node, then heartbeats every period until ctx ends, and
// records the stop (with a short timeout of its own, ctx being over). It
// never fails on the database: while PostgreSQL is unreachable it logs and
// keeps trying, and a row that vanished is registered again. It returns nil
// when ctx ends; it is meant to run in the server's errgroup.
func (r *Registry) Run(ctx context.Context) error {
	t := time.NewTicker(r.every)
	defer t.Stop()
	registered := false
	// reachable is whether the last round reached the database, so an
	// outage is logged once as it starts and once as it ends, not every
	// beat.
	reachable := true
	for {
		var err error
		registered, err = r.beat(ctx, registered)
		switch {
		case ctx.Err() != nil:
			// Shutting down: a failure now is the cancellation.
		case err != nil && reachable:
			reachable = false
			r.log.Warn("node heartbeat failed: retrying; others list this node as stale meanwhile", "err", err, "every", r.every)
		case err != nil:
			r.log.Debug("node heartbeat failed", "err", err)
		case !reachable:
			reachable = true
			r.log.Info("node heartbeat restored")
		}
		select {
		case <-ctx.Done():
			r.stop(ctx)
			return nil
		case <-t.C:
		}
	}
}

// beat brings the node's row up to date: it heartbeats a registered node
// and registers one that is not yet, or whose row vanished (an operator
// deleted it). It returns whether the node is registered.
func (r *Registry) beat(ctx context.Context, registered bool) (bool, error) {
	// One round is bounded by the period (or minRound, for a short one): a
	// database that hangs costs a beat, not the loop.
	ctx, cancel := context.WithTimeout(ctx, max(r.every, minRound))
	defer cancel()
	if registered {
		previous, err := r.store.HeartbeatInstance(ctx, r.self.ID, r.self.Instance)
		if err == nil && previous != r.self.Instance {
			// Its builds and activations would be taken for this one's:
			// say so loudly, every time.
			r.log.Error("another process runs with this node id (a copied data directory or machine image?): give each node its own "+IDFile,
				"node", r.self.ID, "data_dir_file", IDFile)
		}
		if !errors.Is(err, schema.ErrNotFound) {
			return true, err
		}
		r.log.Info("node row is gone: registering again")
	}
	if err := r.store.RegisterNode(ctx, r.self); err != nil {
		return false, fmt.Errorf("register node: %w", err)
	}
	r.log.Info("node registered", "roles", r.self.Roles, "address", r.self.Address, "version", r.self.Version)
	return true, nil
}

// stop records the node's stop. ctx has ended, so it runs detached from it,
// with stopTimeout of its own: a shutdown never waits long on a database
// that is gone.
func (r *Registry) stop(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	if err := r.store.StopNode(ctx, r.self.ID); err != nil {
		r.log.Warn("record node stop failed: others list this node as stale", "err", err)
		return
	}
	r.log.Info("node stopped")
}
