package blobs_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"minivercel/blobs"
	"minivercel/internal/testwait"
	"minivercel/schema"
	"minivercel/schema/schematest"
)

func content(seed byte, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

func shaOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// pgStore returns the PostgreSQL Store of a fresh database, and its queries
// for tests that reach under it.
func pgStore(t testing.TB) (blobs.Store, *schema.Store) {
	t.Helper()
	store := schematest.Store(t)
	return blobs.PG(store), store
}

// put stores data in st and returns its sha.
func put(t testing.TB, st blobs.Store, data []byte) string {
	t.Helper()
	sha := shaOf(data)
	if err := st.Put(context.Background(), sha, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	return sha
}

// counting is the real Store, counting the Opens it is asked for.
type counting struct {
	blobs.Store
	opens atomic.Int32
}

func (c *counting) Open(ctx context.Context, sha string) (io.ReadCloser, int64, error) {
	c.opens.Add(1)
	return c.Store.Open(ctx, sha)
}

func newCache(t *testing.T, st blobs.Store, maxConcurrent int) (*blobs.Cache, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "blobs")
	c, err := blobs.NewCache(dir, st, maxConcurrent)
	if err != nil {
		t.Fatal(err)
	}
	return c, dir
}

// checkCached fails unless path holds data.
func checkCached(t *testing.T, path string, data []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("cached %s: %d bytes, %v; want the blob's %d bytes", path, len(got), err, len(data))
	}
}

func TestFetchDownloadsOnce(t *testing.T) {
	t.Parallel()
	pg, _ := pgStore(t)
	st := &counting{Store: pg}
	data := content(1, 2*schema.BlobChunkSize+3)
	sha := put(t, st, data)
	c, dir := newCache(t, st, 4)
	var wg sync.WaitGroup
	paths := make([]string, 8)
	errs := make([]error, 8)
	for i := range 8 {
		wg.Go(func() { paths[i], errs[i] = c.Fetch(t.Context(), sha) })
	}
	wg.Wait()
	for i := range 8 {
		if errs[i] != nil || paths[i] != filepath.Join(dir, sha) {
			t.Fatalf("fetch %d: %q, %v", i, paths[i], errs[i])
		}
	}
	checkCached(t, paths[0], data)
	if n := st.opens.Load(); n != 1 {
		t.Errorf("8 fetches opened the blob %d times, want 1", n)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("cache dir: %v, %v; want mode 0700", fi.Mode(), err)
	}
}

// swapped is the real Store answering every Open with the blob other.
type swapped struct {
	blobs.Store
	other string
}

func (s swapped) Open(ctx context.Context, _ string) (io.ReadCloser, int64, error) {
	return s.Store.Open(ctx, s.other)
}

func TestFetchRefusesCorrupt(t *testing.T) {
	t.Parallel()
	pg, store := pgStore(t)
	damaged := put(t, pg, content(2, schema.BlobChunkSize+10))
	if _, err := store.Pool().Exec(t.Context(),
		`UPDATE blob_chunks SET data = set_byte(data, 3, get_byte(data, 3) # 1) WHERE sha256 = $1 AND n = 1`, damaged); err != nil {
		t.Fatal(err)
	}
	wanted := shaOf([]byte("wanted"))
	other := put(t, pg, content(3, 100))
	for _, tc := range []struct {
		name string
		st   blobs.Store
		sha  string
	}{
		{"altered rows", pg, damaged},
		{"other bytes from the store", swapped{pg, other}, wanted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, dir := newCache(t, tc.st, 1)
			if _, err := c.Fetch(t.Context(), tc.sha); !errors.Is(err, blobs.ErrCorrupt) {
				t.Fatalf("fetch: %v, want ErrCorrupt", err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("a refused blob left %v in the cache", entries)
			}
		})
	}
}

