package secret

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"pgregory.net/rapid"
)

func TestSealOpenRoundTrip(t *testing.T) {
	t.Parallel()
	k := NewKey()
	r := &Keyring{current: k}
	rapid.Check(t, func(t *rapid.T) {
		project := rapid.Int64Range(1, 1<<40).Draw(t, "project")
		name := rapid.StringMatching(`[A-Za-z_][A-Za-z0-9_]{0,20}`).Draw(t, "name")
		target := rapid.SampledFrom([]string{"all", "production", "preview"}).Draw(t, "target")
		value := rapid.String().Draw(t, "value")
		sealed := r.Seal(project, name, target, value)
		if bytes.Contains(sealed, []byte(value)) && len(value) > 3 {
			t.Fatalf("the ciphertext contains the value")
		}
		got, err := r.Open(project, name, target, sealed)
		if err != nil || got != value {
			t.Fatalf("Open = %q, %v; want %q", got, err, value)
		}
	})
}

// TestMovedCiphertextFails: a ciphertext opened as another variable (other
// project, name or target), with a flipped bit, or under another key fails.
func TestMovedCiphertextFails(t *testing.T) {
	t.Parallel()
	r := &Keyring{current: NewKey()}
	rapid.Check(t, func(t *rapid.T) {
		value := rapid.String().Draw(t, "value")
		sealed := r.Seal(7, "API_KEY", "all", value)
		moves := map[string]func() (string, error){
			"other project": func() (string, error) { return r.Open(8, "API_KEY", "all", sealed) },
			"other name":    func() (string, error) { return r.Open(7, "DB_URL", "all", sealed) },
			"other target":  func() (string, error) { return r.Open(7, "API_KEY", "preview", sealed) },
			"other key":     func() (string, error) { return (&Keyring{current: NewKey()}).Open(7, "API_KEY", "all", sealed) },
			"altered": func() (string, error) {
				c := append([]byte(nil), sealed...)
				i := rapid.IntRange(idSize, len(c)-1).Draw(t, "byte")
				c[i] ^= 1 << rapid.IntRange(0, 7).Draw(t, "bit")
				return r.Open(7, "API_KEY", "all", c)
			},
		}
		for name, open := range moves {
			if got, err := open(); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("%s: Open = %q, %v; want ErrDecrypt", name, got, err)
			}
		}
	})
}

func TestKeyFileAndRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "master.key")
	r, err := LoadKeyring("", file)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", fi.Mode(), err)
	}
	again, err := LoadKeyring("", file)
	if err != nil || again.Current().ID() != r.Current().ID() {
		t.Fatalf("reload gave another key: %v", err)
	}
	old := r.Seal(1, "A", "all", "value one")
	next := NewKey()
	if err := r.PrepareRotation(next); err != nil {
		t.Fatal(err)
	}
	resealed := next.Seal(1, "A", "all", "value one")
	if err := r.FinishRotation(next); err != nil {
		t.Fatal(err)
	}
	// Another process still holding the old key follows the file.
	if got, err := again.Open(1, "A", "all", resealed); err != nil || got != "value one" {
		t.Fatalf("a running keyring after rotation: %q, %v", got, err)
	}
	if _, err := r.Open(1, "A", "all", old); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("the old ciphertext still opens after rotation: %v", err)
	}
	if _, err := LoadKeyring("zz", file); !errors.Is(err, ErrBadKey) {
		t.Fatalf("bad env key: %v", err)
	}
}

func TestRecoverInterruptedRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "master.key")
	r, _ := LoadKeyring("", file)
	next := NewKey()
	r.PrepareRotation(next)
	// The database committed values sealed with next; the process died.
	r2, _ := LoadKeyring("", file)
	if err := r2.Recover(next.ID()); err != nil {
		t.Fatal(err)
	}
	if r2.Current().ID() != next.ID() {
		t.Fatalf("recover did not install the prepared key")
	}
	// A prepared key the database never used is dropped.
	other := NewKey()
	r2.PrepareRotation(other)
	if err := r2.Recover(next.ID()); err != nil || r2.Current().ID() != next.ID() {
		t.Fatalf("recover with an unused prepared key: %v", err)
	}
	if _, err := os.Stat(file + ".next"); !os.IsNotExist(err) {
		t.Fatalf("unused prepared key left behind")
	}
}
