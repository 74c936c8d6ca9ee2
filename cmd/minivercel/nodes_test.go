package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"minivercel/schema"
	"minivercel/schema/schematest"
)

// TestAdminNodes: `admin nodes` lists every node with its state and how long
// ago it was seen, by the database's clock: a node quiet for a minute is
// stale, one that said it stopped is stopped.
func TestAdminNodes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := schematest.DSN(t)
	pool, err := schema.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store := schema.NewStore(pool)
	admin := func(extra ...string) (string, string, int) {
		var stdout, stderr bytes.Buffer
		args := append([]string{"admin", "nodes", "--database-url", dsn, "--data-dir", t.TempDir(), "--log-level", "error"}, extra...)
		code := run(args, strings.NewReader(""), &stdout, &stderr)
		return stdout.String(), stderr.String(), code
	}

	if out, errOut, code := admin(); code != 0 || !strings.Contains(out, "no nodes") {
		t.Fatalf("no nodes: exit %d, %q %q", code, out, errOut)
	}

	schematest.Nodes(t, store)

	out, errOut, code := admin()
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("want a header and three nodes:\n%s", out)
	}
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != "NODE ROLES ADDRESS VERSION STATE LAST SEEN STARTED" {
		t.Fatalf("header %q", lines[0])
	}
	// Rows by id; LAST SEEN is two fields, STARTED a local date and time.
	for i, want := range [][]string{
		{"build-1", "worker", "-", "v1.4.0", "stale", "1m", "ago"},
		{"old-1", "edge", "10.0.0.9", "v1.3.0", "stopped"},
		{"web-1", "gitd,edge,panel", "10.0.0.1", "v1.4.0", "live"},
	} {
		fields := strings.Fields(lines[i+1])
		if len(fields) != 9 || strings.Join(fields[:len(want)], " ") != strings.Join(want, " ") {
			t.Errorf("row %d = %q, want it to start with %q", i+1, lines[i+1], want)
		}
	}

	if _, errOut, code := admin("extra"); code != 2 || !strings.Contains(errOut, "admin nodes") {
		t.Errorf("admin nodes with an argument: exit %d, %q", code, errOut)
	}
}
