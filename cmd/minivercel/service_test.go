package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"minivercel/internal/testenv"
)

// TestServiceUnit: the systemd unit in dist/ is one systemd accepts, and
// its ExecStart is a serve command line this binary parses.
func TestServiceUnit(t *testing.T) {
	t.Parallel()
	unit, err := os.ReadFile(filepath.Join("..", "..", "dist", "minivercel.service"))
	if err != nil {
		t.Fatal(err)
	}
	var exec0 []string
	for _, line := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			exec0 = strings.Fields(v)
		}
	}
	if len(exec0) < 2 || exec0[0] != "/usr/local/bin/minivercel" || exec0[1] != "serve" {
		t.Fatalf("ExecStart = %q, want /usr/local/bin/minivercel serve ...", exec0)
	}
	// The flags parse: --help after them exits 0 without starting anything.
	var out, errOut bytes.Buffer
	if code := run(append(exec0[1:], "--help"), nil, &out, &errOut); code != 0 {
		t.Fatalf("serve %q --help = %d: %s", exec0[2:], code, errOut.String())
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testenv.Skipf(t, "systemd-analyze not found (apt-get install systemd): the unit is not verified")
	}
	// verify wants the binary to exist: point ExecStart at this test's.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "minivercel.service")
	if err := os.WriteFile(path, bytes.ReplaceAll(unit, []byte("/usr/local/bin/minivercel"), []byte(self)), 0o644); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command(analyze, "verify", path).CombinedOutput(); err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, msg)
	}
}

// TestLogFormat: logfmt by default, JSON with --log-format json, and a
// clear refusal of anything else.
func TestLogFormat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		format string
		check  func(string) bool
	}{
		{"", func(s string) bool { return strings.Contains(s, `msg="hello there" n=1`) }},
		{"json", func(s string) bool {
			var v map[string]any
			return json.Unmarshal([]byte(s), &v) == nil && v["msg"] == "hello there" && v["n"] == float64(1)
		}},
	} {
		var buf bytes.Buffer
		c := common{logLevel: "info", logFormat: tc.format}
		log, err := c.logger(&buf)
		if err != nil {
			t.Fatal(err)
		}
		log.Info("hello there", "n", 1)
		if !tc.check(strings.TrimSpace(buf.String())) {
			t.Errorf("--log-format %q wrote %q", tc.format, buf.String())
		}
	}
	c := common{logLevel: "info", logFormat: "xml"}
	if _, err := c.logger(&bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "want text or json") {
		t.Errorf("--log-format xml: %v", err)
	}
}