func TestFetchNotFound(t *testing.T) {
	t.Parallel()
	pg, _ := pgStore(t)
	c, _ := newCache(t, pg, 1)
	if _, err := c.Fetch(t.Context(), shaOf(nil)); !errors.Is(err, blobs.ErrNotFound) {
		t.Errorf("fetch of an absent blob: %v, want ErrNotFound", err)
	}
}

// gated is the real Store whose Opens wait for a release each, recording how
// many wait at once.
type gated struct {
	blobs.Store
	release  chan struct{}
	waiting  atomic.Int32
	mostSeen atomic.Int32
}

func (g *gated) Open(ctx context.Context, sha string) (io.ReadCloser, int64, error) {
	n := g.waiting.Add(1)
	for m := g.mostSeen.Load(); n > m && !g.mostSeen.CompareAndSwap(m, n); m = g.mostSeen.Load() {
	}
	defer g.waiting.Add(-1)
	select {
	case <-g.release:
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
	return g.Store.Open(ctx, sha)
}

func TestFetchLimitsDownloads(t *testing.T) {
	t.Parallel()
	pg, _ := pgStore(t)
	st := &gated{Store: pg, release: make(chan struct{})}
	c, _ := newCache(t, st, 2)
	const n = 5
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		sha := put(t, pg, content(byte(10+i), 1000))
		wg.Go(func() {
			_, err := c.Fetch(t.Context(), sha)
			errs <- err
		})
	}
	testwait.Until(t, "two downloads are under way", func() bool { return st.waiting.Load() == 2 })

	// A caller that gives up while it waits for a slot leaves at once.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Fetch(ctx, put(t, pg, []byte("late"))); !errors.Is(err, context.Canceled) {
		t.Errorf("fetch with a canceled context: %v", err)
	}

	for range n {
		st.release <- struct{}{}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if m := st.mostSeen.Load(); m != 2 {
		t.Errorf("at most %d downloads at once, want 2", m)
	}
}

func TestAdoptThenFetch(t *testing.T) {
	t.Parallel()
	pg, _ := pgStore(t)
	st := &counting{Store: pg}
	c, _ := newCache(t, st, 1)
	data := content(4, 5000)
	file := filepath.Join(t.TempDir(), "artifact.tar.gz")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sha, size, err := putFile(t.Context(), st, file)
	if err != nil || sha != shaOf(data) || size != int64(len(data)) {
		t.Fatalf("put file: %s, %d, %v", sha, size, err)
	}
	if ok, err := st.Exists(t.Context(), sha); err != nil || !ok {
		t.Fatalf("exists after put file: %v, %v", ok, err)
	}
	for range 2 { // adopting twice is no error
		if err := c.Adopt(file, sha); err != nil {
			t.Fatalf("adopt: %v", err)
		}
	}
	path, err := c.Fetch(t.Context(), sha)
	if err != nil {
		t.Fatal(err)
	}
	checkCached(t, path, data)
	if n := st.opens.Load(); n != 0 {
		t.Errorf("fetch of an adopted blob opened it %d times", n)
	}
	if err := c.Remove(sha); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(sha); err != nil {
		t.Errorf("remove of an absent blob: %v", err)
	}
	if _, err := c.Fetch(t.Context(), sha); err != nil || st.opens.Load() != 1 {
		t.Errorf("fetch after remove: %v, %d opens; want a download", err, st.opens.Load())
	}
}

