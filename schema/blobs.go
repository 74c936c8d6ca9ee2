package schema

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrBlobMismatch means a blob's bytes do not match its address: a writer
// gave more or fewer bytes than it announced or bytes of another sha256, or a
// stored blob's rows no longer hash to its name. (It lives here rather than in
// errors.go only because this change adds files and touches none.)
var ErrBlobMismatch = errors.New("blob does not match its sha256")

// BlobChunkSize is the most bytes one blob_chunks row holds. Every chunk but
// a blob's last is exactly this long. It bounds what a writer or a reader
// holds in memory, and what one statement sends.
const BlobChunkSize = 1 << 20

// blobLockClass is the first key of the two-key advisory locks that order
// writers of one blob; the second is taken from the blob's sha256 (blobLockKey).
// The two-key space never meets the one-key locks of WithKeyLock and tern.
const blobLockClass = 0x626c6f62 // "blob"

// blobLockKey returns the SQL for the second lock key of the blob whose
// sha256 is the SQL expression sha: its first 32 bits. Two blobs sharing them
// only wait for each other.
func blobLockKey(sha string) string {
	return `('x' || substr(` + sha + `, 1, 8))::bit(32)::int`
}

// ValidBlobSHA256 reports whether s is a blob address: 64 lowercase hex
// digits. It is the one check of that format; callers that name files after
// blobs rely on it to keep paths inside their directory.
func ValidBlobSHA256(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func checkBlobSHA256(sha string) error {
	if !ValidBlobSHA256(sha) {
		return fmt.Errorf("%w: blob address %q is not 64 lowercase hex digits", ErrInvalid, sha)
	}
	return nil
}

// PutBlob stores the size bytes of r as the blob sha (hex), in chunks of
// BlobChunkSize, unless a complete blob sha exists already: then r is not read
// (a blob is stored once) and only size is compared with the stored one.
//
// Writers of one sha are serialised by an advisory lock held on a connection
// of their own for the whole write, so concurrent Puts of the same content end
// with one complete blob and no error: the later ones find it complete. An
// incomplete row found under the lock is a crashed writer's leftover and is
// written again. The chunks are committed one by one rather than in one long
// transaction; complete turns true last, after the bytes hashed to sha.
//
// Reading more or fewer than size bytes, or bytes that hash to another sha,
// fails with an error wrapping ErrBlobMismatch; on any failure, cancellation
// of ctx included, what was written is deleted. PutBlob ignores a transaction
// the Store is bound to (WithTx): one blob is many statements.
func (s *Store) PutBlob(ctx context.Context, sha string, size int64, r io.Reader) error {
	if err := checkBlobSHA256(sha); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("%w: blob size %d is negative", ErrInvalid, size)
	}
	if done, err := storedBlob(ctx, s.pool, sha, size); err != nil || done {
		return err
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("put blob %s: %w", sha, err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1, `+blobLockKey("$2")+`)`, blobLockClass, sha); err != nil {
		return fmt.Errorf("put blob %s: lock: %w", sha, err)
	}
	defer func() {
		// A lock left on a pooled connection would block every later writer
		// of this blob: a connection that cannot unlock is closed instead.
		bg := context.WithoutCancel(ctx)
		if _, err := conn.Exec(bg, `SELECT pg_advisory_unlock($1, `+blobLockKey("$2")+`)`, blobLockClass, sha); err != nil {
			conn.Conn().Close(bg)
		}
	}()
	// The restart of an incomplete row dates it anew, so that
	// DeleteIncompleteBlobs counts its age from this writer's start.
	tag, err := conn.Exec(ctx, `INSERT INTO blobs (sha256, size) VALUES ($1, $2)
		ON CONFLICT (sha256) DO UPDATE SET size = EXCLUDED.size, created_at = now()
		WHERE NOT blobs.complete`, sha, size)
	if err != nil {
		return fmt.Errorf("put blob %s: %w", sha, MapError(err))
	}
	if tag.RowsAffected() == 0 { // another writer completed it while this one waited
		_, err := storedBlob(ctx, conn, sha, size)
		return err
	}
	if err := writeBlob(ctx, conn, sha, size, r); err != nil {
		// Through the pool: a query cut short by ctx may have closed conn.
		if _, derr := s.pool.Exec(context.WithoutCancel(ctx), `DELETE FROM blobs WHERE sha256 = $1`, sha); derr != nil {
			err = errors.Join(err, fmt.Errorf("delete failed blob: %w", derr))
		}
		return fmt.Errorf("put blob %s: %w", sha, err)
	}
	return nil
}

// storedBlob reports whether sha is complete already, failing with
// ErrBlobMismatch when it is but with another size than the writer's.
func storedBlob(ctx context.Context, db DBTX, sha string, size int64) (bool, error) {
	var stored int64
	err := db.QueryRow(ctx, `SELECT size FROM blobs WHERE sha256 = $1 AND complete`, sha).Scan(&stored)
	if err = MapError(err); errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("put blob %s: %w", sha, err)
	}
	if stored != size {
		return false, fmt.Errorf("put blob %s: %w: %d bytes announced, %d stored", sha, ErrBlobMismatch, size, stored)
	}
	return true, nil
}

// writeBlob replaces the chunks of sha's incomplete row with r's bytes and
// marks the row complete once they are size bytes that hash to sha.
func writeBlob(ctx context.Context, conn *pgxpool.Conn, sha string, size int64, r io.Reader) error {
	if _, err := conn.Exec(ctx, `DELETE FROM blob_chunks WHERE sha256 = $1`, sha); err != nil {
		return err
	}
	h := sha256.New()
	buf := make([]byte, min(size, BlobChunkSize))
	for n, left := int32(0), size; left > 0; n++ {
		chunk := buf[:min(left, BlobChunkSize)]
		got, err := io.ReadFull(r, chunk)
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: read %d of %d bytes", ErrBlobMismatch, size-left+int64(got), size)
		}
		if err != nil {
			return fmt.Errorf("read blob: %w", err)
		}
		h.Write(chunk)
		if _, err := conn.Exec(ctx, `INSERT INTO blob_chunks (sha256, n, data) VALUES ($1, $2, $3)`, sha, n, chunk); err != nil {
			return fmt.Errorf("write chunk %d: %w", n, err)
		}
		left -= int64(got)
	}
	if extra, err := r.Read(make([]byte, 1)); extra > 0 {
		return fmt.Errorf("%w: more than %d bytes", ErrBlobMismatch, size)
	} else if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read blob: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sha {
		return fmt.Errorf("%w: the bytes hash to %s", ErrBlobMismatch, got)
	}
	_, err := conn.Exec(ctx, `UPDATE blobs SET complete = true WHERE sha256 = $1`, sha)
	return err
}

// OpenBlob returns a reader of the complete blob sha and its size, or
// ErrNotFound. The reader fetches one chunk at a time with ctx, so it holds
// at most one chunk; at the end it checks the SHA-256 of all it read and, if
// the stored rows were altered, ends with an error wrapping ErrBlobMismatch
// instead of io.EOF. A caller must not trust the bytes before that end.
func (s *Store) OpenBlob(ctx context.Context, sha string) (io.ReadCloser, int64, error) {
	if err := checkBlobSHA256(sha); err != nil {
		return nil, 0, err
	}
	var size int64
	err := s.db.QueryRow(ctx, `SELECT size FROM blobs WHERE sha256 = $1 AND complete`, sha).Scan(&size)
	if err != nil {
		return nil, 0, fmt.Errorf("open blob %s: %w", sha, MapError(err))
	}
	chunk := func(n int32) ([]byte, error) {
		var data []byte
		err := s.db.QueryRow(ctx, `SELECT data FROM blob_chunks WHERE sha256 = $1 AND n = $2`, sha, n).Scan(&data)
		if err = MapError(err); errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("%w: chunk %d is missing", ErrBlobMismatch, n)
		}
		return data, err
	}
	return &blobReader{sha: sha, size: size, left: size, chunk: chunk, h: sha256.New()}, size, nil
}

// blobReader reads a blob chunk by chunk; see OpenBlob.
type blobReader struct {
	sha   string
	size  int64
	left  int64 // bytes not fetched yet
	n     int32 // the next chunk to fetch
	chunk func(n int32) ([]byte, error)
	h     hash.Hash
	buf   []byte // what is fetched and not yet read
	err   error  // sticky: io.EOF, a mismatch, a query's failure, fs.ErrClosed
}

func (b *blobReader) Read(p []byte) (int, error) {
	for len(b.buf) == 0 && b.err == nil {
		b.err = b.fetch()
	}
	if len(b.buf) == 0 {
		return 0, b.err
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	return n, nil
}

// fetch fills buf with the next chunk, or reports the end: io.EOF when the
// bytes hashed to the blob's name.
func (b *blobReader) fetch() error {
	if b.left == 0 {
		if got := hex.EncodeToString(b.h.Sum(nil)); got != b.sha {
			return fmt.Errorf("read blob %s: %w: the stored bytes hash to %s", b.sha, ErrBlobMismatch, got)
		}
		return io.EOF
	}
	data, err := b.chunk(b.n)
	if err != nil {
		return fmt.Errorf("read blob %s: %w", b.sha, err)
	}
	if want := min(b.left, BlobChunkSize); int64(len(data)) != want {
		return fmt.Errorf("read blob %s: %w: chunk %d has %d bytes, not %d", b.sha, ErrBlobMismatch, b.n, len(data), want)
	}
	b.h.Write(data)
	b.buf, b.left, b.n = data, b.left-int64(len(data)), b.n+1
	return nil
}

func (b *blobReader) Close() error {
	b.buf, b.err = nil, fs.ErrClosed
	return nil
}

// BlobExists reports whether the complete blob sha is stored.
func (s *Store) BlobExists(ctx context.Context, sha string) (bool, error) {
	if err := checkBlobSHA256(sha); err != nil {
		return false, err
	}
	var ok bool
	err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM blobs WHERE sha256 = $1 AND complete)`, sha).Scan(&ok)
	return ok, MapError(err)
}

