package schema_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"pgregory.net/rapid"

	"minivercel/internal/testwait"
	"minivercel/schema"
	"minivercel/schema/schematest"
)

const chunk = schema.BlobChunkSize

// blobContent returns n pseudo-random bytes, the same for the same seed.
func blobContent(seed uint64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// putBlob stores data and returns its sha.
func putBlob(t testing.TB, store *schema.Store, data []byte) string {
	t.Helper()
	sha := sha256Hex(data)
	if err := store.PutBlob(context.Background(), sha, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatalf("put %d bytes: %v", len(data), err)
	}
	return sha
}

// readBlob reads the whole blob sha back.
func readBlob(ctx context.Context, store *schema.Store, sha string) ([]byte, error) {
	rc, size, err := store.OpenBlob(ctx, sha)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err == nil && int64(len(b)) != size {
		return b, errors.New("read other than the size OpenBlob gave")
	}
	return b, err
}

// rowsOf counts the blobs and blob_chunks rows of sha.
func rowsOf(t *testing.T, store *schema.Store, sha string) (blobs, chunks int) {
	t.Helper()
	err := store.Pool().QueryRow(t.Context(), `SELECT
		(SELECT count(*) FROM blobs WHERE sha256 = $1), (SELECT count(*) FROM blob_chunks WHERE sha256 = $1)`,
		sha).Scan(&blobs, &chunks)
	if err != nil {
		t.Fatal(err)
	}
	return blobs, chunks
}

// checkGone fails unless blob sha has no rows left after what.
func checkGone(t *testing.T, store *schema.Store, sha, what string) {
	t.Helper()
	if blobs, chunks := rowsOf(t, store, sha); blobs != 0 || chunks != 0 {
		t.Errorf("%s left %d blobs rows and %d chunks", what, blobs, chunks)
	}
}

func TestBlobRoundTrip(t *testing.T) {
	t.Parallel()
	store := schematest.Store(t)
	for _, n := range []int{0, 1, chunk - 1, chunk, chunk + 1, 3*chunk + 7} {
		data := blobContent(uint64(n), n)
		sha := putBlob(t, store, data)
		got, err := readBlob(t.Context(), store, sha)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: read %d other bytes", n, len(got))
		}
		if _, chunks := rowsOf(t, store, sha); chunks != (n+chunk-1)/chunk {
			t.Errorf("%d bytes: %d chunks", n, chunks)
		}
	}
}

// failReader fails the test that reads it.
type failReader struct{ t *testing.T }

func (f failReader) Read([]byte) (int, error) {
	f.t.Error("a stored blob's reader was read")
	return 0, io.EOF
}

func TestBlobStoredOnce(t *testing.T) {
	t.Parallel()
	store := schematest.Store(t)
	data := blobContent(1, 2*chunk+5)
	sha := putBlob(t, store, data)
	if err := store.PutBlob(t.Context(), sha, int64(len(data)), failReader{t}); err != nil {
		t.Fatalf("put again: %v", err)
	}
	if blobs, chunks := rowsOf(t, store, sha); blobs != 1 || chunks != 3 {
		t.Errorf("after two puts: %d blobs rows, %d chunks; want 1 and 3", blobs, chunks)
	}
	// The same sha announced with another size is a caller's mistake.
	err := store.PutBlob(t.Context(), sha, int64(len(data))+1, failReader{t})
	if !errors.Is(err, schema.ErrBlobMismatch) {
		t.Errorf("put with another size: %v, want ErrBlobMismatch", err)
	}
}

func TestBlobPutMismatch(t *testing.T) {
	t.Parallel()
	store := schematest.Store(t)
	data := blobContent(2, chunk+3)
	for _, tc := range []struct {
		name string
		sha  string
		size int
	}{
		{"wrong sha", sha256Hex(blobContent(3, chunk+3)), len(data)},
		{"short reader", sha256Hex(append(bytes.Clone(data), 0)), len(data) + 1},
		{"long reader", sha256Hex(data[:len(data)-1]), len(data) - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := store.PutBlob(t.Context(), tc.sha, int64(tc.size), bytes.NewReader(data))
			if !errors.Is(err, schema.ErrBlobMismatch) {
				t.Fatalf("put: %v, want ErrBlobMismatch", err)
			}
			if ok, err := store.BlobExists(t.Context(), tc.sha); err != nil || ok {
				t.Errorf("exists after a failed put: %v, %v", ok, err)
			}
			checkGone(t, store, tc.sha, "a failed put")
		})
	}
}

