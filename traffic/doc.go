// Package traffic keeps what the edge served, per project per minute, for
// the panel's charts: requests, 4xx and 5xx responses, bytes and a latency
// histogram (fixed log-spaced buckets, from which p95 is read).
//
// A Recorder is the edge's Observer. It counts in memory, bounded by a cap
// on projects per minute, and flushes every minute to PostgreSQL with an
// upsert that adds: every edge node flushes its own counts into the same
// rows, so a minute's row is the sum over the cluster, and so is its
// histogram. The flusher deletes minutes older than 48 h. Load reads a
// project's last hour (60 one-minute points) or last day (96 points of
// 15 minutes) back, summing counts and histograms per point.
package traffic
