package schema

import (
	"context"
	"time"
)

// --- build logs ---

// LogLine is one line of a build's log; Seq counts from 1 per build.
type LogLine struct {
	BuildID   int64
	Seq       int
	Line      string
	CreatedAt time.Time
}

// AppendLogLines stores lines of a build's log numbered from firstSeq on,
// and tells every node following the log (ChannelLogs).
func (s *Store) AppendLogLines(ctx context.Context, buildID int64, firstSeq int, lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	_, err := s.db.Exec(ctx, `WITH ins AS (INSERT INTO build_log_lines (build_id, seq, line)
		SELECT $1, $2 + n - 1, line FROM unnest($3::text[]) WITH ORDINALITY AS t(line, n))
		SELECT pg_notify('`+ChannelLogs+`', $1::text)`, buildID, firstSeq, lines)
	return MapError(err)
}

// LastLogSeq returns the seq of a build's last stored log line, 0 for none.
func (s *Store) LastLogSeq(ctx context.Context, buildID int64) (int, error) {
	var seq int
	err := s.db.QueryRow(ctx, `SELECT COALESCE(max(seq), 0) FROM build_log_lines WHERE build_id = $1`, buildID).Scan(&seq)
	return seq, MapError(err)
}

// LogLines returns a build's log lines with seq greater than afterSeq, in order.
func (s *Store) LogLines(ctx context.Context, buildID int64, afterSeq int) ([]LogLine, error) {
	return many[LogLine](ctx, s.db, `SELECT build_id, seq, line, created_at FROM build_log_lines
		WHERE build_id = $1 AND seq > $2 ORDER BY seq`, buildID, afterSeq)
}

// LogPage returns at most limit lines of a build's log after afterSeq, in
// order: one page of a log read in pages.
func (s *Store) LogPage(ctx context.Context, buildID int64, afterSeq, limit int) ([]LogLine, error) {
	return many[LogLine](ctx, s.db, `SELECT build_id, seq, line, created_at FROM build_log_lines
		WHERE build_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, buildID, afterSeq, limit)
}

// --- runtime logs ---

// RuntimeLogLine is one line a deployment's process printed; Seq counts from 1
// per deployment and keeps counting across restarts of the process.
type RuntimeLogLine struct {
	DeploymentID int64
	Seq          int64
	Line         string
	CreatedAt    time.Time
}

// AppendRuntimeLogs stores lines a deployment's process printed, numbered from
// firstSeq on.
func (s *Store) AppendRuntimeLogs(ctx context.Context, deploymentID, firstSeq int64, lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	_, err := s.db.Exec(ctx, `INSERT INTO runtime_log_lines (deployment_id, seq, line)
		SELECT $1, $2 + n - 1, line FROM unnest($3::text[]) WITH ORDINALITY AS t(line, n)
		ON CONFLICT DO NOTHING`, deploymentID, firstSeq, lines)
	return MapError(err)
}

// TrimRuntimeLogs keeps only the newest keep lines of a deployment's runtime log.
func (s *Store) TrimRuntimeLogs(ctx context.Context, deploymentID int64, keep int) error {
	_, err := s.db.Exec(ctx, `DELETE FROM runtime_log_lines WHERE deployment_id = $1
		AND seq <= (SELECT max(seq) FROM runtime_log_lines WHERE deployment_id = $1) - $2`, deploymentID, keep)
	return MapError(err)
}

// RuntimeLogs returns up to limit lines of a deployment's runtime log after
// afterSeq, oldest first.
func (s *Store) RuntimeLogs(ctx context.Context, deploymentID, afterSeq int64, limit int) ([]RuntimeLogLine, error) {
	return many[RuntimeLogLine](ctx, s.db, `SELECT deployment_id, seq, line, created_at FROM runtime_log_lines
		WHERE deployment_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, deploymentID, afterSeq, limit)
}

// LastRuntimeSeq returns the highest stored seq of a deployment's runtime log, 0
// when it has none, so a restarted server continues the numbering.
func (s *Store) LastRuntimeSeq(ctx context.Context, deploymentID int64) (int64, error) {
	var n int64
	err := s.db.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM runtime_log_lines WHERE deployment_id = $1`, deploymentID).Scan(&n)
	return n, MapError(err)
}

// RuntimeLogDeployment returns the deployment whose runtime log a project
// shows: the active one, else the newest. A project without deployments is
// ErrNotFound.
func (s *Store) RuntimeLogDeployment(ctx context.Context, projectID int64) (Deployment, error) {
	return one[Deployment](ctx, s.db, `SELECT `+deploymentCols+` FROM deployments WHERE project_id = $1
		ORDER BY (status = 'active') DESC, id DESC LIMIT 1`, projectID)
}

// RuntimeLogTail returns the last n lines of a deployment's runtime log,
// oldest first.
func (s *Store) RuntimeLogTail(ctx context.Context, deploymentID int64, n int) ([]RuntimeLogLine, error) {
	return many[RuntimeLogLine](ctx, s.db, `SELECT deployment_id, seq, line, created_at FROM (
		SELECT deployment_id, seq, line, created_at FROM runtime_log_lines WHERE deployment_id = $1
		ORDER BY seq DESC LIMIT $2) l ORDER BY seq`, deploymentID, n)
}
