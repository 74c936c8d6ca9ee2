package tabular

import (
	"bytes"
	"strings"
	"testing"
)

// TestSafe: control characters reach a terminal escaped, other text as it
// is.
func TestSafe(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"plain text, ünïcode and\ttab": "plain text, ünïcode and\ttab",
		"\x1b]52;c;ZXZpbA==\x07":       `\x1b]52;c;ZXZpbA==\x07`,
		"bell\x07 del\x7f c1\u009b":    `bell\x07 del\x7f c1\x9b`,
		"line\rover":                   `line\x0dover`,
	} {
		if got := Safe(in); got != want {
			t.Errorf("Safe(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPrintEscapesCells: a cell can neither drive the terminal nor break
// the columns.
func TestPrintEscapesCells(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	if err := Print(&buf, []string{"fix\x1b[2Jbug\tnow"}, "", "MESSAGE", func(s string) []any { return []any{s} }); err != nil {
		t.Fatal(err)
	}
	if out := buf.String(); strings.ContainsRune(out, 0x1b) || !strings.Contains(out, `fix\x1b[2Jbug now`) {
		t.Errorf("printed %q", out)
	}
}
