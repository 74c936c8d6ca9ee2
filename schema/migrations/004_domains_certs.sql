-- Custom domains and the TLS certificate store.
--
-- domains: a host name a project is served at besides <project>.<base-domain>.
-- A name belongs to one project only (UNIQUE): two projects claiming one host
-- would make routing, and the certificate for it, ambiguous. Names are stored
-- the way ValidateDomain returns them (lowercase ASCII, IDNs as punycode, no
-- trailing dot); the CHECK is a last line of defence, not the validation.
CREATE TABLE domains (
    id              bigserial PRIMARY KEY,
    project_id      bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name            text NOT NULL UNIQUE CHECK (name = lower(name) AND length(name) BETWEEN 1 AND 253
                                                AND name ~ '^[a-z0-9*][a-z0-9.-]*$'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    cert_status     text NOT NULL DEFAULT 'pending' CHECK (cert_status IN ('pending', 'issued', 'failed')),
    cert_error      text NOT NULL DEFAULT '',
    cert_checked_at timestamptz
);
CREATE INDEX domains_project_id_idx ON domains (project_id);

-- certmagic's storage, shared by every edge node: keys are slash-separated
-- paths ("certificates/acme.../example.com/example.com.crt"), values opaque.
CREATE TABLE certmagic_data (
    key      text PRIMARY KEY,
    value    bytea NOT NULL,
    modified timestamptz NOT NULL DEFAULT now()
);
-- List and Delete work on prefixes: text_pattern_ops lets LIKE 'prefix/%' use
-- the index whatever the database's collation.
CREATE INDEX certmagic_data_key_prefix_idx ON certmagic_data (key text_pattern_ops);

-- certmagic's cluster locks: a row is a held lock until expires; a node that
-- died holding one loses it when it expires. owner is a random token of the
-- holder, so a node whose lease ran out cannot release or renew the lock
-- another node has taken since.
CREATE TABLE certmagic_locks (
    key     text PRIMARY KEY,
    owner   text NOT NULL,
    expires timestamptz NOT NULL
);
