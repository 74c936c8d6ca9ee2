// Package tabular renders lists for people in a terminal: aligned columns
// under a header, and times in one short form. The local CLI and the
// commands over SSH print their tables through it, so a listing looks the
// same whichever way it was asked for.
package tabular

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Print prints items as aligned columns under a header (its columns
// separated by tabs), or empty, a hint of what to do, when there are none.
func Print[T any](w io.Writer, items []T, empty, header string, row func(T) []any) error {
	if len(items) == 0 && empty != "" {
		_, err := fmt.Fprintln(w, empty)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, it := range items {
		cells := row(it)
		parts := make([]string, len(cells))
		for i, c := range cells {
			parts[i] = strings.ReplaceAll(Safe(fmt.Sprint(c)), "\t", " ")
		}
		fmt.Fprintln(tw, strings.Join(parts, "\t"))
	}
	return tw.Flush()
}

// When formats a time for a table.
func When(t time.Time) string { return t.Local().Format("2006-01-02 15:04") }

// TimeOr formats a time that may be missing.
func TimeOr(t *time.Time, none string) string {
	if t == nil {
		return none
	}
	return When(*t)
}

// Safe escapes the control characters of s (C0 but tab, DEL and C1) as
// \xNN. Text from apps, builds and commits is untrusted: printed raw to
// a terminal, an escape sequence could retitle the window, write the
// clipboard or rewrite earlier lines.
func Safe(s string) string {
	if strings.IndexFunc(s, isControl) < 0 {
		return s
	}
	var b strings.Builder
	for _, c := range s {
		if isControl(c) {
			fmt.Fprintf(&b, "\\x%02x", c)
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

func isControl(c rune) bool {
	return (c < 0x20 && c != '\t') || c == 0x7f || (c >= 0x80 && c < 0xa0)
}
