-- Blobs: artifacts and build source snapshots, addressed by the sha256 of
-- their bytes, so that nodes share them through PostgreSQL without a shared
-- disk. A blob is stored once however many builds refer to it, in chunks of
-- schema.BlobChunkSize bytes (one row each, so no statement handles a whole
-- artifact). complete turns true only after every chunk was written and the
-- bytes hashed to sha256: an incomplete row is a writer at work or a crashed
-- writer's leftover (DeleteIncompleteBlobs), never something to serve.
CREATE TABLE blobs (
    sha256 text PRIMARY KEY,
    size bigint NOT NULL,
    complete boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE blob_chunks (
    sha256 text NOT NULL REFERENCES blobs ON DELETE CASCADE,
    n integer NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (sha256, n)
);
