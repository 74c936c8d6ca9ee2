package profiling

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPprofUnixSocketOnly: the profiles are never on a TCP port, not even
// a loopback one, which builds and apps sharing the host's network reach.
func TestPprofUnixSocketOnly(t *testing.T) {
	for _, tc := range []struct {
		name, addr string
		ok         bool
	}{
		{"unix socket", "unix:/run/minivercel/pprof.sock", true},
		{"ipv4 loopback", "127.0.0.1:6060", false},
		{"ipv6 loopback", "[::1]:6060", false},
		{"localhost", "localhost:6060", false},
		{"every interface", ":6060", false},
		{"public address", "192.0.2.7:6060", false},
		{"relative socket path", "unix:pprof.sock", false},
		{"empty socket path", "unix:", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Config{Addr: tc.addr})
			if tc.ok && err != nil {
				t.Errorf("New(%q) = %v, want a server", tc.addr, err)
			}
			if !tc.ok && !errors.Is(err, ErrNotUnix) {
				t.Errorf("New(%q) = %v, want ErrNotUnix", tc.addr, err)
			}
		})
	}
	if _, err := New(Config{}); !errors.Is(err, ErrNoAddr) {
		t.Errorf("New without an address = %v, want ErrNoAddr", err)
	}
}

// TestPprofSocketDirMustBePrivate: a socket in a directory others may enter
// is refused, and the socket itself is 0600.
func TestPprofSocketDirMustBePrivate(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Addr: "unix:" + filepath.Join(dir, "pprof.sock")})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); !errors.Is(err, ErrDirNotPrivate) {
		t.Fatalf("Listen in a 0755 directory = %v, want ErrDirNotPrivate", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	fi, err := os.Stat(filepath.Join(dir, "pprof.sock"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket: %v %v, want mode 0600", fi, err)
	}
}

// TestPprofSecondsCapped: a CPU profile or trace cannot keep the profiler
// busy past MaxSeconds, and the server's WriteTimeout leaves room for it.
func TestPprofSecondsCapped(t *testing.T) {
	var got string
	h := capSeconds(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.FormValue("seconds")
	}))
	for q, want := range map[string]string{"3600": "60", "61": "60", "5": "5", "60": "60", "": ""} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/debug/pprof/profile?seconds="+q, nil))
		if got != want {
			t.Errorf("seconds=%s: handler saw %q, want %q", q, got, want)
		}
	}
	s, err := New(Config{Addr: "unix:/x/pprof.sock"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Srv.WriteTimeout <= MaxSeconds*time.Second {
		t.Errorf("WriteTimeout %v, want more than %d s", s.Srv.WriteTimeout, MaxSeconds)
	}
}

// TestPprofServes: the index lists the profiles, on the server's own
// listener.
func TestPprofServes(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "pprof.sock")
	s, err := New(Config{Addr: "unix:" + sock})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return new(net.Dialer).DialContext(ctx, "unix", sock)
		},
	}}
	resp, err := client.Get("http://pprof/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "goroutine") {
		t.Errorf("GET /debug/pprof/ = %d %.200s", resp.StatusCode, body)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve = %v, want http.ErrServerClosed", err)
	}
}
