package schema

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TrafficMinute is what one or more edge nodes served of a project in one
// minute. LatencyBuckets counts requests per latency bucket; the buckets'
// bounds belong to the traffic package, the store only adds them up.
type TrafficMinute struct {
	ProjectID      int64
	Minute         time.Time
	Requests       int64
	Errors4xx      int64 `db:"errors_4xx"`
	Errors5xx      int64 `db:"errors_5xx"`
	Bytes          int64
	LatencyBuckets []int64
}

// AddTraffic adds rows to the stored minutes: a minute already stored (by
// this node's earlier flush or another node's) gets the counts and the
// histogram buckets added, element by element. Every row's LatencyBuckets
// must have the same length. Rows of projects that no longer exist are
// dropped without error.
func (s *Store) AddTraffic(ctx context.Context, rows []TrafficMinute) error {
	if len(rows) == 0 {
		return nil
	}
	// In one order on every node: two edges adding the same minutes lock
	// the rows in the same order and never deadlock each other.
	rows = slices.Clone(rows)
	slices.SortFunc(rows, func(a, b TrafficMinute) int {
		return cmp.Or(cmp.Compare(a.ProjectID, b.ProjectID), a.Minute.Compare(b.Minute))
	})
	width := len(rows[0].LatencyBuckets)
	ids := make([]int64, len(rows))
	minutes := make([]time.Time, len(rows))
	reqs := make([]int64, len(rows))
	e4 := make([]int64, len(rows))
	e5 := make([]int64, len(rows))
	bytes := make([]int64, len(rows))
	flat := make([]int64, 0, len(rows)*width)
	for i, r := range rows {
		if len(r.LatencyBuckets) != width {
			return ErrInvalid
		}
		ids[i], minutes[i], reqs[i], e4[i], e5[i], bytes[i] = r.ProjectID, r.Minute, r.Requests, r.Errors4xx, r.Errors5xx, r.Bytes
		flat = append(flat, r.LatencyBuckets...)
	}
	// The histograms travel flattened (PostgreSQL has no array of arrays
	// of different rows); row n's buckets are the nth slice of width.
	// The join with projects drops the rows of deleted projects.
	const q = `INSERT INTO traffic_minutes AS t (project_id, minute, requests, errors_4xx, errors_5xx, bytes, latency_buckets)
		SELECT r.project_id, r.minute, r.requests, r.e4, r.e5, r.bytes, ($7::bigint[])[(r.n - 1) * $8 + 1 : r.n * $8]
		FROM unnest($1::bigint[], $2::timestamptz[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[])
			WITH ORDINALITY AS r(project_id, minute, requests, e4, e5, bytes, n)
		JOIN projects p ON p.id = r.project_id
		ON CONFLICT (project_id, minute) DO UPDATE SET
			requests = t.requests + EXCLUDED.requests,
			errors_4xx = t.errors_4xx + EXCLUDED.errors_4xx,
			errors_5xx = t.errors_5xx + EXCLUDED.errors_5xx,
			bytes = t.bytes + EXCLUDED.bytes,
			latency_buckets = (SELECT coalesce(array_agg(coalesce(a, 0) + coalesce(b, 0) ORDER BY i), '{}')
				FROM unnest(t.latency_buckets, EXCLUDED.latency_buckets) WITH ORDINALITY AS u(a, b, i))`
	var err error
	// A project deleted between the join's snapshot and the insert fails
	// the foreign key; the next try no longer sees it. A deadlock or a
	// serialization failure (another writer) is tried again too.
	for range 3 {
		_, err = s.db.Exec(ctx, q, ids, minutes, reqs, e4, e5, bytes, flat, width)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || (pgErr.Code != "23503" && pgErr.Code != "40P01" && pgErr.Code != "40001") {
			break
		}
	}
	return MapError(err)
}

// TrafficMinutes returns a project's stored minutes in [from, to), oldest
// first: at most one row per minute of the range.
func (s *Store) TrafficMinutes(ctx context.Context, projectID int64, from, to time.Time) ([]TrafficMinute, error) {
	return many[TrafficMinute](ctx, s.db, `SELECT project_id, minute, requests, errors_4xx, errors_5xx, bytes, latency_buckets
		FROM traffic_minutes WHERE project_id = $1 AND minute >= $2 AND minute < $3 ORDER BY minute`, projectID, from, to)
}

// DeleteTrafficBefore deletes at most limit stored minutes older than
// before, of any project, and returns how many it deleted; a caller runs
// it again while it deletes limit.
func (s *Store) DeleteTrafficBefore(ctx context.Context, before time.Time, limit int) (int64, error) {
	tag, err := s.db.Exec(ctx, `DELETE FROM traffic_minutes WHERE (project_id, minute) IN
		(SELECT project_id, minute FROM traffic_minutes WHERE minute < $1 LIMIT $2)`, before, limit)
	return tag.RowsAffected(), MapError(err)
}

// BuildDuration is how long a finished build ran.
type BuildDuration struct {
	BuildID    int64 `db:"id"`
	Status     BuildStatus
	FinishedAt time.Time
	Seconds    float64 // finished_at − started_at
}

// BuildDurations returns how long the last limit finished builds of a
// project ran, oldest first. Builds that never started (canceled while
// queued) are left out.
func (s *Store) BuildDurations(ctx context.Context, projectID int64, limit int) ([]BuildDuration, error) {
	return many[BuildDuration](ctx, s.db, `SELECT id, status, finished_at, seconds FROM (
		SELECT id, status, finished_at, extract(epoch FROM finished_at - started_at)::float8 AS seconds FROM builds
		WHERE project_id = $1 AND finished_at IS NOT NULL AND started_at IS NOT NULL
		ORDER BY finished_at DESC, id DESC LIMIT $2) b ORDER BY finished_at, id`, projectID, limit)
}
