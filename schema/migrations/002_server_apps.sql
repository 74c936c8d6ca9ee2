-- Server apps: a build records how its web process starts; a project may set its
-- health check; a deployment records its port, its error, and a new 'starting'
-- state; runtime logs are kept per deployment.

ALTER TABLE builds ADD COLUMN start_command text NOT NULL DEFAULT '';

ALTER TABLE projects
    ADD COLUMN health_path text NOT NULL DEFAULT '/' CHECK (health_path LIKE '/%'),
    ADD COLUMN health_tries integer NOT NULL DEFAULT 3 CHECK (health_tries BETWEEN 1 AND 100),
    ADD COLUMN health_interval_ms integer NOT NULL DEFAULT 5000 CHECK (health_interval_ms BETWEEN 100 AND 600000);

ALTER TABLE deployments DROP CONSTRAINT deployments_status_check;
ALTER TABLE deployments
    ADD CONSTRAINT deployments_status_check CHECK (status IN ('starting', 'active', 'superseded', 'failed', 'unhealthy')),
    ADD COLUMN port integer NOT NULL DEFAULT 0,
    ADD COLUMN error text NOT NULL DEFAULT '';

CREATE TABLE runtime_log_lines (
    deployment_id bigint NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    seq           bigint NOT NULL,
    line          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (deployment_id, seq)
);
