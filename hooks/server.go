package hooks

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"minivercel/listen"
)

// Push identifies one git push: the project pushed to and the user whose
// SSH key authenticated it. gitd fills it in; the hook never does.
type Push struct {
	Project string
	UserID  int64
}

// Receiver turns the ref updates of one push into builds and streams their
// log back to the pusher.
//
// Receive is called once per post-receive hook run, concurrently for
// different pushes. updates have been validated. out forwards each Write to
// the hook immediately as one frame (nothing is buffered until the end); it
// is safe for use by one goroutine at a time. A Write fails once the hook is
// gone.
//
// ctx is canceled when the hook client disconnects, for instance because
// the pusher pressed Ctrl-C, or when the server shuts down. The
// implementation must then stop streaming and return, but must NOT cancel
// the builds it started: builds belong to the server, not to the pusher's
// terminal. The returned exitCode becomes the hook's exit status (0..255).
type Receiver interface {
	Receive(ctx context.Context, p Push, updates []RefUpdate, out io.Writer) (exitCode int)
}

// ServerConfig configures a Server.
type ServerConfig struct {
	// SocketPath is the unix socket to listen on. Required; it must be
	// shorter than 108 bytes (the kernel limit). A stale socket file left
	// by a dead server is replaced. The socket is made mode 0600: the hook
	// runs as the same user as the server.
	SocketPath string
	// Logger receives the server's logs. Nil means slog.Default().
	Logger *slog.Logger
}

// Server is the server side of the hook protocol: it hands pushes announced
// by gitd (Register) to a Receiver when their post-receive hook calls in.
type Server struct {
	cfg  ServerConfig
	recv Receiver
	log  *slog.Logger

	ln listen.Slot // from Listen to Shutdown; closed under mu (see track)

	mu       sync.Mutex
	pushes   map[string]*registration // by token
	conns    map[net.Conn]struct{}
	handlers sync.WaitGroup
}

// NewServer returns a Server that hands pushes to r. It does not listen yet.
func NewServer(cfg ServerConfig, r Receiver) (*Server, error) {
	if cfg.SocketPath == "" {
		return nil, errors.New("new hook server: SocketPath is required")
	}
	if len(cfg.SocketPath) >= 108 {
		return nil, fmt.Errorf("new hook server: socket path %q is %d bytes, the limit is 107", cfg.SocketPath, len(cfg.SocketPath))
	}
	if r == nil {
		return nil, errors.New("new hook server: Receiver is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Server{
		cfg:    cfg,
		recv:   r,
		log:    log.With("component", "hooks"),
		pushes: make(map[string]*registration),
		conns:  make(map[net.Conn]struct{}),
	}, nil
}

// Register announces a push before git-receive-pack starts. The returned
// token goes into the hook's environment (EnvPushToken); the hook presents
// it and the server, not the hook, decides from it which project and user
// the push belongs to. A token is good for one hook run. release forgets the
// token and returns the exit code of the hook run it allowed (0 when no hook
// ran); call it when receive-pack has exited, so that a failed build can make
// the push itself fail. It is safe to call release more than once.
func (s *Server) Register(p Push) (token string, release func() (hookExit int)) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	token = hex.EncodeToString(b)
	reg := &registration{push: p}
	s.mu.Lock()
	s.pushes[token] = reg
	s.mu.Unlock()
	return token, func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.pushes, token)
		return reg.exit
	}
}

// registration is one announced push and, once its hook ran, the exit code.
type registration struct {
	push Push
	used bool
	exit int // guarded by Server.mu
}

// take consumes a token, so that a token that leaked (through the process
// list of a hook, say) cannot start a second round of builds.
func (s *Server) take(token string) (*registration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.pushes[token]
	if !ok || r.used {
		return nil, false
	}
	r.used = true
	return r, true
}

// Listen binds the socket. It lets callers make sure the socket exists
// before gitd accepts pushes; ListenAndServe calls it if needed, and a
// second call does nothing.
func (s *Server) Listen() error {
	opened, err := s.ln.Open(func() (net.Listener, error) { return listen.Unix(s.cfg.SocketPath) })
	switch {
	case errors.Is(err, listen.ErrClosed):
		return ErrServerClosed
	case err != nil:
		return fmt.Errorf("listen on hook socket: %w", err)
	case opened:
		s.log.Info("hook server listening", "socket", s.cfg.SocketPath)
	}
	return nil
}