func TestBlobInvalid(t *testing.T) {
	t.Parallel()
	store := schematest.Store(t)
	ctx := t.Context()
	good := sha256Hex(nil)
	for _, sha := range []string{"", "../x", good[:63], good + "0", "E3" + good[2:], "g" + good[1:]} {
		if err := store.PutBlob(ctx, sha, 0, bytes.NewReader(nil)); !errors.Is(err, schema.ErrInvalid) {
			t.Errorf("put %q: %v, want ErrInvalid", sha, err)
		}
		if _, _, err := store.OpenBlob(ctx, sha); !errors.Is(err, schema.ErrInvalid) {
			t.Errorf("open %q: %v, want ErrInvalid", sha, err)
		}
	}
	if err := store.PutBlob(ctx, good, -1, bytes.NewReader(nil)); !errors.Is(err, schema.ErrInvalid) {
		t.Errorf("put of size -1: %v, want ErrInvalid", err)
	}
	if _, _, err := store.OpenBlob(ctx, good); !errors.Is(err, schema.ErrNotFound) {
		t.Errorf("open of an absent blob: %v, want ErrNotFound", err)
	}
	if _, err := store.Pool().Exec(ctx, `INSERT INTO blobs (sha256, size) VALUES ($1, 0)`, good); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.OpenBlob(ctx, good); !errors.Is(err, schema.ErrNotFound) {
		t.Errorf("open of an incomplete blob: %v, want ErrNotFound", err)
	}
	if ok, err := store.BlobExists(ctx, good); err != nil || ok {
		t.Errorf("exists of an incomplete blob: %v, %v", ok, err)
	}
}

func TestBlobCorruptRowsAreNotServed(t *testing.T) {
	t.Parallel()
	store := schematest.Store(t)
	for i, tc := range []struct {
		name   string
		damage string
	}{
		{"flipped byte", `UPDATE blob_chunks SET data = set_byte(data, 10, get_byte(data, 10) # 1) WHERE sha256 = $1 AND n = 1`},
		{"short chunk", `UPDATE blob_chunks SET data = substring(data from 2) WHERE sha256 = $1 AND n = 0`},
		{"missing chunk", `DELETE FROM blob_chunks WHERE sha256 = $1 AND n = 2`},
		{"size changed", `UPDATE blobs SET size = size - 1 WHERE sha256 = $1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sha := putBlob(t, store, blobContent(uint64(10+i), 2*chunk+7))
			if _, err := store.Pool().Exec(t.Context(), tc.damage, sha); err != nil {
				t.Fatal(err)
			}
			if _, err := readBlob(t.Context(), store, sha); !errors.Is(err, schema.ErrBlobMismatch) {
				t.Errorf("read: %v, want ErrBlobMismatch", err)
			}
		})
	}
}

// gatedReader reads r, but once it gave after bytes it closes reached and
// waits for gate to close before giving more.
type gatedReader struct {
	r       io.Reader
	after   int
	gate    chan struct{}
	reached chan struct{}
	read    int
	waited  bool
}

func newGatedReader(data []byte, after int) *gatedReader {
	return &gatedReader{r: bytes.NewReader(data), after: after, gate: make(chan struct{}), reached: make(chan struct{})}
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if g.read >= g.after && !g.waited {
		g.waited = true
		close(g.reached)
		<-g.gate
	}
	if left := g.after - g.read; left > 0 && len(p) > left {
		p = p[:left]
	}
	n, err := g.r.Read(p)
	g.read += n
	return n, err
}

func TestBlobConcurrentPuts(t *testing.T) {
	t.Parallel()
	store := schematest.Store(t)
	ctx := t.Context()
	data := blobContent(4, 2*chunk+5)
	sha := sha256Hex(data)
	first := newGatedReader(data, chunk)
	second := newGatedReader(data, len(data))
	errs := make(chan error, 2)
	go func() { errs <- store.PutBlob(ctx, sha, int64(len(data)), first) }()
	testwait.Recv(t, first.reached, "the first writer half way")
	go func() { errs <- store.PutBlob(ctx, sha, int64(len(data)), second) }()
	testwait.Until(t, "the second writer waits for the first", func() bool {
		var waiting int
		err := store.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
			WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = current_database()`).Scan(&waiting)
		return err == nil && waiting > 0
	})
	close(first.gate)
	for range 2 {
		if err := testwait.Recv(t, errs, "a put's end"); err != nil {
			t.Errorf("concurrent put: %v", err)
		}
	}
	if second.read != 0 {
		t.Errorf("the second writer read %d bytes of a blob stored meanwhile", second.read)
	}
	if blobs, chunks := rowsOf(t, store, sha); blobs != 1 || chunks != 3 {
		t.Errorf("%d blobs rows and %d chunks, want 1 and 3", blobs, chunks)
	}
	if got, err := readBlob(ctx, store, sha); err != nil || !bytes.Equal(got, data) {
		t.Errorf("read back: %d bytes, %v", len(got), err)
	}
}

