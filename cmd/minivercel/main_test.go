package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

func TestParseFlagsAnyOrderAndEnv(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		env      map[string]string
		wantDir  string
		wantURL  string
		wantArgs []string
	}{
		{"flags first", []string{"--data-dir", "/d", "key"}, nil, "/d", "", []string{"key"}},
		{"flags after", []string{"key", "--data-dir", "/d", "-"}, nil, "/d", "", []string{"key", "-"}},
		{"double dash keeps the rest", []string{"--data-dir", "/d", "--", "--not-a-flag"}, nil, "/d", "", []string{"--not-a-flag"}},
		{"env fills unset flags", []string{"x"}, map[string]string{"MINIVERCEL_DATA_DIR": "/e", "MINIVERCEL_DATABASE_URL": "postgres://a"}, "/e", "postgres://a", []string{"x"}},
		{"flag beats env", []string{"--data-dir", "/f"}, map[string]string{"MINIVERCEL_DATA_DIR": "/e"}, "/f", "", nil},
		{"DATABASE_URL is the last resort", nil, map[string]string{"DATABASE_URL": "postgres://b"}, "./data", "postgres://b", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var c common
			c.register(fs)
			getenv := func(k string) string { return tc.env[k] }
			if err := parseFlags(fs, tc.args, getenv); err != nil {
				t.Fatal(err)
			}
			if c.dataDir != tc.wantDir || c.databaseURL != tc.wantURL || strings.Join(fs.Args(), " ") != strings.Join(tc.wantArgs, " ") {
				t.Fatalf("dir %q url %q args %q", c.dataDir, c.databaseURL, fs.Args())
			}
		})
	}
}

func TestParseFlagsBadEnvValue(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Int("build-concurrency", 1, "")
	err := parseFlags(fs, nil, func(k string) string {
		if k == "MINIVERCEL_BUILD_CONCURRENCY" {
			return "many"
		}
		return ""
	})
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "MINIVERCEL_BUILD_CONCURRENCY") {
		t.Fatalf("err = %v, want a usage error naming the variable", err)
	}
}

// TestServePprofAddrUnixOnly: --pprof-addr naming a TCP address, loopback
// or not, is a usage error (exit 2) before anything starts: builds and apps
// share the host's network and would read the profiles and the command line.
func TestServePprofAddrUnixOnly(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:6060", "localhost:6060", "[::1]:6060", ":6060", "unix:relative.sock"} {
		var stderr strings.Builder
		err := serve(context.Background(), func() {}, []string{"--data-dir", t.TempDir(), "--pprof-addr", addr}, io.Discard, &stderr)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "unix:") {
			t.Errorf("serve --pprof-addr %s = %v, want a usage error asking for unix:/path", addr, err)
		}
	}
}
