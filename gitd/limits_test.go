package gitd

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// dialRaw opens a TCP connection to the SSH port and reports whether the
// server greeted it with its version line: a refused connection is closed
// without one.
func dialRaw(t *testing.T, port int) (net.Conn, bool) {
	t.Helper()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	c.SetReadDeadline(time.Time{})
	return c, err == nil && strings.HasPrefix(line, "SSH-2.0-")
}

// closedByServer waits until the server closes c (a read ends in EOF or a
// reset) and fails the test if that does not happen within a minute.
func closedByServer(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(time.Minute))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("%s: the server kept the connection open", what)
	}
}

// TestSilentConnectionsAreClosed: connections that never complete a
// handshake are closed after the handshake timeout, also one that keeps
// the idle timer busy by sending a byte now and then (20,000 of them used
// to keep the server's file descriptors forever).
func TestSilentConnectionsAreClosed(t *testing.T) {
	t.Parallel()
	e := newTestEnvWith(t, refuses(t, "without a handshake"), func(c *Config) {
		c.HandshakeTimeout = 300 * time.Millisecond
	})
	silent, ok := dialRaw(t, e.port)
	if !ok {
		t.Fatal("no SSH greeting")
	}
	drip, ok := dialRaw(t, e.port)
	if !ok {
		t.Fatal("no SSH greeting")
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for _, b := range []byte("SSH-2.0-drip") {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := drip.Write([]byte{b}); err != nil {
				return
			}
		}
	}()
	closedByServer(t, silent, "a silent connection")
	closedByServer(t, drip, "a connection dripping bytes")
}

// TestConnectionsPerAddressAreLimited: past MaxConnsPerIP connections from
// one address, more are closed at once, and a closed one frees its slot.
func TestConnectionsPerAddressAreLimited(t *testing.T) {
	t.Parallel()
	e := newTestEnvWith(t, refuses(t, "without a handshake"), func(c *Config) {
		c.MaxConnsPerIP = 3
	})
	var open []net.Conn
	for i := 0; i < 3; i++ {
		c, ok := dialRaw(t, e.port)
		if !ok {
			t.Fatalf("connection %d within the limit was refused", i+1)
		}
		open = append(open, c)
	}
	if _, ok := dialRaw(t, e.port); ok {
		t.Fatal("a 4th connection from one address was served with a limit of 3")
	}
	open[0].Close()
	deadline := time.Now().Add(time.Minute)
	for {
		if _, ok := dialRaw(t, e.port); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a closed connection never gave its slot back")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A real client from the same address still gets through once slots
	// are free: the limit counts connections, not attempts.
	for _, c := range open[1:] {
		c.Close()
	}
	waitPush(t, e)
}

// waitPush retries a clone until the server has freed slots for it.
func waitPush(t *testing.T, e *testEnv) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		out, code := e.ssh(e.userKey, "git-upload-pack", "'/nothing.git'")
		if code != 255 {
			if !strings.Contains(out, "nothing") {
				t.Fatalf("a client within the limit got %d %q", code, out)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a client within the limit cannot connect: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAuthenticatedIdleConnectionIsClosed: a client that authenticates and
// then does nothing (no session, so nobody asks it for a sign of life) is
// closed after the idle timeout.
func TestAuthenticatedIdleConnectionIsClosed(t *testing.T) {
	t.Parallel()
	e := newTestEnvWith(t, refuses(t, "without a session"), func(c *Config) {
		c.IdleTimeout = 300 * time.Millisecond
	})
	pem, err := os.ReadFile(e.userKey)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := gossh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	client, err := gossh.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", e.port), &gossh.ClientConfig{
		User: "git", Auth: []gossh.AuthMethod{gossh.PublicKeys(signer)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatalf("ssh dial: %v", err)
	}
	defer client.Close()
	closed := make(chan error, 1)
	go func() { closed <- client.Wait() }()
	select {
	case <-closed:
	case <-time.After(time.Minute):
		t.Fatal("an idle authenticated connection stayed open")
	}
}
