// Package gitd is the git front end, over SSH (Server) and smart HTTP
// (NewHTTPHandler): it authenticates keys and tokens, checks project names,
// creates bare repositories on first push and runs the system
// git-receive-pack and git-upload-pack.
//
// Both transports run git through one runner (runGit, built on package
// proc): its own process group, SIGTERM to the group when the client goes
// away, the same exit-status mapping and the same logging. They differ only
// in where git's input comes from and where its output goes, so a fix to how
// git is run is made once for both.
package gitd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/gliderlabs/ssh"

	"minivercel/hooks"
	"minivercel/listen"
)

// Config configures a Server.
type Config struct {
	// Addr is the TCP address to listen on, such as ":2222". Empty means
	// ":22". Port 0 picks a free port; Addr() reports it.
	Addr string
	// HostKeyPath is the file holding the server's ed25519 host key in
	// OpenSSH PEM form. Required. If the file is missing a key is generated
	// and written with mode 0600, and reused from then on so clients' known
	// hosts stay valid.
	HostKeyPath string
	// ReposDir holds the bare repositories, one per project, at
	// <ReposDir>/<name>.git. Required; created (0700) if missing.
	ReposDir string
	// HookCommand is the absolute path of the minivercel executable. Each
	// repository's post-receive hook runs "<HookCommand> hook post-receive".
	// Required.
	HookCommand string
	// HookSocket is the unix socket of the hooks.Server, passed to the hook
	// in its environment (hooks.EnvHookSocket). Required.
	HookSocket string
	// Logger receives the server's logs. Nil means slog.Default().
	Logger *slog.Logger

	// HandshakeTimeout closes a connection that has not completed its SSH
	// handshake, authentication included, in this time. Zero means
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection with no traffic for this long. A
	// session's client is asked for a sign of life every IdleTimeout/4, so
	// a live client is never idle; a vanished one is found. Zero means
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxSessionTime closes any connection this long after it opened; it
	// must outlast a push that follows its build to the end. Zero means
	// DefaultMaxSessionTime.
	MaxSessionTime time.Duration
	// MaxPushBytes bounds the pack one push may send (git's
	// receive.maxInputSize); a larger push is refused before it is stored.
	// Zero means DefaultMaxPushBytes.
	MaxPushBytes int64
	// MaxConnsPerIP and MaxConns bound the open connections from one client
	// address and in all; more are closed at once. Zero means
	// DefaultMaxConnsPerIP and DefaultMaxConns.
	MaxConnsPerIP, MaxConns int

	// Commands runs the commands that are not git (`ssh git@host logs
	// blog`), for the user of the key. Nil: only git commands are served,
	// and any other is refused as before.
	Commands CommandRunner
}

// CommandRunner runs one command of an SSH session that is not git's.
//
// RunCommand is called once per such session, concurrently, with the id of
// the user whose key authenticated the connection and the command line
// split into words (see SplitCommand; never through a shell). It reads stdin
// only if the command wants input, writes the command's output, and returns
// its exit status: 0 done, 1 failed or refused, 2 a malformed command line.
// ctx ends when the client goes away, sends a signal, or the session reaches
// Config.MaxSessionTime; a command that follows a log must then return.
type CommandRunner interface {
	RunCommand(ctx context.Context, userID int64, command string, stdin io.Reader, stdout, stderr io.Writer) int
}

// Authorizer maps an SSH key to a user.
//
// UserByKeyFingerprint is called once per SSH session, concurrently, with
// the fingerprint (ssh.FingerprintSHA256 form, "SHA256:...") of the key the
// client proved it holds. An unknown key returns an error wrapping
// schema.ErrNotFound; the client is then told how to get the key added.
// Any other error is reported to the client as an internal error. ctx ends
// when the SSH connection does.
type Authorizer interface {
	UserByKeyFingerprint(ctx context.Context, fingerprint string) (userID int64, err error)
}

// Projects is the project registry gitd consults before running git.
//
// EnsureProject is called before every push, concurrently; it creates the
// project owned by ownerID if it does not exist and reports whether it did;
// an error fails the push. Every authenticated user may push to every
// project: one team per server.
// ProjectExists is called before every fetch or clone. name has passed
// schema.ValidateProjectName. ctx ends when the SSH connection does.
type Projects interface {
	EnsureProject(ctx context.Context, name string, ownerID int64) (created bool, err error)
	ProjectExists(ctx context.Context, name string) (bool, error)
}

// HookRegistrar announces a push to the hook server before receive-pack
// runs, so that the repository's post-receive hook can be tied to the
// authenticated user and project. *hooks.Server implements it.
type HookRegistrar interface {
	Register(p hooks.Push) (token string, release func() (hookExit int))
}

// Server is the SSH git server.
type Server struct {
	cfg      Config
	auth     Authorizer
	projects Projects
	reg      HookRegistrar
	log      *slog.Logger
	repos    repoStore
	conns    *connLimiter
	ssh      *ssh.Server
	ln       listen.Slot // from Listen to Shutdown
	// commands ends when Shutdown begins: a command following a log stops
	// then, rather than hold the shutdown until the session's maximum.
	commands     context.Context
	stopCommands context.CancelFunc
}

// componentLog is l, or slog.Default() when l is nil, marking its records
// as gitd's with attrs added.
func componentLog(l *slog.Logger, attrs ...any) *slog.Logger {
	if l == nil {
		l = slog.Default()
	}
	return l.With(append([]any{"component", "gitd"}, attrs...)...)
}

