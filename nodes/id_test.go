package nodes_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"minivercel/nodes"
)

func TestID(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	id, err := nodes.ID(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := nodes.ValidateID(id); err != nil || len(id) > 47 {
		t.Fatalf("new id %q: %v", id, err)
	}
	path := filepath.Join(dir, nodes.IDFile)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("id file: %v, mode %v; want 0600", err, fi.Mode())
	}
	for range 3 {
		if again, err := nodes.ID(dir); err != nil || again != id {
			t.Fatalf("ID again = %q, %v; want %q", again, err, id)
		}
	}
	if other, _ := nodes.ID(t.TempDir()); other == id {
		t.Fatalf("two data directories got the same id %q", id)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("data dir holds %v, want the id file only", entries)
	}

	// An operator may name a node by hand.
	if err := os.WriteFile(path, []byte("web-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := nodes.ID(dir); err != nil || got != "web-1" {
		t.Fatalf("hand-written id = %q, %v", got, err)
	}

	for name, content := range map[string]string{
		"empty":       "",
		"upper case":  "Web-1",
		"two lines":   "web-1\nweb-2",
		"binary":      "\x00\x01",
		"too long":    strings.Repeat("a", 64),
		"dash at end": "web-",
	} {
		t.Run("corrupt/"+name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, nodes.IDFile)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			id, err := nodes.ID(dir)
			if !errors.Is(err, nodes.ErrInvalidID) || !strings.Contains(err.Error(), path) {
				t.Fatalf("ID with %q in the file = %q, %v; want ErrInvalidID naming %s", content, id, err, path)
			}
			if b, _ := os.ReadFile(path); string(b) != content {
				t.Fatal("the corrupt file was overwritten")
			}
		})
	}
}
