package schema

import (
	"context"
	"time"
)

// Node is one process of the server, as it registered itself: the roles it
// runs and where it answers. Every time in it is the database's clock.
type Node struct {
	// ID is the node's stable name (nodes.ID), a DNS label.
	ID string
	// Roles are the parts the node runs ("gitd", "worker", "edge",
	// "panel"); at least one.
	Roles []string
	// Address is where the node answers, as it announced it; "" when it
	// announced none.
	Address string
	// Version is the node's build of minivercel.
	Version string
	// StartedAt is when the node last registered.
	StartedAt time.Time
	// LastSeen is the node's latest heartbeat.
	LastSeen time.Time
	// StoppedAt is when the node said it stopped; nil while it runs (or
	// when it died without saying so).
	StoppedAt *time.Time
	// Instance is a token the process made at its start: another process
	// heartbeating the same id has another.
	Instance string
}

const nodeCols = `id, roles, address, version, started_at, last_seen, stopped_at, instance`

// RegisterNode records n as started now: a node that restarts with the same
// id gets its new roles, address and version, a fresh started_at and
// last_seen, and is no longer stopped. n's times are ignored. An id that is
// no DNS label, or no role (nil roles too: coalesce lets the CHECK, not the
// NOT NULL, refuse them), is ErrInvalid.
func (s *Store) RegisterNode(ctx context.Context, n Node) error {
	_, err := s.db.Exec(ctx, `INSERT INTO nodes (id, roles, address, version, instance) VALUES ($1, coalesce($2::text[], '{}'), $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET roles = EXCLUDED.roles, address = EXCLUDED.address,
		version = EXCLUDED.version, started_at = now(), last_seen = now(), stopped_at = NULL, instance = EXCLUDED.instance`,
		n.ID, n.Roles, n.Address, n.Version, n.Instance)
	return MapError(err)
}

// HeartbeatInstance records that the node, run by the process whose token
// is instance, is alive now, and returns the token the row had: another
// one means another process heartbeats this id too (the row is now this
// one's). A row that is gone (deleted by an operator) is ErrNotFound: the
// caller registers again. The heartbeat also clears stopped_at, so a stop
// recorded late by an earlier process with the same id cannot hide the one
// that runs.
func (s *Store) HeartbeatInstance(ctx context.Context, id, instance string) (previous string, err error) {
	err = s.db.QueryRow(ctx, `UPDATE nodes n SET last_seen = now(), stopped_at = NULL, instance = $2
		FROM (SELECT id, instance FROM nodes WHERE id = $1 FOR UPDATE) old
		WHERE n.id = old.id RETURNING old.instance`, id, instance).Scan(&previous)
	return previous, MapError(err)
}

// StopNode records that the node stopped now; ErrNotFound when it has no row.
func (s *Store) StopNode(ctx context.Context, id string) error {
	return s.touchNode(ctx, `UPDATE nodes SET stopped_at = now() WHERE id = $1`, id)
}

// touchNode runs an update of one node's row, ErrNotFound when it has none.
func (s *Store) touchNode(ctx context.Context, sql, id string) error {
	tag, err := s.db.Exec(ctx, sql, id)
	if err != nil {
		return MapError(err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// ListNodes returns every node that ever registered, by id.
func (s *Store) ListNodes(ctx context.Context) ([]Node, error) {
	return many[Node](ctx, s.db, `SELECT `+nodeCols+` FROM nodes ORDER BY id`)
}

// liveWhere selects the nodes that run and were seen within $1 microseconds
// of the database's now().
const liveWhere = `stopped_at IS NULL AND last_seen > now() - $1::bigint * interval '1 microsecond'`

// LiveNodes returns, by id, the nodes that have not stopped, were seen within
// the given time of the database's now() and run role ("" for any role).
func (s *Store) LiveNodes(ctx context.Context, role string, within time.Duration) ([]Node, error) {
	return many[Node](ctx, s.db, `SELECT `+nodeCols+` FROM nodes WHERE `+liveWhere+`
		AND ($2 = '' OR $2 = ANY (roles)) ORDER BY id`, within.Microseconds(), role)
}

// Now returns the database's clock, which every node's times are measured
// by: comparing them with a node's own clock would let skew between machines
// make a live node look dead.
func (s *Store) Now(ctx context.Context) (time.Time, error) {
	var now time.Time
	err := s.db.QueryRow(ctx, `SELECT now()`).Scan(&now)
	return now, MapError(err)
}
