package main

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestForwardedClient: the client address an edge forwards with the base
// domain is believed only with a good, recent signature under the
// cluster's key.
func TestForwardedClient(t *testing.T) {
	t.Parallel()
	key, other := []byte("0123456789abcdef0123456789abcdef"), []byte("fedcba9876543210fedcba9876543210")
	now := time.Unix(1_800_000_000, 0)
	signed := func(ip string, at time.Time, k []byte) http.Header {
		h := http.Header{}
		signClient(h, ip, k, at)
		return h
	}
	for _, tc := range []struct {
		name string
		h    http.Header
		ok   bool
	}{
		{"signed now", signed("203.0.113.7", now, key), true},
		{"signed 50 s ago", signed("203.0.113.7", now.Add(-50*time.Second), key), true},
		{"too old", signed("203.0.113.7", now.Add(-2*time.Minute), key), false},
		{"from the future", signed("203.0.113.7", now.Add(2*time.Minute), key), false},
		{"another key", signed("203.0.113.7", now, other), false},
		{"no signature", http.Header{clientHeader: {"203.0.113.7 1800000000"}}, false},
		{"not an address", signed("evil", now, key), false},
		{"nothing", http.Header{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ip, ok := forwardedClient(tc.h, key, now)
			if ok != tc.ok || (ok && ip != "203.0.113.7") {
				t.Errorf("forwardedClient = %q, %v; want ok %v", ip, ok, tc.ok)
			}
		})
	}
	// A changed address under the old signature is refused.
	h := signed("203.0.113.7", now, key)
	h.Set(clientHeader, "198.51.100.1 1800000000")
	if _, ok := forwardedClient(h, key, now); ok {
		t.Error("a changed address was believed")
	}
}

// TestRolesNeedASharedDatabase: a node with some roles only is part of a
// cluster and needs the cluster's database; unknown roles are refused by
// name; both before anything starts.
func TestRolesNeedASharedDatabase(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--roles", "worker", "--data-dir", t.TempDir()}, "--roles worker needs --database-url"},
		{[]string{"serve", "--roles", "edge,cook", "--data-dir", t.TempDir()}, "--roles:"},
		{[]string{"serve", "--max-push", "0", "--data-dir", t.TempDir()}, "--build-disk and --max-push must be more than 0"},
	} {
		var out, errOut bytes.Buffer
		if code := run(tc.args, nil, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%q = %d %q, want 2 and %q", tc.args, code, errOut.String(), tc.want)
		}
	}
}
