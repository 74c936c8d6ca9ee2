package schema

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// ClusterConfig describes a private PostgreSQL cluster run from the system's binaries.
type ClusterConfig struct {
	// Dir holds the cluster's data directory (Dir/data). It is created if missing.
	Dir string
	// SocketDir is where the unix socket lives. Zero value: Dir/run, or a short
	// directory under the system temp dir when that path would exceed the kernel's
	// 108-byte socket path limit.
	SocketDir string
	// Port names the socket file (.s.PGSQL.<port>); TCP is always off. Zero: 5432.
	Port int
	// BinDir holds initdb and postgres. Zero value: the newest /usr/lib/postgresql/*/bin.
	BinDir string
	// Fast turns off fsync and full-page writes: for tests only, a crash loses data.
	Fast bool
	// Shared lets StartCluster use a cluster that another live process (a running
	// server) already runs in Dir, instead of refusing with ErrClusterInUse; the
	// admin subcommands set it so they work while the server runs. Zero: refuse.
	Shared bool
	// Logger receives the cluster's lifecycle events. Zero value: slog.Default().
	Logger *slog.Logger
}

// Cluster is a running private PostgreSQL server owned by this process.
// When this process started the postmaster, the cluster supervises it: a
// postmaster that dies (killed, crashed) is started again, with a backoff,
// until Stop.
type Cluster struct {
	cfg  ClusterConfig
	cred *syscall.Credential
	log  *slog.Logger
	once sync.Once
	quit chan struct{} // closed by Stop: no more restarts

	mu       sync.Mutex
	cmd      *exec.Cmd     // the current postmaster; nil when attached to another's
	done     chan struct{} // closed when cmd exits
	waitErr  error         // cmd's exit, once done is closed
	stopping bool
}

// restartBackoff bounds the wait between restarts of a postmaster that
// keeps dying.
const (
	restartMin = 500 * time.Millisecond
	restartMax = 30 * time.Second
)

// clusterUser is the system user the cluster runs as when the server runs as root:
// PostgreSQL refuses to run as root, and the build user must never own the data.
const clusterUser = "postgres"

// fallbackClusterUser is created when the Debian postgres user is missing.
const fallbackClusterUser = "minivercel-pg"

// dbName and dbUser name the database and role the server uses inside its cluster.
const (
	dbName = "minivercel"
	dbUser = "minivercel"
)

// StartCluster initialises the cluster on first use and starts it. The returned
// cluster is stopped by Stop; if this process dies, the kernel sends the postmaster
// SIGINT (a fast, clean shutdown) so no orphan survives.
func StartCluster(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	if cfg.Port == 0 {
		cfg.Port = 5432
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.BinDir == "" {
		bin, err := findPostgresBin()
		if err != nil {
			return nil, err
		}
		cfg.BinDir = bin
	}
	abs, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("resolve cluster dir: %w", err)
	}
	cfg.Dir = abs
	if cfg.SocketDir == "" {
		cfg.SocketDir = filepath.Join(cfg.Dir, "run")
		if len(cfg.SocketDir)+len("/.s.PGSQL.65535.lock") >= 100 {
			sum := sha256.Sum256([]byte(cfg.Dir))
			cfg.SocketDir = filepath.Join(os.TempDir(), "minivercel-pg-"+hex.EncodeToString(sum[:6]))
		}
	}
	c := &Cluster{cfg: cfg, quit: make(chan struct{}), log: cfg.Logger.With("component", "postgres")}
	uid, gid, err := c.owner()
	if err != nil {
		return nil, err
	}
	if err := c.prepareDirs(uid, gid); err != nil {
		return nil, err
	}
	if attached, err := c.takeOverStale(); err != nil || attached {
		if err != nil {
			return nil, err
		}
		if err := c.waitReady(ctx); err != nil {
			return nil, err
		}
		return c, nil
	}
	if _, err := os.Stat(filepath.Join(c.dataDir(), "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := c.initdb(ctx); err != nil {
			return nil, err
		}
	}
	if err := c.start(); err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx); err != nil {
		_ = c.Stop()
		return nil, err
	}
	if err := c.ensureDatabase(ctx, dbName); err != nil {
		_ = c.Stop()
		return nil, err
	}
	go c.supervise()
	return c, nil
}