func TestBlobPutRestartsLeftover(t *testing.T) {
	t.Parallel()
	store := schematest.Store(t)
	ctx := t.Context()
	data := blobContent(5, chunk+1)
	sha := sha256Hex(data)
	// A crashed writer's row: another size and chunks of other bytes.
	for _, q := range []string{
		`INSERT INTO blobs (sha256, size) VALUES ($1, 99)`,
		`INSERT INTO blob_chunks SELECT $1, n, '\xdead' FROM generate_series(0, 3) n`,
	} {
		if _, err := store.Pool().Exec(ctx, q, sha); err != nil {
			t.Fatal(err)
		}
	}
	putBlob(t, store, data)
	if got, err := readBlob(ctx, store, sha); err != nil || !bytes.Equal(got, data) {
		t.Errorf("read back: %d bytes, %v", len(got), err)
	}
	if _, chunks := rowsOf(t, store, sha); chunks != 2 {
		t.Errorf("%d chunks, want 2", chunks)
	}
}

func TestBlobPutCanceled(t *testing.T) {
	t.Parallel()
	store := schematest.Store(t)
	data := blobContent(6, 2*chunk)
	sha := sha256Hex(data)
	ctx, cancel := context.WithCancel(t.Context())
	r := newGatedReader(data, chunk)
	go func() {
		<-r.reached
		cancel()
		close(r.gate)
	}()
	if err := store.PutBlob(ctx, sha, int64(len(data)), r); !errors.Is(err, context.Canceled) {
		t.Fatalf("put: %v, want context.Canceled", err)
	}
	checkGone(t, store, sha, "a canceled put")
}

func TestDeleteIncompleteBlobs(t *testing.T) {
	t.Parallel()
	store := schematest.Store(t)
	ctx := t.Context()
	backdate := func(sha string) {
		t.Helper()
		if _, err := store.Pool().Exec(ctx, `UPDATE blobs SET created_at = now() - interval '2 hours' WHERE sha256 = $1`, sha); err != nil {
			t.Fatal(err)
		}
	}
	leftover, young := sha256Hex([]byte("leftover")), sha256Hex([]byte("young"))
	for _, sha := range []string{leftover, young} {
		if _, err := store.Pool().Exec(ctx, `INSERT INTO blobs (sha256, size) VALUES ($1, 2)`, sha); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Pool().Exec(ctx, `INSERT INTO blob_chunks VALUES ($1, 0, '\xdead')`, sha); err != nil {
			t.Fatal(err)
		}
	}
	backdate(leftover)
	old := putBlob(t, store, []byte("complete and old"))
	backdate(old)
	fresh := putBlob(t, store, []byte("complete and fresh"))

	// A writer at work, whose row is as old as the leftover's.
	data := blobContent(7, chunk+1)
	busy := sha256Hex(data)
	r := newGatedReader(data, chunk)
	errc := make(chan error, 1)
	go func() { errc <- store.PutBlob(ctx, busy, int64(len(data)), r) }()
	testwait.Recv(t, r.reached, "the writer half way")
	backdate(busy)

	n, err := store.DeleteIncompleteBlobs(ctx, time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("delete incomplete: %d, %v; want 1", n, err)
	}
	close(r.gate)
	if err := testwait.Recv(t, errc, "the writer's end"); err != nil {
		t.Errorf("the writer at work failed: %v", err)
	}
	for sha, want := range map[string]int{leftover: 0, young: 1, old: 1, fresh: 1, busy: 1} {
		if blobs, chunks := rowsOf(t, store, sha); blobs != want || (want == 0 && chunks != 0) {
			t.Errorf("%s: %d blobs rows and %d chunks, want %d rows", sha[:8], blobs, chunks, want)
		}
	}

	gone, err := store.DeleteUnreferencedBlobs(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// busy was backdated while it was written, so it is old too.
	if len(gone) != 2 || gone[0] == gone[1] {
		t.Fatalf("blobs older than an hour: %q", gone)
	}
	for _, sha := range gone {
		if sha != old && sha != busy {
			t.Errorf("older than an hour: %s", sha)
		}
	}
	if err := store.DeleteBlob(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := store.DeleteBlob(ctx, old); err != nil {
		t.Errorf("delete of an absent blob: %v", err)
	}
	checkGone(t, store, old, "deleted blob")
}

// TestBlobRoundTripProperty: any content, of any length up to three chunks
// and especially near chunk boundaries, reads back byte for byte.
func TestBlobRoundTripProperty(t *testing.T) {
	t.Parallel()
	store := schematest.Store(t)
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.OneOf(
			rapid.IntRange(0, 3*chunk),
			rapid.Custom(func(rt *rapid.T) int {
				k := rapid.IntRange(0, 3).Draw(rt, "chunks")
				return min(max(k*chunk+rapid.IntRange(-2, 2).Draw(rt, "delta"), 0), 3*chunk)
			}),
		).Draw(rt, "length")
		data := blobContent(rapid.Uint64().Draw(rt, "seed"), n)
		sha := sha256Hex(data)
		if err := store.PutBlob(context.Background(), sha, int64(n), bytes.NewReader(data)); err != nil {
			rt.Fatalf("put %d bytes: %v", n, err)
		}
		got, err := readBlob(context.Background(), store, sha)
		if err != nil || !bytes.Equal(got, data) {
			rt.Fatalf("%d bytes read back as %d bytes, %v", n, len(got), err)
		}
	})
}