// gitPath is the PATH given to git: enough for git to find its helpers and
// for the hook script's /bin/sh, nothing from our own environment.
const gitPath = "/usr/local/bin:/usr/bin:/bin"

// waitDelay bounds how long git's output may stay open after git exits or
// is signalled (a hook that lingers keeps the pipes open).
const waitDelay = 10 * time.Second

// New returns a Server. It loads or creates the host key and the repos
// directory but does not listen yet.
func New(cfg Config, auth Authorizer, projects Projects, reg HookRegistrar) (*Server, error) {
	switch {
	case cfg.HostKeyPath == "":
		return nil, errors.New("new gitd: HostKeyPath is required")
	case auth == nil || projects == nil || reg == nil:
		return nil, errors.New("new gitd: Authorizer, Projects and HookRegistrar are required")
	}
	if cfg.Addr == "" {
		cfg.Addr = ":22"
	}
	repos, err := newRepoStore(cfg.ReposDir, cfg.HookCommand, cfg.HookSocket, cfg.MaxPushBytes)
	if err != nil {
		return nil, fmt.Errorf("new gitd: %w", err)
	}
	signer, err := loadOrCreateHostKey(cfg.HostKeyPath)
	if err != nil {
		return nil, fmt.Errorf("new gitd: %w", err)
	}
	cfg.HandshakeTimeout = cmp.Or(cfg.HandshakeTimeout, DefaultHandshakeTimeout)
	cfg.IdleTimeout = cmp.Or(cfg.IdleTimeout, DefaultIdleTimeout)
	cfg.MaxSessionTime = cmp.Or(cfg.MaxSessionTime, DefaultMaxSessionTime)
	cfg.MaxConnsPerIP = cmp.Or(cfg.MaxConnsPerIP, DefaultMaxConnsPerIP)
	cfg.MaxConns = cmp.Or(cfg.MaxConns, DefaultMaxConns)
	s := &Server{
		conns:    newConnLimiter(cfg.MaxConns, cfg.MaxConnsPerIP),
		cfg:      cfg,
		auth:     auth,
		projects: projects,
		reg:      reg,
		log:      componentLog(cfg.Logger),
		repos:    repos,
	}
	s.commands, s.stopCommands = context.WithCancel(context.Background())
	s.ssh = &ssh.Server{
		Addr:             cfg.Addr,
		Handler:          s.handleSession,
		PublicKeyHandler: s.publicKeyHandler,
		// A subsystem request (sftp, ...) gets the same clear refusal as
		// any other command instead of a bare "request failed".
		SubsystemHandlers: map[string]ssh.SubsystemHandler{"default": s.refuseSubsystem},
		ConnCallback:      s.acceptConn,
		IdleTimeout:       cfg.IdleTimeout,
		MaxTimeout:        cfg.MaxSessionTime,
		ConnectionFailedCallback: func(conn net.Conn, err error) {
			s.log.Debug("ssh handshake failed", "remote", conn.RemoteAddr().String(), "err", err)
		},
		// Port forwarding, agent forwarding and ptys are refused because
		// their callbacks are left nil.
	}
	s.ssh.AddHostKey(signer)
	return s, nil
}

// Listen binds Addr. After it returns, Addr reports the bound address.
// ListenAndServe calls it if needed; a second call does nothing.
func (s *Server) Listen() error {
	opened, err := s.ln.Open(func() (net.Listener, error) { return net.Listen("tcp", s.cfg.Addr) })
	switch {
	case errors.Is(err, listen.ErrClosed):
		return ErrServerClosed
	case err != nil:
		return fmt.Errorf("listen for ssh: %w", err)
	case opened:
		s.log.Info("ssh git server listening", "addr", s.Addr().String())
	}
	return nil
}

// Addr returns the address the server listens on, or nil before Listen.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve accepts SSH connections until Shutdown; it then returns
// ErrServerClosed. Listen must have been called.
func (s *Server) Serve() error {
	ln, closed := s.ln.Get()
	if closed {
		return ErrServerClosed
	}
	if ln == nil {
		return errors.New("serve ssh: Listen was not called")
	}
	err := s.ssh.Serve(ln)
	// Shutdown closes the listener before it tells gliderlabs to stop, so
	// Accept may fail with net.ErrClosed rather than ssh.ErrServerClosed.
	if _, closed := s.ln.Get(); closed || errors.Is(err, ssh.ErrServerClosed) {
		return ErrServerClosed
	}
	return fmt.Errorf("serve ssh: %w", err)
}

// ListenAndServe binds Addr if needed and serves until Shutdown, when it
// returns ErrServerClosed.
func (s *Server) ListenAndServe() error {
	if err := s.Listen(); err != nil {
		return err
	}
	return s.Serve()
}

// Shutdown stops accepting connections and waits for running git
// commands to finish. If ctx ends first it closes every connection (git
// processes then get SIGTERM) and returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopCommands()
	ln, _ := s.ln.Get()
	// Closing the slot first refuses a later Listen or Serve at once; and
	// gliderlabs only closes listeners Serve has seen, so ours is closed
	// here in case Serve never ran.
	_ = s.ln.Close()
	if ln == nil {
		return nil
	}
	err := s.ssh.Shutdown(ctx)
	if ctx.Err() != nil {
		_ = s.ssh.Close()
		return ctx.Err()
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