// supervise starts the postmaster again whenever it exits without Stop
// asking it to: the server's connections then come back by themselves, and
// /healthz says what happened meanwhile.
func (c *Cluster) supervise() {
	backoff := restartMin
	for {
		c.mu.Lock()
		done := c.done
		c.mu.Unlock()
		select {
		case <-done:
		case <-c.quit:
			return
		}
		c.mu.Lock()
		if c.stopping {
			c.mu.Unlock()
			return
		}
		c.log.Error("postgres exited; starting it again", "err", c.waitErr, "in", backoff)
		c.mu.Unlock()
		select {
		case <-time.After(backoff):
		case <-c.quit:
			return
		}
		backoff = min(2*backoff, restartMax)
		c.mu.Lock()
		if c.stopping {
			c.mu.Unlock()
			return
		}
		err := c.start()
		c.mu.Unlock()
		if err != nil {
			c.log.Error("start postgres again", "err", err)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err = c.waitReady(ctx)
		cancel()
		if err != nil {
			c.log.Error("postgres started again but is not ready", "err", err)
			continue
		}
		c.log.Info("postgres is back")
		backoff = restartMin
	}
}

// DSN returns the connection string of the server's database in this cluster.
func (c *Cluster) DSN() string { return c.DSNFor(dbName) }

// DSNFor returns the connection string of database name in this cluster.
func (c *Cluster) DSNFor(name string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", c.cfg.SocketDir, c.cfg.Port, dbUser, name)
}

// CreateDatabase creates an empty database; tests use one per test.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) error {
	return c.ensureDatabase(ctx, name)
}

// Stop shuts the cluster down with a fast shutdown (SIGINT) and waits for it; after
// 30 seconds it falls back to an immediate shutdown (SIGQUIT).
func (c *Cluster) Stop() error {
	c.once.Do(func() {
		c.mu.Lock()
		c.stopping = true
		close(c.quit)
		cmd, done := c.cmd, c.done
		c.mu.Unlock()
		if cmd == nil || cmd.Process == nil {
			return
		}
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Signal(syscall.SIGQUIT)
			<-done
		}
		c.log.Info("postgres stopped")
	})
	return nil
}

// PID is the process id of the postmaster this cluster runs, 0 when it is
// attached to another process's cluster.
func (c *Cluster) PID() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil || c.cmd.Process == nil {
		return 0
	}
	return c.cmd.Process.Pid
}

func (c *Cluster) dataDir() string { return filepath.Join(c.cfg.Dir, "data") }

// owner picks the unprivileged system user that runs the cluster. PostgreSQL
// refuses root, so as root we use the postgres user (creating a dedicated one when
// it is missing); otherwise the cluster runs as the current user.
func (c *Cluster) owner() (uint32, uint32, error) {
	if os.Geteuid() != 0 {
		return uint32(os.Getuid()), uint32(os.Getgid()), nil
	}
	u, err := user.Lookup(clusterUser)
	if err != nil {
		u, err = user.Lookup(fallbackClusterUser)
	}
	if err != nil {
		out, cerr := exec.Command("useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
			"--shell", "/usr/sbin/nologin", fallbackClusterUser).CombinedOutput()
		if cerr != nil {
			return 0, 0, fmt.Errorf("create system user %s: %w: %s", fallbackClusterUser, cerr, out)
		}
		if u, err = user.Lookup(fallbackClusterUser); err != nil {
			return 0, 0, fmt.Errorf("look up system user %s: %w", fallbackClusterUser, err)
		}
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
	return uint32(uid), uint32(gid), nil
}

func (c *Cluster) prepareDirs(uid, gid uint32) error {
	// The cluster dir is traversable but not listable by others (0711) so the
	// cluster user can reach its data inside a root-owned data directory; the
	// data and socket dirs belong to the cluster user alone.
	if err := os.MkdirAll(c.cfg.Dir, 0o711); err != nil {
		return fmt.Errorf("create cluster dir: %w", err)
	}
	if err := os.Chmod(c.cfg.Dir, 0o711); err != nil {
		return fmt.Errorf("chmod cluster dir: %w", err)
	}
	for _, d := range []string{c.dataDir(), c.cfg.SocketDir} {
		// The socket dir may live in the shared temp dir: a symlink planted
		// there by another user must never make root change a path's owner.
		if fi, err := os.Lstat(d); err == nil && !fi.IsDir() {
			return fmt.Errorf("%w: %s exists and is not a directory (a symlink?)", ErrClusterStart, d)
		}
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return fmt.Errorf("chmod %s: %w", d, err)
		}
		if err := os.Lchown(d, int(uid), int(gid)); err != nil {
			return fmt.Errorf("chown %s: %w", d, err)
		}
	}
	// The cluster user must be able to traverse every parent of its directory. A
	// parent without o+x (a home directory, say) gets o+x added, which allows
	// traversal but not listing, and the change is logged.
	for dir := filepath.Dir(c.cfg.Dir); c.cred != nil && dir != "/"; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm()&0o001 != 0 {
			continue
		}
		if err := os.Chmod(dir, fi.Mode().Perm()|0o001); err != nil {
			return fmt.Errorf("make %s traversable for the cluster user: %w", dir, err)
		}
		c.log.Warn("made a parent of the data directory traversable (o+x) for the postgres user", "dir", dir)
	}
	return nil
}

