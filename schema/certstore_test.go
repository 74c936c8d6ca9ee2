package schema_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"minivercel/internal/testwait"
	"minivercel/schema"
	"minivercel/schema/schematest"
)

// storageModel is what certmagic's Storage contract says, over a map.
type storageModel map[string][]byte

func (m storageModel) under(dir string) []string {
	var ks []string
	for k := range m {
		if dir == "" || strings.HasPrefix(k, dir+"/") {
			ks = append(ks, k)
		}
	}
	return ks
}

func (m storageModel) exists(k string) bool {
	_, ok := m[k]
	return ok || len(m.under(k)) > 0
}

func (m storageModel) list(dir string, recursive bool) ([]string, bool) {
	if !m.exists(dir) && !(dir == "" && len(m) > 0) {
		return nil, false
	}
	prefix := ""
	if dir != "" {
		prefix = dir + "/"
	}
	set := map[string]bool{}
	for _, k := range m.under(dir) {
		segs := strings.Split(strings.TrimPrefix(k, prefix), "/")
		n := 1
		if recursive {
			n = len(segs)
		}
		for i := 1; i <= n; i++ {
			set[prefix+strings.Join(segs[:i], "/")] = true
		}
	}
	var out []string
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out, true
}

// TestCertStorageContract runs random sequences of storage operations
// against PostgreSQL and the model. Key segments include LIKE's
// metacharacters, so a prefix "a_" must not list "ab/...".
func TestCertStorageContract(t *testing.T) {
	t.Parallel()
	store := schematest.Store(t)
	cs := schema.NewCertStorage(store.Pool())
	ctx := context.Background()
	key := rapid.Custom(func(t *rapid.T) string {
		segs := rapid.SliceOfN(rapid.SampledFrom([]string{"a", "ab", "a_", "%", "b"}), 1, 3).Draw(t, "segs")
		return strings.Join(segs, "/")
	})
	rapid.Check(t, func(t *rapid.T) {
		if _, err := store.Pool().Exec(ctx, `DELETE FROM certmagic_data`); err != nil {
			t.Fatal(err)
		}
		model := storageModel{}
		t.Repeat(map[string]func(*rapid.T){
			"store": func(t *rapid.T) {
				k := key.Draw(t, "key")
				v := rapid.SliceOfN(rapid.Byte(), 0, 64).Draw(t, "value")
				if err := cs.Store(ctx, k, v); err != nil {
					t.Fatal(err)
				}
				model[k] = v
			},
			"load": func(t *rapid.T) {
				k := key.Draw(t, "key")
				got, err := cs.Load(ctx, k)
				want, ok := model[k]
				if !ok {
					if !errors.Is(err, fs.ErrNotExist) {
						t.Fatalf("load missing %s: %v, want fs.ErrNotExist", k, err)
					}
					return
				}
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("load %s = %x, %v; want %x", k, got, err, want)
				}
			},
			"delete": func(t *rapid.T) {
				k := key.Draw(t, "key")
				if err := cs.Delete(ctx, k); err != nil {
					t.Fatalf("delete %s: %v", k, err)
				}
				delete(model, k)
				for _, sub := range model.under(k) {
					delete(model, sub)
				}
			},
			"exists": func(t *rapid.T) {
				k := key.Draw(t, "key")
				if got, want := cs.Exists(ctx, k), model.exists(k); got != want {
					t.Fatalf("exists %s = %v, want %v", k, got, want)
				}
			},
			"stat": func(t *rapid.T) {
				k := key.Draw(t, "key")
				info, err := cs.Stat(ctx, k)
				v, file := model[k]
				switch {
				case file:
					if err != nil || !info.IsTerminal || info.Size != int64(len(v)) || info.Key != k || info.Modified.IsZero() {
						t.Fatalf("stat file %s = %+v, %v", k, info, err)
					}
				case model.exists(k):
					if err != nil || info.IsTerminal || info.Key != k || info.Modified.IsZero() {
						t.Fatalf("stat dir %s = %+v, %v", k, info, err)
					}
				default:
					if !errors.Is(err, fs.ErrNotExist) {
						t.Fatalf("stat missing %s: %v, want fs.ErrNotExist", k, err)
					}
				}
			},
			"list": func(t *rapid.T) {
				dir := rapid.OneOf(rapid.Just(""), key).Draw(t, "dir")
				recursive := rapid.Bool().Draw(t, "recursive")
				got, err := cs.List(ctx, dir, recursive)
				want, ok := model.list(dir, recursive)
				if !ok {
					if !errors.Is(err, fs.ErrNotExist) {
						t.Fatalf("list missing %q: %v, %v; want fs.ErrNotExist", dir, got, err)
					}
					return
				}
				if err != nil || !slices.Equal(got, want) {
					t.Fatalf("list %q recursive=%v = %q, %v; want %q", dir, recursive, got, err, want)
				}
			},
		})
	})
}

