package schema

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DBTX is what the typed queries need: a pool, a connection or a transaction.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Store holds the typed queries. It is safe for concurrent use; a Store made by
// WithTx is bound to its transaction and is not.
type Store struct {
	db   DBTX
	pool *pgxpool.Pool
}

// NewStore returns the queries on pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{db: pool, pool: pool} }

// Pool returns the pool the store was made with.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// WithTx returns the queries bound to tx.
func (s *Store) WithTx(tx pgx.Tx) *Store { return &Store{db: tx, pool: s.pool} }

// InTx runs fn in a transaction, committing when it returns nil.
func (s *Store) InTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// MapError turns PostgreSQL errors into this package's sentinels: no rows becomes
// ErrNotFound, a unique violation ErrConflict, a check violation ErrInvalid. Other
// errors pass through unchanged.
func MapError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505":
			return fmt.Errorf("%w: %w", ErrConflict, err)
		case "23514", "22P02":
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	return err
}

func one[T any](ctx context.Context, db DBTX, sql string, args ...any) (T, error) {
	rows, _ := db.Query(ctx, sql, args...)
	v, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[T])
	return v, MapError(err)
}

func many[T any](ctx context.Context, db DBTX, sql string, args ...any) ([]T, error) {
	rows, _ := db.Query(ctx, sql, args...)
	v, err := pgx.CollectRows(rows, pgx.RowToStructByName[T])
	return v, MapError(err)
}

// defaultMaxConns is the pool size of a node when its database URL sets
// none (pool_max_conns).
const defaultMaxConns = 16

// Open connects a pool to the database at dsn and checks that it answers.
func Open(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		// pgx's default (the CPU count, at least 4) is too few on a small
		// machine: River's listener and an activation's project lock each
		// hold one for long. 16 per node leaves room for several nodes
		// under PostgreSQL's default max_connections of 100.
		cfg.MaxConns = defaultMaxConns
	}
	// A node that vanishes (its machine lost, not its process) must not
	// hold its sessions, and their advisory locks, for the kernel's two
	// hours: PostgreSQL probes an idle TCP client after 30 s and gives up
	// after a minute. (Ignored on unix sockets, where a dead peer is
	// seen at once.)
	for k, v := range map[string]string{"tcp_keepalives_idle": "30", "tcp_keepalives_interval": "10", "tcp_keepalives_count": "3"} {
		if _, set := cfg.ConnConfig.RuntimeParams[k]; !set {
			cfg.ConnConfig.RuntimeParams[k] = v
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return pool, nil
}