// Serve accepts hook connections until Shutdown; it then returns
// ErrServerClosed. Listen must have been called.
func (s *Server) Serve() error {
	ln, _ := s.ln.Get()
	if ln == nil {
		return errors.New("serve hooks: Listen was not called")
	}
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if _, down := s.ln.Get(); down {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("accept hook connection: %w", err)
			}
			// Out of file descriptors and the like: wait and retry rather
			// than take the whole server down.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Error("accept hook connection", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if !s.track(conn) {
			conn.Close()
			return ErrServerClosed
		}
		go s.serveConn(conn)
	}
}

// ListenAndServe binds the socket if needed and serves until Shutdown, when
// it returns ErrServerClosed.
func (s *Server) ListenAndServe() error {
	if err := s.Listen(); err != nil {
		return err
	}
	return s.Serve()
}

// Shutdown stops accepting hooks and waits for the running ones to finish.
// If ctx ends first, it closes their connections, which cancels their
// Receivers' contexts (builds go on), and returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	err := s.ln.Close()
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
		return err
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}

// track counts c among the running handlers, unless the server shut down.
// Shutdown closes the slot under mu, so a handler is either counted before
// Shutdown waits for them or not started at all.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, down := s.ln.Get(); down {
		return false
	}
	s.conns[c] = struct{}{}
	s.handlers.Add(1)
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.handlers.Done()
}

func (s *Server) serveConn(conn net.Conn) {
	defer s.untrack(conn)
	defer conn.Close()

	_ = conn.SetReadDeadline(time.Now().Add(requestTimeout))
	lr := &io.LimitedReader{R: conn, N: maxRequest}
	br := bufio.NewReader(lr)
	line, err := br.ReadBytes('\n')
	if err != nil {
		s.log.Warn("read hook request", "err", err)
		refuse(conn, "error: minivercel hook: the request was cut short or too large; your push was stored but not built")
		return
	}
	var req request
	if err := json.Unmarshal(line, &req); err != nil {
		s.log.Warn("decode hook request", "err", err)
		refuse(conn, "error: minivercel hook: malformed request; your push was stored but not built")
		return
	}
	reg, ok := s.take(req.Token)
	if !ok {
		// A denial, not a failure: log at debug.
		s.log.Debug("hook refused", "reason", "unknown token")
		refuse(conn, "error: this push is not known to the minivercel server (unknown or expired hook token); it was stored but not built")
		return
	}
	push := reg.push
	log := s.log.With("project", push.Project, "user_id", push.UserID)
	updates := make([]RefUpdate, 0, len(req.Updates))
	for _, w := range req.Updates {
		u := RefUpdate{Old: w.Old, New: w.New, Name: w.Ref}
		if err := u.validate(); err != nil {
			log.Warn("hook sent a bad ref update", "err", err)
			refuse(conn, "error: minivercel hook: "+err.Error())
			return
		}
		updates = append(updates, u)
	}
	_ = conn.SetReadDeadline(time.Time{})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The client sends nothing after its request, so any end of reading
	// (EOF, reset, our own Close) means the hook is gone.
	lr.N = 1<<63 - 1
	go func() {
		_, _ = io.Copy(io.Discard, br)
		cancel()
	}()

	out := &frameWriter{conn: conn, cancel: cancel}
	code := s.recv.Receive(ctx, push, updates, out)
	if code < 0 || code > 255 {
		code = 1
	}
	s.mu.Lock()
	reg.exit = code
	s.mu.Unlock()
	if err := out.writeFrame(frame{Exit: &code}); err != nil {
		log.Debug("hook gone before the end of the push", "err", err)
	}
	log.Debug("hook finished", "exit", code, "updates", len(updates))
}

// refuse sends an error line and exit status 1.
func refuse(conn net.Conn, msg string) {
	w := &frameWriter{conn: conn, cancel: func() {}}
	code := 1
	if w.writeFrame(frame{Out: msg + "\n"}) == nil {
		_ = w.writeFrame(frame{Exit: &code})
	}
}

// frameWriter is the io.Writer handed to a Receiver: one frame per Write,
// written through at once.
type frameWriter struct {
	mu     sync.Mutex
	conn   net.Conn
	cancel context.CancelFunc
	err    error
}

func (w *frameWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := w.writeFrame(frame{Out: string(p)}); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *frameWriter) writeFrame(f frame) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("encode hook frame: %w", err)
	}
	b = append(b, '\n')
	_ = w.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := w.conn.Write(b); err != nil {
		w.err = fmt.Errorf("write to hook: %w", err)
		w.cancel()
		return w.err
	}
	return nil
}
