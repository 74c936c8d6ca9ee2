package secret

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// writeChunked sends text through a Writer in writes of random sizes (which
// split values, lines and UTF-8 sequences anywhere) and returns what came out.
func writeChunked(t *rapid.T, r *Redactor, text string) string {
	var out bytes.Buffer
	w := NewWriter(r, &out)
	rest := []byte(text)
	for len(rest) > 0 {
		n := rapid.IntRange(1, len(rest)).Draw(t, "chunk")
		w.Write(rest[:n])
		rest = rest[n:]
	}
	w.Flush()
	return out.String()
}

// maskModel is the redaction written the slow way: every byte inside an
// occurrence of a pattern is covered, and each run of overlapping
// occurrences becomes one Mask.
func maskModel(r *Redactor, text string) string {
	var patterns [][]byte
	if r != nil {
		patterns = r.patterns
	}
	var b strings.Builder
	pos, from, to := 0, -1, -1 // text[from:to] is the run being covered
	for i := 0; i <= len(text); i++ {
		if from >= 0 && i >= to { // the run ends: no occurrence starts inside it any more
			b.WriteString(text[pos:from] + Mask)
			pos, from = to, -1
		}
		for _, p := range patterns {
			if strings.HasPrefix(text[i:], string(p)) {
				if from < 0 {
					from, to = i, i
				}
				to = max(to, i+len(p))
			}
		}
	}
	return b.String() + text[pos:]
}

// TestRedactionMasksOverlappingValues: the scanner masks exactly what the
// model does, however the text is split into writes. Values and text come
// from a tiny alphabet, so values overlap each other, repeat, nest and sit
// side by side in almost every case.
func TestRedactionMasksOverlappingValues(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		values := rapid.SliceOfN(rapid.StringMatching(`[ab]{6,12}|[abc]{1,5}`), 1, 4).Draw(t, "values")
		// Whole values, their beginnings and ends, and a little else.
		piece := rapid.Custom(func(t *rapid.T) string {
			v := rapid.SampledFrom(values).Draw(t, "value")
			i := rapid.IntRange(0, len(v)).Draw(t, "cut")
			switch rapid.IntRange(0, 3).Draw(t, "piece") {
			case 0:
				return v[:i]
			case 1:
				return v[i:]
			case 2:
				return rapid.StringMatching(`[abc\n]{0,3}`).Draw(t, "other")
			}
			return v
		})
		text := strings.Join(rapid.SliceOfN(piece, 0, 30).Draw(t, "pieces"), "")
		r := NewRedactor(values)
		want := maskModel(r, text)
		if got := writeChunked(t, r, text); got != want {
			t.Fatalf("Writer redacted %q to\n%q, want\n%q", text, got, want)
		}
		if got := r.String(text); got != want {
			t.Fatalf("String redacted %q to\n%q, want\n%q", text, got, want)
		}
	})
}

// values draws the variable values of a project: printable ASCII and any
// unicode, some too short to redact, some sharing their beginning or end
// with another value.
func values() *rapid.Generator[[]string] {
	return rapid.Custom(func(t *rapid.T) []string {
		var vs []string
		for i := range rapid.IntRange(1, 4).Draw(t, "count") {
			kinds := []string{"ascii", "unicode", "short"}
			if i > 0 {
				kinds = append(kinds, "overlapping")
			}
			var v string
			switch rapid.SampledFrom(kinds).Draw(t, "kind") {
			case "ascii":
				v = rapid.StringMatching(`[ -~]{6,80}`).Draw(t, "ascii")
			case "unicode":
				v = rapid.StringOfN(rapid.Rune(), 2, 40, -1).
					Filter(func(s string) bool { return len(s) >= MinRedactLen }).Draw(t, "unicode")
			case "short": // never redacted: it would mask ordinary words
				v = rapid.StringOfN(rapid.Rune(), 0, 5, MinRedactLen-1).Draw(t, "short")
			case "overlapping": // begins with the end of an earlier value, or ends with its beginning
				prev := rapid.SampledFrom(vs).Filter(func(s string) bool { return s != "" }).Draw(t, "of")
				k := rapid.IntRange(1, len(prev)).Draw(t, "shared bytes")
				extra := rapid.StringMatching(`[ -~]{1,20}`).Draw(t, "extra")
				if rapid.Bool().Draw(t, "shares its beginning") {
					v = prev[len(prev)-k:] + extra
				} else {
					v = extra + prev[:k]
				}
			}
			vs = append(vs, v)
		}
		return vs
	})
}

