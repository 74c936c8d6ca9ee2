package listen

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUnix(t *testing.T) {
	dir, err := os.MkdirTemp("", "mvlisten") // short: socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "s.sock")

	ln, err := Open("unix:" + path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	// A live server's socket is never taken over.
	if _, err := Unix(path); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second listener on a live socket: %v", err)
	}
	// One left by a dead server is.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ln, err = Unix(path)
	if err != nil {
		t.Fatalf("listening over a stale socket: %v", err)
	}
	ln.Close()
	// A file that is no socket is never removed.
	file := filepath.Join(dir, "data")
	os.WriteFile(file, []byte("keep"), 0o600)
	if _, err := Unix(file); err == nil {
		t.Fatal("listened over a regular file")
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Fatal("the regular file was touched")
	}
}

func TestSlot(t *testing.T) {
	var s Slot
	if s.Addr() != nil {
		t.Fatal("empty slot has an address")
	}
	ln, err := Open("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ln); err != nil {
		t.Fatal(err)
	}
	if got, closed := s.Get(); got != ln || closed || s.Addr().String() != ln.Addr().String() {
		t.Fatalf("Get = %v, %v", got, closed)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("the listener is still open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	late, _ := Open("127.0.0.1:0")
	if err := s.Set(late); !errors.Is(err, ErrClosed) {
		t.Fatalf("Set after Close = %v", err)
	}
	if _, err := late.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatal("Set after Close left the listener open")
	}
}

func TestSlotOpen(t *testing.T) {
	var s Slot
	calls := 0
	open := func() (net.Listener, error) { calls++; return Open("127.0.0.1:0") }
	if opened, err := s.Open(open); !opened || err != nil {
		t.Fatalf("first Open = %v, %v", opened, err)
	}
	if opened, err := s.Open(open); opened || err != nil || calls != 1 {
		t.Fatalf("second Open = %v, %v after %d opens; want a no-op", opened, err, calls)
	}
	s.Close()
	if _, err := s.Open(open); !errors.Is(err, ErrClosed) || calls != 1 {
		t.Fatalf("Open after Close = %v after %d opens", err, calls)
	}
	var failing Slot
	if _, err := failing.Open(func() (net.Listener, error) { return nil, errors.New("no port") }); err == nil {
		t.Fatal("a failed open reported success")
	}
	if ln, _ := failing.Get(); ln != nil {
		t.Fatal("a failed open left a listener")
	}
}
