package schema

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

const (
	// lockTTL is how long a lock outlives its holder: a node that dies
	// holding one blocks the others for at most this long. A live holder
	// renews it every lockTTL/3, so long ACME orders keep it.
	lockTTL = time.Minute
	// lockPoll is how often a blocked Lock tries again. Certificate work
	// takes seconds, so a quarter second of extra wait is nothing, and
	// the query is a primary-key upsert.
	lockPoll = 250 * time.Millisecond
)

// CertStorage is certmagic's Storage on PostgreSQL: certificates, keys, ACME
// account data and challenge tokens live in certmagic_data, locks in
// certmagic_locks, so every edge node sharing the database serves the same
// certificates and orders each one once.
//
// Keys are slash-separated paths; a key is also a "directory" of the keys
// below it, as in certmagic's FileStorage: Exists, Stat, List and Delete see
// directories. Load, Stat and List of a missing key return an error wrapping
// fs.ErrNotExist; Delete of a missing key is no error.
//
// Locks are rows with an expiry and the holder's random token. A holder
// renews its lease in the background until Unlock, so only a dead holder's
// lock expires; a blocked Lock polls and honours ctx. Locks belong to one
// CertStorage value: Unlock of a lock taken through another value (or
// another process) is an error and releases nothing.
//
// CertStorage is safe for concurrent use.
type CertStorage struct {
	pool *pgxpool.Pool

	mu    sync.Mutex
	held  map[string]heldLock // lock name → our token and lease renewer
	ttl   time.Duration
	sleep time.Duration
}

type heldLock struct {
	token string
	stop  context.CancelFunc
	done  chan struct{}
}

var (
	_ certmagic.Storage          = (*CertStorage)(nil)
	_ certmagic.TryLocker        = (*CertStorage)(nil)
	_ certmagic.LockLeaseRenewer = (*CertStorage)(nil)
)

// NewCertStorage returns the certificate storage in the database of pool.
func NewCertStorage(pool *pgxpool.Pool) *CertStorage {
	return &CertStorage{pool: pool, held: map[string]heldLock{}, ttl: lockTTL, sleep: lockPoll}
}

// under returns the LIKE pattern matching every key below dir.
func under(dir string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	if dir == "" {
		return "%"
	}
	return r.Replace(dir) + "/%"
}

// Store puts value at key, replacing what was there.
func (c *CertStorage) Store(ctx context.Context, key string, value []byte) error {
	_, err := c.pool.Exec(ctx, `INSERT INTO certmagic_data (key, value, modified) VALUES ($1, $2, now())
		ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, modified = EXCLUDED.modified`, key, value)
	if err != nil {
		return fmt.Errorf("store %s: %w", key, err)
	}
	return nil
}