// takeOverStale deals with a postmaster.pid left in the data directory. A
// postmaster whose parent died (an earlier server killed without cleanup) is
// stopped; one whose parent lives belongs to a running server: with Shared we
// use it (attached is true), otherwise we refuse rather than stop someone
// else's database.
func (c *Cluster) takeOverStale() (attached bool, err error) {
	b, err := os.ReadFile(filepath.Join(c.dataDir(), "postmaster.pid"))
	if err != nil {
		return false, nil
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 || !isPostgres(pid) {
		return false, nil
	}
	if ppid := parentPID(pid); ppid > 1 && syscall.Kill(ppid, 0) == nil {
		if c.cfg.Shared {
			c.log.Debug("using the postgres of the running server", "pid", pid)
			return true, nil
		}
		return false, fmt.Errorf("%w: pid %d (started by pid %d) already serves %s", ErrClusterInUse, pid, ppid, c.dataDir())
	}
	c.log.Warn("stopping a postgres left over from an earlier run", "pid", pid)
	_ = syscall.Kill(pid, syscall.SIGINT)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			return false, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false, fmt.Errorf("%w: postgres pid %d from an earlier run does not stop", ErrClusterStart, pid)
}

// parentPID reads a process's parent from /proc; 0 when unknown.
func parentPID(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name in parentheses may contain spaces: fields start after ")".
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

func isPostgres(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	name, _, _ := strings.Cut(string(b), "\x00")
	return filepath.Base(name) == "postgres"
}

func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.cfg.BinDir, name), args...)
	cmd.Dir = c.cfg.Dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "TZ=UTC"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Setpgid: true}
	return cmd
}

func (c *Cluster) initdb(ctx context.Context) error {
	c.log.Info("initialising private postgres", "dir", c.dataDir())
	// trust is safe here: the server listens on no TCP port and its socket lives in
	// a directory only the cluster user (and root) can enter.
	cmd := c.command(ctx, "initdb", "-D", c.dataDir(), "-U", dbUser, "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "-N")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: initdb: %v: %s", ErrClusterStart, err, out)
	}
	return nil
}

// start starts a postmaster; the caller holds mu, or is StartCluster
// before anyone else can see c.
func (c *Cluster) start() error {
	args := []string{"-D", c.dataDir(), "-k", c.cfg.SocketDir, "-p", strconv.Itoa(c.cfg.Port),
		"-c", "listen_addresses=", "-c", "unix_socket_permissions=0700", "-c", "max_connections=100"}
	if c.cfg.Fast {
		args = append(args, "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off")
	}
	cmd := c.command(context.Background(), "postgres", args...)
	// SIGINT is PostgreSQL's fast shutdown; SIGQUIT would force crash recovery next start.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGINT
	logf, err := os.OpenFile(filepath.Join(c.cfg.Dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open postgres log: %w", err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("%w: %v", ErrClusterStart, err)
	}
	done := make(chan struct{})
	c.cmd, c.done = cmd, done
	go func() {
		err := cmd.Wait()
		logf.Close()
		c.mu.Lock()
		c.waitErr = err
		c.mu.Unlock()
		close(done)
	}()
	return nil
}

func (c *Cluster) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, c.DSNFor("postgres"))
		if err == nil {
			conn.Close(ctx)
			c.log.Info("postgres ready", "socket", c.cfg.SocketDir)
			return nil
		}
		select {
		case <-c.doneOrNever():
			log, _ := os.ReadFile(filepath.Join(c.cfg.Dir, "postgres.log"))
			c.mu.Lock()
			exit := c.waitErr
			c.mu.Unlock()
			return fmt.Errorf("%w: postgres exited: %v: %s", ErrClusterStart, exit, tail(log, 2000))
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ErrClusterStart, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// doneOrNever is the exit of the postmaster we started; an attached cluster
// (not ours) never reports one.
func (c *Cluster) doneOrNever() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return nil
	}
	return c.done
}

func (c *Cluster) ensureDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.DSNFor("postgres"))
	if err != nil {
		return fmt.Errorf("connect to cluster: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

func findPostgresBin() (string, error) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	best, bestVer := "", -1
	for _, m := range matches {
		v, err := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(m))))
		if err == nil && v > bestVer {
			best, bestVer = filepath.Dir(m), v
		}
	}
	if best == "" {
		if p, err := exec.LookPath("postgres"); err == nil {
			return filepath.Dir(p), nil
		}
		return "", fmt.Errorf("%w: no PostgreSQL binaries in /usr/lib/postgresql/*/bin (install postgresql) and no --database-url given", ErrClusterStart)
	}
	return best, nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
