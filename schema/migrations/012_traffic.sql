-- Traffic rollups for the panel's charts: one row per project per minute,
-- never one per request. Every edge node adds its own counts for a minute
-- into the same row (an upsert that adds), so latency is kept as a
-- histogram (fixed buckets, see traffic.Bounds) that sums across nodes,
-- and p95 is read from the sum. The flusher deletes rows older than 48 h,
-- so a project has at most 2,880 rows.
CREATE TABLE traffic_minutes (
    project_id bigint NOT NULL REFERENCES projects ON DELETE CASCADE,
    minute timestamptz NOT NULL,
    requests bigint NOT NULL DEFAULT 0,
    errors_4xx bigint NOT NULL DEFAULT 0,
    errors_5xx bigint NOT NULL DEFAULT 0,
    bytes bigint NOT NULL DEFAULT 0,
    latency_buckets bigint[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (project_id, minute)
);
CREATE INDEX traffic_minutes_minute ON traffic_minutes (minute);
