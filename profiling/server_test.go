package profiling

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestPprofLoopbackOnly: the profiles are never offered beyond the machine.
func TestPprofLoopbackOnly(t *testing.T) {
	for _, tc := range []struct {
		name, addr string
		ok         bool
	}{
		{"ipv4 loopback", "127.0.0.1:6060", true},
		{"ipv4 loopback range", "127.0.0.2:6060", true},
		{"ipv6 loopback", "[::1]:6060", true},
		{"localhost", "localhost:6060", true},
		{"unix socket", "unix:/run/minivercel/pprof.sock", true},
		{"every interface", ":6060", false},
		{"every ipv4 interface", "0.0.0.0:6060", false},
		{"every ipv6 interface", "[::]:6060", false},
		{"public address", "192.0.2.7:6060", false},
		{"host name", "example.com:6060", false},
		{"no port", "127.0.0.1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Config{Addr: tc.addr})
			if tc.ok && err != nil {
				t.Errorf("New(%q) = %v, want a server", tc.addr, err)
			}
			if !tc.ok && !errors.Is(err, ErrNotLoopback) {
				t.Errorf("New(%q) = %v, want ErrNotLoopback", tc.addr, err)
			}
		})
	}
	if _, err := New(Config{}); !errors.Is(err, ErrNoAddr) {
		t.Errorf("New without an address = %v, want ErrNoAddr", err)
	}
}

// TestPprofServes: the index lists the profiles, on the server's own
// listener.
func TestPprofServes(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	resp, err := http.Get("http://" + s.Addr().String() + "/debug/pprof/")
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
