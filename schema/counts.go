package schema

import (
	"context"
	"fmt"
)

// CountCerts returns how many custom domains have a certificate in each
// status; a status no domain has is absent.
func (s *Store) CountCerts(ctx context.Context) (map[CertStatus]int64, error) {
	type row struct {
		Status CertStatus
		Count  int64
	}
	rows, err := many[row](ctx, s.db, `SELECT cert_status AS status, count(*) AS count FROM domains GROUP BY 1`)
	if err != nil {
		return nil, fmt.Errorf("count certificates: %w", err)
	}
	counts := make(map[CertStatus]int64, len(rows))
	for _, r := range rows {
		counts[r.Status] = r.Count
	}
	return counts, nil
}

// JobCount is how many jobs of one queue are in one state.
type JobCount struct {
	Queue string
	State string // River's job state: "available" (waiting for a worker) or "running"
	Count int64
}

// CountJobs returns how many of the job queue's jobs wait for a worker
// ("available") and run ("running"), for each queue River knows (a client
// started it) or that has such jobs; 0 when none do. The queue's tables
// are River's (pipeline.MigrateQueue): on a database without them it fails.
func (s *Store) CountJobs(ctx context.Context) ([]JobCount, error) {
	counts, err := many[JobCount](ctx, s.db, `
		WITH queues AS (
			SELECT name FROM river_queue
			UNION SELECT DISTINCT queue FROM river_job WHERE state IN ('available', 'running'))
		SELECT q.name AS queue, s.state, count(j.id) AS count
		FROM queues q CROSS JOIN (VALUES ('available'), ('running')) AS s (state)
		LEFT JOIN river_job j ON j.queue = q.name AND j.state = s.state::river_job_state
		GROUP BY 1, 2 ORDER BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	return counts, nil
}
