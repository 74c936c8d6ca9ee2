-- Nodes: every process of `minivercel serve` on this database registers here
-- (its roles, the address it answers on, its version) and heartbeats its row,
-- so the panel and `minivercel admin nodes` can tell the live nodes from the
-- stale and the stopped ones. Every time is PostgreSQL's now(), never a
-- node's clock: clock skew between machines cannot make a node look dead.
-- The id is a DNS label (nodes.ID makes it from the host name); a node has at
-- least one role. instance is a token each process makes at start: two
-- processes heartbeating one id (a copied data directory) are noticed.

CREATE TABLE nodes (
    id         text PRIMARY KEY CHECK (id ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    roles      text[] NOT NULL CHECK (cardinality(roles) > 0),
    address    text NOT NULL DEFAULT '',
    version    text NOT NULL DEFAULT '',
    started_at timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now(),
    stopped_at timestamptz,
    instance   text NOT NULL DEFAULT ''
);
