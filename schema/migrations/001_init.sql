-- The first schema of minivercel: users and their SSH keys, projects, builds with
-- their log lines, deployments (the history of activations) and environment
-- variables (ciphertext only; used from issue 5 on).

CREATE TABLE users (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    is_admin      boolean NOT NULL DEFAULT false,
    password_hash text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ssh_keys (
    id           bigserial PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL DEFAULT '',
    fingerprint  text NOT NULL UNIQUE,
    public_key   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);
CREATE INDEX ssh_keys_user_id_idx ON ssh_keys (user_id);

CREATE TABLE projects (
    id                bigserial PRIMARY KEY,
    name              text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9-]{0,62}$' AND name NOT LIKE '%--%'),
    owner_id          bigint REFERENCES users (id) ON DELETE SET NULL,
    production_branch text NOT NULL DEFAULT 'main',
    framework         text NOT NULL DEFAULT '',
    install_command   text NOT NULL DEFAULT '',
    build_command     text NOT NULL DEFAULT '',
    start_command     text NOT NULL DEFAULT '',
    output_dir        text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE builds (
    id              bigserial PRIMARY KEY,
    project_id      bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    slug            text NOT NULL UNIQUE,
    branch          text NOT NULL,
    commit_sha      text NOT NULL,
    commit_message  text NOT NULL DEFAULT '',
    status          text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
    stage           text NOT NULL DEFAULT '',
    error           text NOT NULL DEFAULT '',
    kind            text NOT NULL DEFAULT '',
    spa             boolean NOT NULL DEFAULT false,
    artifact_path   text NOT NULL DEFAULT '',
    artifact_sha256 text NOT NULL DEFAULT '',
    artifact_size   bigint NOT NULL DEFAULT 0,
    created_by      bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz
);
CREATE INDEX builds_project_id_idx ON builds (project_id, id DESC);

CREATE TABLE build_log_lines (
    build_id   bigint NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    seq        integer NOT NULL,
    line       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (build_id, seq)
);

CREATE TABLE deployments (
    id             bigserial PRIMARY KEY,
    project_id     bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    build_id       bigint NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    environment    text NOT NULL DEFAULT 'production' CHECK (environment IN ('production', 'preview')),
    status         text NOT NULL CHECK (status IN ('active', 'superseded', 'failed', 'unhealthy')),
    activated_at   timestamptz NOT NULL DEFAULT now(),
    deactivated_at timestamptz
);
CREATE INDEX deployments_build_id_idx ON deployments (build_id);
CREATE INDEX deployments_status_idx ON deployments (status);
CREATE INDEX deployments_project_id_idx ON deployments (project_id, id DESC);
-- At most one active production deployment per project, enforced by the database.
CREATE UNIQUE INDEX deployments_one_active_idx ON deployments (project_id, environment) WHERE status = 'active';

CREATE TABLE environment_variables (
    id               bigserial PRIMARY KEY,
    project_id       bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name             text NOT NULL,
    target           text NOT NULL DEFAULT 'all' CHECK (target IN ('all', 'production', 'preview')),
    value_ciphertext bytea NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name, target)
);
