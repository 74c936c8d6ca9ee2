package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// migrationFault says how TestKilledDuringMigration turns a database of the
// current release back into the previous release's, and how it catches the
// server inside the migration that upgrades it again.
type migrationFault struct {
	// undo drops exactly what the migration adds (schema_version is set
	// back by the test itself).
	undo string
	// lock, run in a transaction that is then prepared (PREPARE
	// TRANSACTION), takes a lock that makes the migration's transaction wait
	// half-way. A prepared transaction keeps its locks with no session and
	// across a restart of PostgreSQL, so the lock is already held when the
	// restarted server's migration runs, with no race against it.
	lock string
	// waits is a piece of the statement that waits for lock, as
	// pg_stat_activity shows it.
	waits string
	// present is true when what the migration adds is there. It reads the
	// catalog only: a query of the tables themselves would queue behind
	// the waiting migration's lock request.
	present string
}

// versionRowLock fits any migration run by tern: tern runs a migration's
// file and then "update schema_version set version=$1" in one transaction,
// and that UPDATE waits for the row lock. The migration's statements have
// all run by then, uncommitted: the kill comes after the last of them and
// before the commit.
const versionRowLock = "SELECT version FROM schema_version FOR UPDATE"

// migrationFaults are keyed by the number of the migration, the newest of
// which the test undoes. A new migration needs its entry here.
var migrationFaults = map[int]migrationFault{
	// ALTER TABLE takes an ACCESS EXCLUSIVE lock on builds, which waits
	// for any other lock on it: the migration's first statement waits.
	// (versionRowLock, waiting in "update schema_version", works too.)
	8: {
		undo:  "ALTER TABLE builds DROP COLUMN collected_at; ALTER TABLE builds DROP COLUMN collected_keep;",
		lock:  "LOCK TABLE builds IN ACCESS SHARE MODE",
		waits: "collected_at",
		present: `SELECT count(*) = 2 FROM pg_attribute WHERE attrelid = 'builds'::regclass
			AND attname IN ('collected_at', 'collected_keep') AND NOT attisdropped`,
	},
	// Both only create tables, which a lock on an existing table need not
	// hold up: the version row's lock holds their transaction after the
	// CREATE TABLEs ran.
	9: {
		undo:    "DROP TABLE blob_chunks; DROP TABLE blobs;",
		lock:    versionRowLock,
		waits:   "update schema_version",
		present: "SELECT to_regclass('blobs') IS NOT NULL AND to_regclass('blob_chunks') IS NOT NULL",
	},
	10: {
		undo:    "DROP TABLE nodes;",
		lock:    versionRowLock,
		waits:   "update schema_version",
		present: "SELECT to_regclass('nodes') IS NOT NULL",
	},
	11: {
		undo:  "DROP TABLE deployment_edges; ALTER TABLE deployments DROP COLUMN node_id; ALTER TABLE builds DROP COLUMN node_id, DROP COLUMN attempt, DROP COLUMN source_sha256;",
		lock:  "LOCK TABLE builds IN ACCESS SHARE MODE",
		waits: "node_id",
		present: `SELECT to_regclass('deployment_edges') IS NOT NULL AND (SELECT count(*) = 3 FROM pg_attribute
			WHERE attrelid = 'builds'::regclass AND attname IN ('node_id', 'attempt', 'source_sha256') AND NOT attisdropped)`,
	}, 12: {
		undo:    "DROP TABLE traffic_minutes;",
		lock:    versionRowLock,
		waits:   "update schema_version",
		present: "SELECT to_regclass('traffic_minutes') IS NOT NULL",
	},
}

// newestMigration is the highest number among the migration files the
// server embeds (schema/migrations/NNN_name.sql).
func newestMigration(t *testing.T) (int, string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join("..", "schema", "migrations"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sql") {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		t.Fatal("no migrations in ../schema/migrations")
	}
	sort.Strings(names)
	name := names[len(names)-1]
	prefix, _, _ := strings.Cut(name, "_")
	n, err := strconv.Atoi(prefix)
	if err != nil {
		t.Fatalf("migration %s: no number: %v", name, err)
	}
	return n, name
}