func TestCertStorageLocks(t *testing.T) {
	t.Parallel()
	store := schematest.Store(t)
	ctx := context.Background()
	// Two storages stand for two edge nodes: they share only the database.
	a, b := schema.NewCertStorage(store.Pool()), schema.NewCertStorage(store.Pool())

	t.Run("a held lock excludes others until unlocked", func(t *testing.T) {
		if err := a.Lock(ctx, "issue_cert_x"); err != nil {
			t.Fatal(err)
		}
		for name, s := range map[string]*schema.CertStorage{"other node": b, "same node": a} {
			if ok, err := s.TryLock(ctx, "issue_cert_x"); ok || err != nil {
				t.Fatalf("TryLock by %s while held = %v, %v", name, ok, err)
			}
		}
		// A Lock with a deadline gives up when the deadline passes.
		short, cancel := context.WithTimeout(ctx, 600*time.Millisecond)
		defer cancel()
		if err := b.Lock(short, "issue_cert_x"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Lock while held = %v, want the deadline", err)
		}
		got := make(chan error, 1)
		go func() { got <- b.Lock(ctx, "issue_cert_x") }()
		if err := b.Unlock(ctx, "issue_cert_x"); err == nil {
			t.Fatal("b unlocked a lock it does not hold")
		}
		if err := a.Unlock(ctx, "issue_cert_x"); err != nil {
			t.Fatal(err)
		}
		if err := testwait.Recv(t, got, "the waiting Lock"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := a.TryLock(ctx, "issue_cert_x"); ok {
			t.Fatal("a took the lock b holds")
		}
		if err := b.Unlock(ctx, "issue_cert_x"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a dead node's expired lock can be taken", func(t *testing.T) {
		if _, err := store.Pool().Exec(ctx, `INSERT INTO certmagic_locks (key, owner, expires)
			VALUES ('dead', 'crashed-node', now() - interval '1 second'), ('alive', 'other-node', now() + interval '1 hour')`); err != nil {
			t.Fatal(err)
		}
		if ok, err := a.TryLock(ctx, "dead"); !ok || err != nil {
			t.Fatalf("TryLock of an expired lock = %v, %v", ok, err)
		}
		if ok, err := a.TryLock(ctx, "alive"); ok || err != nil {
			t.Fatalf("TryLock of a live lock = %v, %v", ok, err)
		}
		if err := a.Unlock(ctx, "dead"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("renewal extends the lease; a lost lock is not released", func(t *testing.T) {
		if err := a.Lock(ctx, "renew"); err != nil {
			t.Fatal(err)
		}
		if err := a.RenewLockLease(ctx, "renew", time.Hour); err != nil {
			t.Fatal(err)
		}
		var left time.Duration
		if err := store.Pool().QueryRow(ctx, `SELECT expires - now() FROM certmagic_locks WHERE key = 'renew'`).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left < 59*time.Minute {
			t.Fatalf("lease left after renewing for an hour: %v", left)
		}
		if err := b.RenewLockLease(ctx, "renew", time.Hour); err == nil {
			t.Fatal("b renewed a lock it does not hold")
		}
		// Another node took the lock after a's lease ran out.
		if _, err := store.Pool().Exec(ctx, `UPDATE certmagic_locks SET owner = 'thief' WHERE key = 'renew'`); err != nil {
			t.Fatal(err)
		}
		if err := a.RenewLockLease(ctx, "renew", time.Hour); err == nil {
			t.Fatal("renewed a lock someone else holds")
		}
		if err := a.Unlock(ctx, "renew"); err == nil {
			t.Fatal("unlock of a lost lock reported success")
		}
		var owner string
		if err := store.Pool().QueryRow(ctx, `SELECT owner FROM certmagic_locks WHERE key = 'renew'`).Scan(&owner); err != nil || owner != "thief" {
			t.Fatalf("the new holder's lock: %q, %v", owner, err)
		}
	})

	t.Run("mutual exclusion under contention", func(t *testing.T) {
		nodes := []*schema.CertStorage{a, b, schema.NewCertStorage(store.Pool())}
		var inside, entered atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, 9)
		for i := range 9 {
			wg.Go(func() {
				s := nodes[i%len(nodes)]
				if err := s.Lock(ctx, "contended"); err != nil {
					errs <- err
					return
				}
				if inside.Add(1) != 1 {
					errs <- errors.New("two holders at once")
				}
				entered.Add(1)
				inside.Add(-1)
				if err := s.Unlock(ctx, "contended"); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if entered.Load() != 9 {
			t.Fatalf("%d of 9 got the lock", entered.Load())
		}
	})
}
