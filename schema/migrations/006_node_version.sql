-- The Node a build ran with when it came from the toolchain store
-- ("22.23.5"); its app runs with the same. Empty: the system's Node.
ALTER TABLE builds ADD COLUMN node_version text NOT NULL DEFAULT '';
