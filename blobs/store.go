package blobs

import (
	"context"
	"errors"
	"fmt"
	"io"

	"minivercel/schema"
)

// Store keeps blobs by the lowercase hex SHA-256 of their bytes.
//
// The contract every implementation keeps:
//   - It is safe for concurrent use, across goroutines and nodes. Concurrent
//     Puts of one sha end with one complete blob and no error; Open never
//     returns a blob that is still being written.
//   - Put of a sha that is stored already returns nil without reading r (a
//     blob is stored once). Otherwise r must give exactly size bytes hashing
//     to sha, or Put fails with an error wrapping ErrCorrupt and keeps
//     nothing.
//   - Open of a sha that is not (completely) stored, like Exists, answers
//     ErrNotFound (Exists: false, nil). Open's reader ends with an error
//     wrapping ErrCorrupt instead of io.EOF when the bytes it gave do not
//     hash to sha; a caller trusts them only after io.EOF.
//   - Delete of an absent blob is no error.
//   - An address that is not 64 lowercase hex digits, or a negative size, is
//     ErrInvalid.
//   - Every method stops when ctx is cancelled and returns its error; Open's
//     reader uses Open's ctx for as long as it reads.
type Store interface {
	Put(ctx context.Context, sha string, size int64, r io.Reader) error
	Open(ctx context.Context, sha string) (io.ReadCloser, int64, error)
	Exists(ctx context.Context, sha string) (bool, error)
	Delete(ctx context.Context, sha string) error
}

// checkSHA refuses anything but a blob address: the Cache names files after
// them, so this is what keeps every path inside its directory.
func checkSHA(sha string) error {
	if !schema.ValidBlobSHA256(sha) {
		return fmt.Errorf("%w: %q is not 64 lowercase hex digits", ErrInvalid, sha)
	}
	return nil
}

// PG returns the Store kept in PostgreSQL by store (see schema.PutBlob).
func PG(store *schema.Store) Store { return pgStore{store} }

type pgStore struct{ s *schema.Store }

func (p pgStore) Put(ctx context.Context, sha string, size int64, r io.Reader) error {
	return mapError(p.s.PutBlob(ctx, sha, size, r))
}

func (p pgStore) Open(ctx context.Context, sha string) (io.ReadCloser, int64, error) {
	rc, size, err := p.s.OpenBlob(ctx, sha)
	if err != nil {
		return nil, 0, mapError(err)
	}
	return mappedReader{rc}, size, nil
}

func (p pgStore) Exists(ctx context.Context, sha string) (bool, error) {
	ok, err := p.s.BlobExists(ctx, sha)
	return ok, mapError(err)
}

func (p pgStore) Delete(ctx context.Context, sha string) error {
	return mapError(p.s.DeleteBlob(ctx, sha))
}

// mappedReader gives schema's errors as this package's.
type mappedReader struct{ io.ReadCloser }

func (m mappedReader) Read(p []byte) (int, error) {
	n, err := m.ReadCloser.Read(p)
	return n, mapError(err)
}

// mapError turns schema's sentinels into this package's, keeping both in the
// chain.
func mapError(err error) error {
	switch {
	case errors.Is(err, schema.ErrNotFound):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.Is(err, schema.ErrBlobMismatch):
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	case errors.Is(err, schema.ErrInvalid):
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return err
}
