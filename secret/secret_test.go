package secret

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func TestSealOpenRoundTrip(t *testing.T) {
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

// TestRedactionIgnoresChunking: for any secret embedded in any output and any
// way the output is split into writes, neither the secret nor its base64 form
// appears in what comes out.
func TestRedactionIgnoresChunking(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		secretValue := rapid.StringMatching(`[ -~]{6,40}`).Draw(t, "secret")
		other := rapid.StringMatching(`[a-z]{0,5}`).Draw(t, "short value") // too short: not redacted
		before := rapid.StringMatching(`[ -~\n]{0,30}`).Draw(t, "before")
		after := rapid.StringMatching(`[ -~\n]{0,30}`).Draw(t, "after")
		prefix := rapid.StringMatching(`[a-zA-Z0-9]{0,5}`).Draw(t, "b64 prefix")
		b64 := base64.StdEncoding.EncodeToString([]byte(prefix + secretValue + "\n"))
		text := before + secretValue + after + "\n" + "encoded: " + b64 + "\n" + secretValue
		var out bytes.Buffer
		w := NewWriter(NewRedactor([]string{secretValue, other}), &out)
		rest := []byte(text)
		for len(rest) > 0 {
			n := rapid.IntRange(1, len(rest)).Draw(t, "chunk")
			w.Write(rest[:n])
			rest = rest[n:]
		}
		w.Flush()
		got := out.String()
		if strings.Contains(got, secretValue) {
			t.Fatalf("secret %q in output %q", secretValue, got)
		}
		if enc := base64.StdEncoding.EncodeToString([]byte(secretValue)); len(enc) > 12 && strings.Contains(got, enc[:len(enc)-4]) {
			t.Fatalf("base64 of the secret in output %q", got)
		}
		if !strings.Contains(got, Mask) {
			t.Fatalf("no mask in %q", got)
		}
	})
}

func TestRedactorString(t *testing.T) {
	r := NewRedactor([]string{"hunter22", "abc"})
	cases := map[string]string{
		"password is hunter22!":  "password is [secret]!",
		"abc stays, too short":   "abc stays, too short",
		"aHVudGVyMjI=":           "[secret]",
		"68756e7465723232 (hex)": "[secret] (hex)",
	}
	for in, want := range cases {
		if got := r.String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
	var nilR *Redactor
	if nilR.String("x") != "x" || NewRedactor([]string{"a"}) != nil {
		t.Errorf("nil redactor must pass text through")
	}
}

// TestWriterHoldsBackOnlyPossibleSecrets: output that cannot be the start of a
// value goes out at once; a possible beginning waits for the next write.
func TestWriterHoldsBackOnlyPossibleSecrets(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(NewRedactor([]string{"hunter22"}), &out)
	w.Write([]byte("ready on port 3000\n"))
	if out.String() != "ready on port 3000\n" {
		t.Fatalf("ordinary output held back: %q", out.String())
	}
	w.Write([]byte("pw: hun"))
	if out.String() != "ready on port 3000\npw: " {
		t.Fatalf("a possible secret was not held back: %q", out.String())
	}
	w.Write([]byte("ter22!\n"))
	if out.String() != "ready on port 3000\npw: [secret]!\n" {
		t.Fatalf("got %q", out.String())
	}
}

// BenchmarkRedactWriter: build output (npm-like lines) through a redactor
// holding 20 variables, the usual size of a project's environment.
func BenchmarkRedactWriter(b *testing.B) {
	var values []string
	for i := 0; i < 20; i++ {
		values = append(values, fmt.Sprintf("value-%02d-%s", i, strings.Repeat("x", 24)))
	}
	r := NewRedactor(values)
	line := []byte("npm http fetch GET 200 https://registry.example/some-package/-/some-package-1.2.3.tgz 35ms (cache miss)\n")
	b.SetBytes(int64(len(line)))
	w := NewWriter(r, io.Discard)
	for i := 0; i < b.N; i++ {
		w.Write(line)
	}
}
