-- A project's own limits for one build command and one app process, over
-- the server's defaults (serve --build-memory, --app-memory, --build-pids,
-- --app-pids). 0: the server's default. The bounds are deploy's
-- ValidateSettings'.
ALTER TABLE projects
    ADD COLUMN memory_limit bigint NOT NULL DEFAULT 0
        CHECK (memory_limit = 0 OR memory_limit BETWEEN 33554432 AND 68719476736),
    ADD COLUMN pids_limit bigint NOT NULL DEFAULT 0
        CHECK (pids_limit = 0 OR pids_limit BETWEEN 16 AND 65536);
