package proc

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"pgregory.net/rapid"
)

// collect feeds chunks to a LineWriter with limit and returns the lines.
func collect(limit int, chunks ...string) []string {
	var got []string
	w := NewLineWriter(limit, func(s string) { got = append(got, s) })
	for _, c := range chunks {
		w.Write([]byte(c))
	}
	w.Flush()
	return got
}

func TestLineWriter(t *testing.T) {
	tests := []struct {
		name   string
		limit  int
		chunks []string
		want   []string
	}{
		{"lines", 80, []string{"one\ntwo\n"}, []string{"one", "two"}},
		{"no final newline", 80, []string{"one\ntwo"}, []string{"one", "two"}},
		{"crlf is one end", 80, []string{"one\r\ntwo\r\n"}, []string{"one", "two"}},
		{"crlf split across writes", 80, []string{"one\r", "\ntwo\r", "\n"}, []string{"one", "two"}},
		{"empty lines kept", 80, []string{"a\n\n\nb\n"}, []string{"a", "", "", "b"}},
		{"progress bar", 80, []string{"10%\r50%\r100%\n"}, []string{"10%", "50%", "100%"}},
		{"bare cr between lines", 80, []string{"a\rb"}, []string{"a", "b"}},
		{"empty redraws dropped", 80, []string{"\r\r50%\r\r\n"}, []string{"50%"}},
		{"line split across writes", 80, []string{"hel", "lo wo", "rld\n"}, []string{"hello world"}},
		{"multibyte split across writes", 80, []string{"caf\xc3", "\xa9 \xe2\x82", "\xac\n"}, []string{"café €"}},
		{"long line cut", 4, []string{"abcdefghij\n"}, []string{"abcd", "efgh", "ij"}},
		{"exactly the limit", 4, []string{"abcd\nefgh"}, []string{"abcd", "efgh"}},
		{"cut keeps characters whole", 5, []string{"abc€def\n"}, []string{"abc", "€de", "f"}},
		{"cut keeps emoji whole", 6, []string{"ab😀😀\n"}, []string{"ab😀", "😀"}},
		{"invalid utf-8 escaped", 80, []string{"a\xffb\n"}, []string{`a\xffb`}},
		{"NUL escaped", 80, []string{"a\x00b\n"}, []string{`a\x00b`}},
		{"truncated character at the end", 80, []string{"a\xe2\x82"}, []string{`a\xe2\x82`}},
		{"limit below a character", 1, []string{"😀😀\n"}, []string{"😀", "😀"}},
		{"very long line", 4096, []string{strings.Repeat("x", 10000), "\n"}, []string{strings.Repeat("x", 4096), strings.Repeat("x", 4096), strings.Repeat("x", 1808)}},
		{"nothing", 80, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := collect(tt.limit, tt.chunks...)
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
				t.Errorf("lines = %q, want %q", got, tt.want)
			}
		})
	}
}

// fragments are the pieces streams are drawn from: line ends of every kind,
// characters of one to four bytes, an invalid byte and runs longer than a
// line.
var fragments = []string{"a", "b", " ", "\n", "\r", "\r\n", "é", "€", "😀", "\xff", "\x00", strings.Repeat("x", 9), strings.Repeat("€", 5)}

// TestLineWriterProperty: for any stream and any way of splitting it into
// writes, the lines are those of the whole stream written at once; every
// line is valid UTF-8 without NUL and, unescaped, within the limit; and no
// byte but the line ends is lost, invalid ones and NULs included (so no cut
// split a character).
func TestLineWriterProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		limit := rapid.IntRange(1, 16).Draw(t, "limit")
		stream := strings.Join(rapid.SliceOf(rapid.SampledFrom(fragments)).Draw(t, "fragments"), "")

		var chunks []string
		for rest := stream; len(rest) > 0; {
			n := rapid.IntRange(1, len(rest)).Draw(t, "chunk")
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		got := collect(limit, chunks...)
		want := collect(limit, stream)
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
			t.Fatalf("written in %q: %q\nwritten at once: %q", chunks, got, want)
		}
		for _, l := range got {
			if len(unescape(l)) > max(limit, utf8.UTFMax) || !utf8.ValidString(l) || strings.Contains(l, "\x00") {
				t.Fatalf("line %q: longer than %d, not UTF-8 or with a NUL", l, limit)
			}
		}
		bare := strings.NewReplacer("\r", "", "\n", "").Replace(stream)
		if joined := unescape(strings.Join(got, "")); joined != bare {
			t.Fatalf("lines %q lose or change bytes of %q", got, stream)
		}
	})
}

// unescape undoes SafeText for text without backslashes of its own.
func unescape(s string) string {
	return regexp.MustCompile(`\\x[0-9a-f]{2}`).ReplaceAllStringFunc(s, func(e string) string {
		b, _ := strconv.ParseUint(e[2:], 16, 8)
		return string([]byte{byte(b)})
	})
}

// TestSafeTextProperty: SafeText of any bytes is valid UTF-8 without NUL;
// text that was both already is unchanged; and nothing is lost: without
// backslashes in the input, unescaping gives the input back.
func TestSafeTextProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := rapid.SliceOf(rapid.Byte().Filter(func(c byte) bool { return c != '\\' })).Draw(t, "bytes")
		got := SafeText(b)
		if !utf8.ValidString(got) || strings.ContainsRune(got, 0) {
			t.Fatalf("SafeText(%q) = %q: not UTF-8 or with a NUL", b, got)
		}
		if utf8.Valid(b) && !bytes.ContainsRune(b, 0) && got != string(b) {
			t.Fatalf("SafeText changed valid text %q to %q", b, got)
		}
		if unescape(got) != string(b) {
			t.Fatalf("SafeText(%q) = %q loses bytes", b, got)
		}
	})
}

// TestCutTextProperty: CutText never returns more than max bytes, never
// splits a character of valid text, and keeps the longest such prefix.
func TestCutTextProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := rapid.String().Draw(t, "text")
		n := rapid.IntRange(0, len(s)+4).Draw(t, "max")
		got := CutText(s, n)
		if len(got) > n || !strings.HasPrefix(s, got) || !utf8.ValidString(got) {
			t.Fatalf("CutText(%q, %d) = %q", s, n, got)
		}
		if len(got) < len(s) {
			if next := s[len(got):]; utf8.ValidString(next) && len(got)+utf8.RuneLen([]rune(next)[0]) <= n {
				t.Fatalf("CutText(%q, %d) = %q: the next character fits", s, n, got)
			}
		}
	})
}
