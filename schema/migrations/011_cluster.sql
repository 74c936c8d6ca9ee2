-- Several nodes on one database. A build records the node running it
-- (node_id, from the nodes table; NULL while queued) and how many times it
-- was started (attempt): a build whose worker died is queued again, and
-- only its latest attempt may record a result. source_sha256 names the
-- snapshot of its commit's tree (a blob) made for a worker that has no copy
-- of the repository. deployment_edges records, per edge node, whether a
-- deployment being activated is ready there: it goes live only when every
-- live edge is. A deployment records the node activating it, so that a
-- node that died mid-activation has its deployment failed.
ALTER TABLE builds ADD COLUMN node_id text;
ALTER TABLE builds ADD COLUMN attempt integer NOT NULL DEFAULT 0;
ALTER TABLE builds ADD COLUMN source_sha256 text NOT NULL DEFAULT '';
CREATE INDEX builds_running ON builds (node_id) WHERE status = 'running';

ALTER TABLE deployments ADD COLUMN node_id text;

CREATE TABLE deployment_edges (
    deployment_id bigint NOT NULL REFERENCES deployments ON DELETE CASCADE,
    node_id text NOT NULL,
    ready boolean NOT NULL,
    error text NOT NULL DEFAULT '',
    reported_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (deployment_id, node_id)
);