// dbConn connects, as the cluster's superuser, to the server's database in
// its private PostgreSQL, through the unix socket the cluster makes
// (schema.StartCluster: <data dir>/postgres/run, or a short directory in
// the temp dir when that path is too long for a socket). It retries until
// the cluster answers or the deadline passes.
func (s *server) dbConn(t *testing.T, deadline time.Time) *pgx.Conn {
	t.Helper()
	conn, err := s.tryDBConn(deadline)
	if err != nil {
		t.Fatalf("%v\nserver log:\n%s", err, s.logText())
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func (s *server) tryDBConn(deadline time.Time) (*pgx.Conn, error) {
	clusterDir, err := filepath.Abs(filepath.Join(s.dataDir, "postgres"))
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(clusterDir))
	sockets := []string{
		filepath.Join(clusterDir, "run"),
		filepath.Join(os.TempDir(), "minivercel-pg-"+hex.EncodeToString(sum[:6])),
		filepath.Join("/tmp", "minivercel-pg-"+hex.EncodeToString(sum[:6])), // the server's TMPDIR is unset
	}
	for {
		var last error
		for _, dir := range sockets {
			if _, err := os.Stat(filepath.Join(dir, ".s.PGSQL.5432")); err != nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=5432 user=minivercel dbname=minivercel sslmode=disable", dir))
			cancel()
			if err == nil {
				return conn, nil
			}
			last = err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("cannot connect to the server's PostgreSQL (sockets tried: %v): %v", sockets, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// launchNoWait starts `minivercel serve` as launch does, without waiting
// for it to be ready: its start may be held up on purpose.
func (s *server) launchNoWait(t *testing.T) {
	t.Helper()
	logFile, err := os.CreateTemp(filepath.Dir(s.dataDir), "serve-*.log")
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	s.logPath = logFile.Name()
	s.done = make(chan struct{})
	s.cmd = exec.Command(binary, "serve", "--data-dir", s.dataDir,
		"--ssh-addr", fmt.Sprintf("127.0.0.1:%d", s.sshPort),
		"--http-addr", fmt.Sprintf("127.0.0.1:%d", s.httpPort))
	s.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "MINIVERCEL_TOOLCHAIN_DIR=" + toolchainDir}, s.env...)
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := s.done
	cmd := s.cmd
	go func() { cmd.Wait(); close(done) }()
}

// waitReady waits until the server answers /healthz with 200.
func (s *server) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if code, _ := s.get("localhost", "/healthz"); code == 200 {
			return
		}
		select {
		case <-s.done:
			t.Fatalf("server exited before it was ready:\n%s", s.logText())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready in time:\n%s", s.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitMigrationBlocked waits until a backend other than conn's waits for a
// lock in a statement containing waits: the migration, held by the prepared
// transaction's lock. It returns that backend's pid.
func (s *server) waitMigrationBlocked(t *testing.T, conn *pgx.Conn, waits string) int {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var pid int
		var query, event string
		err := conn.QueryRow(context.Background(), `
			SELECT pid, query, wait_event FROM pg_stat_activity
			WHERE pid <> pg_backend_pid() AND datname = current_database()
			  AND wait_event_type = 'Lock' AND state = 'active' AND strpos(lower(query), lower($1)) > 0
			LIMIT 1`, waits).Scan(&pid, &query, &event)
		if err == nil {
			if query = strings.Join(strings.Fields(query), " "); len(query) > 300 {
				query = "…" + query[len(query)-300:]
			}
			t.Logf("backend %d waits for a lock (%s) in the migration: %s", pid, event, query)
			return pid
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			t.Fatalf("look for the waiting migration: %v", err)
		}
		select {
		case <-s.done:
			t.Fatalf("the server exited instead of waiting in the migration:\n%s", s.logText())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no backend waited for a lock in a statement with %q within 60 s\nserver log:\n%s", waits, s.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func present(t *testing.T, conn *pgx.Conn, query string) bool {
	t.Helper()
	var ok bool
	if err := conn.QueryRow(context.Background(), query).Scan(&ok); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return ok
}

func schemaVersion(t *testing.T, conn *pgx.Conn) int {
	t.Helper()
	var v int
	if err := conn.QueryRow(context.Background(), "SELECT version FROM schema_version").Scan(&v); err != nil {
		t.Fatalf("read schema_version: %v", err)
	}
	return v
}

// TestKilledDuringMigration: the server killed (kill -9) in the middle of a
// database migration comes back, on the next start, with the migration
// applied, the previous deployment serving, and pushes deploying.
//
// The database is turned back into the previous release's (the newest
// migration undone), and a prepared transaction holds a lock the
// migration's transaction needs, so the restarted server waits inside the
// migration, where the test kills it. No hook in the server is needed.
func TestKilledDuringMigration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	newest, file := newestMigration(t)
	fault, ok := migrationFaults[newest]
	if !ok {
		t.Fatalf("the newest migration is %s, and TestKilledDuringMigration does not know how to undo it: "+
			"add migration %d to migrationFaults in e2e/migration_fault_test.go, with the SQL that drops exactly "+
			"what %s adds, a lock that holds its transaction half-way (versionRowLock fits any migration), and a catalog query that says whether it is applied", file, newest, file)
	}

	s := startServer(t)
	r := newRepo(t, "main", map[string]string{"index.html": "<h1>deployed before the upgrade</h1>"})
	s.mustPush(r, "upgraded")
	s.waitBody("upgraded.localhost", "/", "deployed before the upgrade")

	// A prepared transaction needs max_prepared_transactions, which only a
	// restart of PostgreSQL sets.
	conn := s.dbConn(t, time.Now().Add(30*time.Second))
	if v := schemaVersion(t, conn); v != newest {
		t.Fatalf("schema_version = %d, want %d (%s)", v, newest, file)
	}
	if !present(t, conn, fault.present) {
		t.Fatalf("migrationFaults[%d].present says %s is not applied on a new server", newest, file)
	}
	if _, err := conn.Exec(ctx, "ALTER SYSTEM SET max_prepared_transactions = 4"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	s.restart()

	// The previous release's database: the newest migration undone.
	conn = s.dbConn(t, time.Now().Add(30*time.Second))
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, fault.undo); err != nil {
		t.Fatalf("undo %s: %v", file, err)
	}
	if _, err := tx.Exec(ctx, "UPDATE schema_version SET version = $1", newest-1); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if present(t, conn, fault.present) {
		t.Fatalf("migrationFaults[%d].undo left what %s adds in place", newest, file)
	}
	// The lock the migration will wait for, held by a prepared
	// transaction: it outlives this session and the restart.
	for _, q := range []string{"BEGIN", fault.lock, "PREPARE TRANSACTION 'migfault'"} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	prepared := true
	release := func(conn *pgx.Conn) {
		t.Helper()
		if _, err := conn.Exec(ctx, "ROLLBACK PREPARED 'migfault'"); err != nil {
			t.Fatalf("release the lock: %v", err)
		}
		prepared = false
	}
	t.Cleanup(func() { // before the harness stops the server: let a held-up start finish
		if !prepared {
			return
		}
		if c, err := s.tryDBConn(time.Now().Add(10 * time.Second)); err == nil {
			c.Exec(ctx, "ROLLBACK PREPARED 'migfault'")
			c.Close(ctx)
		}
	})
	conn.Close(ctx)
	s.stop()

	// The server starts, runs the migration and waits in it: kill -9.
	s.launchNoWait(t)
	conn = s.dbConn(t, time.Now().Add(60*time.Second))
	first := s.waitMigrationBlocked(t, conn, fault.waits)
	if v := schemaVersion(t, conn); v != newest-1 {
		t.Fatalf("schema_version while the migration waits = %d, want %d", v, newest-1)
	}
	postmaster := s.postgresProcesses(t)[0]
	conn.Close(ctx)
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-s.done

	// The next start: PostgreSQL rolled the interrupted migration back,
	// and the server runs it again (and waits again, the lock still held).
	s.launchNoWait(t)
	conn = s.dbConn(t, time.Now().Add(60*time.Second))
	again := s.waitMigrationBlocked(t, conn, fault.waits)
	if again == first {
		t.Fatalf("the backend waiting in the migration after the restart is the killed server's (pid %d)", first)
	}
	if v := schemaVersion(t, conn); v != newest-1 {
		t.Fatalf("schema_version after the kill = %d, want %d: the interrupted migration was not rolled back", v, newest-1)
	}
	if present(t, conn, fault.present) {
		t.Fatalf("after the kill, %s is applied though its transaction never committed", file)
	}
	release(conn)
	s.waitReady(t)

	if v := schemaVersion(t, conn); v != newest {
		t.Errorf("schema_version after the restart = %d, want %d", v, newest)
	}
	if !present(t, conn, fault.present) {
		t.Errorf("after the restart, what %s adds is missing", file)
	}
	var leftover int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_xacts").Scan(&leftover); err != nil || leftover != 0 {
		t.Errorf("prepared transactions left: %d (%v)", leftover, err)
	}
	if now := s.postgresProcesses(t)[0]; now != postmaster && alive(postmaster) {
		t.Errorf("the killed server's postmaster %d outlived the restart (the new one is %d)", postmaster, now)
	}
	if code, body := s.get("upgraded.localhost", "/"); code != 200 || !strings.Contains(body, "deployed before the upgrade") {
		t.Errorf("the deployment from before the crash = %d %q", code, body)
	}
	r.commit("v2", map[string]string{"index.html": "<h1>deployed after the upgrade</h1>"})
	s.mustPush(r, "upgraded")
	s.waitBody("upgraded.localhost", "/", "deployed after the upgrade")
}