// TestBlobAddressCannotEscape: a blob address names a file in the cache, so
// anything but 64 lowercase hex digits is refused before a path is built.
func TestBlobAddressCannotEscape(t *testing.T) {
	t.Parallel()
	pg, _ := pgStore(t)
	c, dir := newCache(t, pg, 1)
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := shaOf(nil)
	for _, sha := range []string{"../x", "", "..", "/etc/passwd", "../" + good[3:], good[:63] + "/", "A" + good[1:]} {
		if _, err := c.Fetch(t.Context(), sha); !errors.Is(err, blobs.ErrInvalid) {
			t.Errorf("fetch %q: %v, want ErrInvalid", sha, err)
		}
		if err := c.Adopt(file, sha); !errors.Is(err, blobs.ErrInvalid) {
			t.Errorf("adopt %q: %v, want ErrInvalid", sha, err)
		}
		if err := c.Remove(sha); !errors.Is(err, blobs.ErrInvalid) {
			t.Errorf("remove %q: %v, want ErrInvalid", sha, err)
		}
		if err := pg.Put(t.Context(), sha, 0, bytes.NewReader(nil)); !errors.Is(err, blobs.ErrInvalid) {
			t.Errorf("put %q: %v, want ErrInvalid", sha, err)
		}
	}
	if entries, _ := os.ReadDir(filepath.Dir(dir)); len(entries) != 1 {
		t.Errorf("files appeared next to the cache: %v", entries)
	}
}

func TestRemoveTemporary(t *testing.T) {
	t.Parallel()
	pg, _ := pgStore(t)
	c, dir := newCache(t, pg, 1)
	data := []byte("kept")
	path, err := c.Fetch(t.Context(), put(t, pg, data))
	if err != nil {
		t.Fatal(err)
	}
	leftovers := []string{"." + shaOf(data) + ".tmp-123", ".x.tmp"}
	for _, name := range leftovers {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.RemoveTemporary(); err != nil {
		t.Fatal(err)
	}
	for _, name := range leftovers {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("leftover %s: %v", name, err)
		}
	}
	checkCached(t, path, data)
}

// BenchmarkPutOpen measures a blob's way through PostgreSQL: put stores an
// 8 MiB blob (and deletes it, so that the next put is not a no-op), open
// reads it back.
func BenchmarkPutOpen(b *testing.B) {
	st, _ := pgStore(b)
	data := content(5, 8<<20)
	sha := shaOf(data)
	b.Run("put", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if err := st.Put(b.Context(), sha, int64(len(data)), bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
			if err := st.Delete(b.Context(), sha); err != nil {
				b.Fatal(err)
			}
		}
	})
	put(b, st, data)
	b.Run("open", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			rc, _, err := st.Open(b.Context(), sha)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, rc); err != nil {
				b.Fatal(err)
			}
			rc.Close()
		}
	})
}

// TestPruneDropsCopiesOfDeletedBlobs: a node's copy of a blob the database
// no longer holds is removed; the copies of blobs still stored are kept.
func TestPruneDropsCopiesOfDeletedBlobs(t *testing.T) {
	t.Parallel()
	pg, _ := pgStore(t)
	c, dir := newCache(t, pg, 1)
	var shas []string
	for i := range 2 {
		data := content(byte(i+10), 3000)
		file := filepath.Join(t.TempDir(), "a")
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		sha, _, err := putFile(t.Context(), pg, file)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Adopt(file, sha); err != nil {
			t.Fatal(err)
		}
		shas = append(shas, sha)
	}
	if err := pg.Delete(t.Context(), shas[0]); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Prune(t.Context()); err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want 1", n, err)
	}
	if _, err := os.Stat(filepath.Join(dir, shas[0])); !os.IsNotExist(err) {
		t.Errorf("the copy of the deleted blob is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, shas[1])); err != nil {
		t.Errorf("the copy of a stored blob went: %v", err)
	}
}

// putFile hashes the file at path and puts it into st, returning its sha and
// size. A file that changes between the hash and the Put fails with
// ErrCorrupt.
func putFile(ctx context.Context, st blobs.Store, path string) (sha string, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, fmt.Errorf("put file: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	size, err = io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", path, err)
	}
	sha = hex.EncodeToString(h.Sum(nil))
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", 0, fmt.Errorf("rewind %s: %w", path, err)
	}
	if err := st.Put(ctx, sha, size, f); err != nil {
		return "", 0, fmt.Errorf("put file %s: %w", path, err)
	}
	return sha, size, nil
}
