// Package listen opens the server's listeners the same way in every part
// (the edge, the panel, the hook server, git over SSH) and keeps each between
// its Listen and its Serve, which may run on different goroutines.
package listen

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrClosed is Set's answer once the slot was closed: the server shut down
// before it listened.
var ErrClosed = errors.New("listener closed")

// Open listens on addr: "unix:/path" for a unix socket (see Unix), anything
// else as a TCP "host:port".
func Open(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		return Unix(path)
	}
	return net.Listen("tcp", addr)
}

// Unix listens on a unix socket at path, mode 0600, so that only the server's
// own user can connect: the socket is how the edge reaches the panel and a
// git hook reaches the server, and nobody else may. The mode is set after the
// socket exists, so path's directory must be private (0700) too. A socket file that nobody
// listens on (left by a server that died) is removed first; one that a live
// server still uses is refused, so a second server never steals it, and a
// path that is not a socket is never removed.
func Unix(path string) (net.Listener, error) {
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("restrict socket %s: %w", path, err)
	}
	return ln, nil
}

func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check socket %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("check socket: %s exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("check socket: %s is in use by another server", path)
	}
	// Only a refused connection proves nobody listens: a live server whose
	// backlog is full times out instead, and its socket is not ours to take.
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("check socket: %s does not answer (%v); is another server starting?", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	return nil
}

// Slot holds a server's listener from Listen to Shutdown. Its methods are
// safe for concurrent use; the zero Slot is empty and open.
type Slot struct {
	mu     sync.Mutex
	ln     net.Listener
	closed bool
}

// Set stores the listener Listen opened. After Close it closes ln and
// returns ErrClosed.
func (s *Slot) Set(ln net.Listener) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		ln.Close()
		return ErrClosed
	}
	s.ln = ln
	return nil
}

// Open opens a listener with open and keeps it, once: a second call with
// a listener kept does nothing and returns nil (opened false). After Close
// it returns ErrClosed without opening anything. Calls may overlap; open
// runs in one of them at a time.
func (s *Slot) Open(open func() (net.Listener, error)) (opened bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return false, ErrClosed
	case s.ln != nil:
		return false, nil
	}
	ln, err := open()
	if err != nil {
		return false, err
	}
	s.ln = ln
	return true, nil
}

// Get returns the listener, nil before Set; closed reports a Close.
func (s *Slot) Get() (ln net.Listener, closed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ln, s.closed
}

// Addr returns the listener's address, or nil before Set.
func (s *Slot) Addr() net.Addr {
	if ln, _ := s.Get(); ln != nil {
		return ln.Addr()
	}
	return nil
}

// Close marks the slot closed and closes its listener, if any. Closing twice
// is harmless.
func (s *Slot) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.ln == nil {
		return nil
	}
	if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}