// Load returns the value at key, or an error wrapping fs.ErrNotExist.
func (c *CertStorage) Load(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := c.pool.QueryRow(ctx, `SELECT value FROM certmagic_data WHERE key = $1`, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("load %s: %w", key, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", key, err)
	}
	return v, nil
}

// Delete removes key and every key below it; a missing key is no error.
func (c *CertStorage) Delete(ctx context.Context, key string) error {
	_, err := c.pool.Exec(ctx, `DELETE FROM certmagic_data WHERE key = $1 OR key LIKE $2`, key, under(key))
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// Exists reports whether key is stored or has keys below it. An error
// reading the database answers false.
func (c *CertStorage) Exists(ctx context.Context, key string) bool {
	var ok bool
	err := c.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM certmagic_data WHERE key = $1 OR key LIKE $2)`,
		key, under(key)).Scan(&ok)
	return err == nil && ok
}

// List returns the keys below dir, sorted: with recursive every stored key
// and every directory in between, without it only dir's direct children
// (stored keys and directories). A dir that neither is stored nor has keys
// below it is an error wrapping fs.ErrNotExist; "" lists from the root.
func (c *CertStorage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	dir = strings.TrimSuffix(dir, "/")
	rows, _ := c.pool.Query(ctx, `SELECT key FROM certmagic_data WHERE key = $1 OR key LIKE $2`, dir, under(dir))
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("list %s: %w", dir, fs.ErrNotExist)
	}
	seen := map[string]bool{}
	var out []string
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	prefix := ""
	if dir != "" {
		prefix = dir + "/"
	}
	for _, k := range keys {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok || rest == "" || k == dir {
			continue // dir itself: a file has no children
		}
		segs := strings.Split(rest, "/")
		if !recursive {
			add(prefix + segs[0])
			continue
		}
		for i := range segs {
			add(prefix + strings.Join(segs[:i+1], "/"))
		}
	}
	slices.Sort(out)
	return out, nil
}

// Stat describes key: a stored key is terminal with its size and time of
// change; a directory is not terminal and carries the newest change below
// it. A missing key is an error wrapping fs.ErrNotExist.
func (c *CertStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	var (
		size     int64
		modified time.Time
	)
	err := c.pool.QueryRow(ctx, `SELECT length(value), modified FROM certmagic_data WHERE key = $1`, key).Scan(&size, &modified)
	if err == nil {
		return certmagic.KeyInfo{Key: key, Modified: modified, Size: size, IsTerminal: true}, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return certmagic.KeyInfo{}, fmt.Errorf("stat %s: %w", key, err)
	}
	var newest *time.Time
	if err := c.pool.QueryRow(ctx, `SELECT max(modified) FROM certmagic_data WHERE key LIKE $1`, under(key)).Scan(&newest); err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("stat %s: %w", key, err)
	}
	if newest == nil {
		return certmagic.KeyInfo{}, fmt.Errorf("stat %s: %w", key, fs.ErrNotExist)
	}
	return certmagic.KeyInfo{Key: key, Modified: *newest, IsTerminal: false}, nil
}

// Lock takes the named lock, waiting while another holder has it (until
// its lease expires if that holder died), or until ctx ends.
func (c *CertStorage) Lock(ctx context.Context, name string) error {
	for {
		ok, err := c.TryLock(ctx, name)
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lock %s: %w", name, ctx.Err())
		case <-time.After(c.sleep):
		}
	}
}

// TryLock takes the named lock if nobody holds it, or if its holder's lease
// has expired, and reports whether it did.
func (c *CertStorage) TryLock(ctx context.Context, name string) (bool, error) {
	c.mu.Lock()
	_, mine := c.held[name]
	c.mu.Unlock()
	if mine {
		// certmagic locks are not re-entrant: a second taker must wait,
		// also within one process.
		return false, nil
	}
	b := make([]byte, 16)
	rand.Read(b)
	token := hex.EncodeToString(b)
	// The database's clock decides expiry, so nodes with skewed clocks
	// agree on when a lease ends.
	tag, err := c.pool.Exec(ctx, `INSERT INTO certmagic_locks (key, owner, expires)
		VALUES ($1, $2, now() + make_interval(secs => $3))
		ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, expires = EXCLUDED.expires
		WHERE certmagic_locks.expires < now()`, name, token, c.ttl.Seconds())
	if err != nil {
		return false, fmt.Errorf("lock %s: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	rctx, stop := context.WithCancel(context.Background())
	h := heldLock{token: token, stop: stop, done: make(chan struct{})}
	c.mu.Lock()
	c.held[name] = h
	c.mu.Unlock()
	go c.keepLease(rctx, name, h)
	return true, nil
}

// keepLease renews a held lock every third of its lease until Unlock, so
// that only a holder that died loses it.
func (c *CertStorage) keepLease(ctx context.Context, name string, h heldLock) {
	defer close(h.done)
	t := time.NewTicker(c.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// A failed renewal is retried on the next tick; if the lease
			// runs out meanwhile, Unlock reports the lock as lost.
			_ = c.renew(ctx, name, h.token, c.ttl)
		}
	}
}

func (c *CertStorage) renew(ctx context.Context, name, token string, lease time.Duration) error {
	tag, err := c.pool.Exec(ctx, `UPDATE certmagic_locks SET expires = now() + make_interval(secs => $3)
		WHERE key = $1 AND owner = $2 AND expires >= now()`, name, token, lease.Seconds())
	if err != nil {
		return fmt.Errorf("renew lock %s: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("renew lock %s: the lease expired and the lock may be someone else's", name)
	}
	return nil
}

// RenewLockLease extends a lock this CertStorage holds to leaseDuration
// from now (never shorter than the background lease). It fails when the
// lock is not held here or its lease already ran out.
func (c *CertStorage) RenewLockLease(ctx context.Context, name string, leaseDuration time.Duration) error {
	c.mu.Lock()
	h, ok := c.held[name]
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("renew lock %s: not held", name)
	}
	return c.renew(ctx, name, h.token, max(leaseDuration, c.ttl))
}

// Unlock releases a lock this CertStorage holds. It fails when the lock is
// not held here, or when its lease had expired and someone else took it;
// another holder's lock is never released.
func (c *CertStorage) Unlock(ctx context.Context, name string) error {
	c.mu.Lock()
	h, ok := c.held[name]
	delete(c.held, name)
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("unlock %s: not held", name)
	}
	h.stop()
	<-h.done
	// Release even when the caller's ctx has ended: a lock left behind
	// would hold the other nodes off for a whole lease.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	tag, err := c.pool.Exec(ctx, `DELETE FROM certmagic_locks WHERE key = $1 AND owner = $2`, name, h.token)
	if err != nil {
		return fmt.Errorf("unlock %s: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("unlock %s: the lease had expired and the lock was taken", name)
	}
	return nil
}
