package gitd

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"
)

// Defaults of the SSH listener's limits (see Config).
const (
	DefaultHandshakeTimeout = 30 * time.Second
	DefaultIdleTimeout      = 2 * time.Minute
	DefaultMaxSessionTime   = 2 * time.Hour
	DefaultMaxConnsPerIP    = 16
	DefaultMaxConns         = 512
)

// connLimiter counts open connections, in all and per client address, and
// refuses those over the limits: a flood of connections from one address,
// or from many, cannot use up the server's file descriptors, which the
// edge and the panel share.
type connLimiter struct {
	max, perIP int

	mu    sync.Mutex
	total int
	byIP  map[string]int
}

func newConnLimiter(max, perIP int) *connLimiter {
	return &connLimiter{max: max, perIP: perIP, byIP: map[string]int{}}
}

// acquire takes a slot for a connection from ip, or reports false.
func (l *connLimiter) acquire(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.max || l.byIP[ip] >= l.perIP {
		return false
	}
	l.total++
	l.byIP[ip]++
	return true
}

func (l *connLimiter) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.byIP[ip]--; l.byIP[ip] <= 0 {
		delete(l.byIP, ip)
	}
}

// limitedConn gives its limiter slot back, and stops its handshake timer,
// when it is closed, once.
type limitedConn struct {
	net.Conn
	once  sync.Once
	close func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.close)
	return err
}

// acceptConn is the ssh.Server's ConnCallback: it applies the connection
// limits, and closes a connection that has not completed its handshake and
// authentication within the handshake timeout. The library's idle timeout
// alone would not: a client sending a byte now and then keeps resetting it.
func (s *Server) acceptConn(ctx ssh.Context, conn net.Conn) net.Conn {
	ip := remoteIP(conn.RemoteAddr())
	if !s.conns.acquire(ip) {
		s.log.Debug("ssh connection refused: too many connections", "remote", conn.RemoteAddr().String())
		return nil
	}
	c := &limitedConn{Conn: conn}
	timer := time.AfterFunc(s.cfg.HandshakeTimeout, func() {
		// The library sets the connection on the context once the
		// handshake, authentication included, has succeeded.
		if ctx.Value(ssh.ContextKeyConn) == nil {
			s.log.Debug("ssh connection closed: no handshake in time", "remote", conn.RemoteAddr().String())
			c.Close()
		}
	})
	c.close = func() {
		timer.Stop()
		s.conns.release(ip)
	}
	return c
}

// remoteIP is the address part of a client's address, the key of the
// per-address limit.
func remoteIP(a net.Addr) string {
	if tcp, ok := a.(*net.TCPAddr); ok {
		return tcp.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// keepAlive asks the client for a sign of life every interval while a
// session runs, as OpenSSH's ClientAliveInterval does, and closes the
// connection when no answer comes within another interval. A push that
// follows a quiet build (a silent npm install) stays open because the
// answers are traffic; a client that vanished without closing its TCP
// connection is found within two intervals. Writing the request alone would
// not tell: it succeeds into the socket's buffer.
func keepAlive(ctx context.Context, conn gossh.Conn, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		answered := make(chan struct{})
		go func() {
			// Any answer counts: OpenSSH refuses the unknown request.
			_, _, _ = conn.SendRequest("keepalive@openssh.com", true, nil)
			close(answered)
		}()
		select {
		case <-answered:
		case <-ctx.Done():
			return
		case <-time.After(interval):
			conn.Close()
			return
		}
	}
}
