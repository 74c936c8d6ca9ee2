package gitd

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestHostKeyCreatedPrivateAndReused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keys", "host_ed25519")
	first, err := loadOrCreateHostKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("host key mode = %o, want 600", perm)
	}
	if got := first.PublicKey().Type(); got != "ssh-ed25519" {
		t.Fatalf("host key type = %s", got)
	}
	again, err := loadOrCreateHostKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.PublicKey().Marshal(), again.PublicKey().Marshal()) {
		t.Fatal("a second start made a new host key")
	}
}