var encodings = []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding}

// textWith draws build output holding the values as they leak in practice:
// as they are, side by side, in hex of either case and in base64 of any
// alphabet, with or without padding, at any alignment inside a longer text.
func textWith(vs []string) *rapid.Generator[string] {
	return rapid.Custom(func(t *rapid.T) string {
		var b strings.Builder
		for range rapid.IntRange(1, 8).Draw(t, "pieces") {
			v := rapid.SampledFrom(vs).Draw(t, "value")
			around := func(label string) []byte { return rapid.SliceOfN(rapid.Byte(), 0, 5).Draw(t, label) }
			embedded := append(append(around("before"), v...), around("after")...)
			switch rapid.IntRange(0, 4).Draw(t, "form") {
			case 0:
				b.WriteString(rapid.StringOfN(rapid.Rune(), 0, 30, -1).Draw(t, "filler"))
			case 1:
				b.WriteString(v)
			case 2:
				b.WriteString(hex.EncodeToString(embedded))
			case 3:
				b.WriteString(strings.ToUpper(hex.EncodeToString(embedded)))
			case 4:
				b.WriteString(rapid.SampledFrom(encodings).Draw(t, "encoding").EncodeToString(embedded))
			}
			if rapid.Bool().Draw(t, "newline") {
				b.WriteByte('\n')
			}
		}
		return b.String()
	})
}

// leak returns a form of v that can still be read in out, or "": v itself,
// its hex in either case, or base64 (either alphabet, any alignment) that
// decodes to bytes holding v. A mask ends what can be read together.
func leak(out, v string) string {
	if len(v) < MinRedactLen {
		return ""
	}
	hexV := hex.EncodeToString([]byte(v))
	for _, seg := range strings.Split(out, Mask) {
		for _, form := range []string{v, hexV, strings.ToUpper(hexV)} {
			if strings.Contains(seg, form) {
				return form
			}
		}
		runs := strings.FieldsFunc(seg, func(c rune) bool {
			return !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune("+/-_", c))
		})
		for _, run := range runs {
			run = strings.NewReplacer("-", "+", "_", "/").Replace(run)
			for off := 0; off < 4 && off < len(run); off++ {
				s := run[off:]
				if len(s)%4 == 1 {
					s = s[:len(s)-1]
				}
				if dec, _ := base64.RawStdEncoding.DecodeString(s); strings.Contains(string(dec), v) {
					return "base64 " + run
				}
			}
		}
	}
	return ""
}

// TestRedactionIgnoresChunking: however the output is split into writes, no
// value of at least MinRedactLen bytes can be read in what comes out, in
// any of the forms textWith writes.
func TestRedactionIgnoresChunking(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		vs := values().Draw(t, "values")
		text := textWith(vs).Draw(t, "text")
		r := NewRedactor(vs)
		got := writeChunked(t, r, text)
		for _, v := range vs {
			if form := leak(got, v); form != "" {
				t.Fatalf("value %q can be read in the output as %q:\n%q", v, form, got)
			}
		}
		if s := r.String(text); s != got {
			t.Fatalf("String and Writer differ:\n%q\n%q", s, got)
		}
	})
}

func TestRedactorString(t *testing.T) {
	t.Parallel()
	r := NewRedactor([]string{"hunter22", "abc", "sk_live_1234", "1234abcd"})
	cases := map[string]string{
		"password is hunter22!":           "password is [secret]!",
		"abc stays, too short":            "abc stays, too short",
		"aHVudGVyMjI=":                    "[secret]",
		"68756e7465723232 (hex)":          "[secret] (hex)",
		"68756E7465723232 (upper hex)":    "[secret] (upper hex)",
		"xaHVudGVyMjI (inside base64)":    "x[secret]I (inside base64)", // I: 2 bits of the value
		"key=sk_live_1234abcd!":           "key=[secret]!",              // overlapping values: one mask
		"hunter22hunter22":                "[secret][secret]",
		"eGh1bnRlcjIyeA (x+value+x, b64)": "eG[secret]eA (x+value+x, b64)",
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
	t.Parallel()
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