// DeleteBlob deletes the blob sha, complete or not, and its chunks; an absent
// blob is no error. A Put of sha at work then fails.
func (s *Store) DeleteBlob(ctx context.Context, sha string) error {
	if err := checkBlobSHA256(sha); err != nil {
		return err
	}
	_, err := s.db.Exec(ctx, `DELETE FROM blobs WHERE sha256 = $1`, sha)
	return MapError(err)
}

// DeleteIncompleteBlobs deletes the incomplete blobs whose writing started
// more than age ago, the leftovers of crashed writers, and returns how many it
// deleted. A blob whose writer still holds its lock is left to it, however old.
func (s *Store) DeleteIncompleteBlobs(ctx context.Context, age time.Duration) (int, error) {
	// The lock is taken for the statement only (xact): it merely proves that
	// no PutBlob is writing the blob now.
	tag, err := s.db.Exec(ctx, `DELETE FROM blobs WHERE NOT complete
		AND created_at < now() - make_interval(secs => $1)
		AND pg_try_advisory_xact_lock($2, `+blobLockKey("sha256")+`)`, age.Seconds(), blobLockClass)
	return int(tag.RowsAffected()), MapError(err)
}

// blobUnreferenced is true for a blob no build needs: no build kept by
// retention has it as its artifact, and no unfinished build as its source.
const blobUnreferenced = `NOT EXISTS (SELECT 1 FROM builds WHERE artifact_sha256 = blobs.sha256 AND collected_at IS NULL)
	AND NOT EXISTS (SELECT 1 FROM builds WHERE source_sha256 = blobs.sha256 AND status IN ('queued', 'running'))`

// ReleaseBlob deletes a blob that no build needs any more, and reports
// whether it did; one still needed is left alone.
func (s *Store) ReleaseBlob(ctx context.Context, sha256 string) (bool, error) {
	tag, err := s.db.Exec(ctx, `DELETE FROM blobs WHERE sha256 = $1 AND complete AND `+blobUnreferenced, sha256)
	if err != nil {
		return false, MapError(err)
	}
	return tag.RowsAffected() > 0, nil
}

// DeleteUnreferencedBlobs deletes the complete blobs older than age that
// no build needs (their builds were deleted with their project, or
// collected) and returns their digests. The age spares a blob stored just
// before the build that names it is recorded.
func (s *Store) DeleteUnreferencedBlobs(ctx context.Context, age time.Duration) ([]string, error) {
	rows, err := s.db.Query(ctx, `DELETE FROM blobs WHERE complete AND created_at < now() - $1 * interval '1 millisecond'
		AND `+blobUnreferenced+` RETURNING sha256`, age.Milliseconds())
	if err != nil {
		return nil, MapError(err)
	}
	shas, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return shas, MapError(err)
}
