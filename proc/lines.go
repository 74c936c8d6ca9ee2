package proc

import (
	"bytes"
	"strings"
	"sync"
	"unicode/utf8"
)

// LineWriter is an io.Writer that cuts a byte stream (a command's output)
// into lines and hands each to a function. The lines depend only on the
// bytes, never on how they were split into writes: a line, a "\r\n" or a
// multibyte character cut in two by a pipe read comes out the same.
//
// What a line is, for output meant for people:
//   - "\n", "\r" and "\r\n" each end a line. A bare "\r" is a progress bar
//     redrawing itself: each state becomes a line of the log instead of one
//     huge line full of carriage returns;
//   - an empty line ended by "\n" is kept (it is part of the layout), but an
//     empty line ended by "\r" is dropped (a redraw with nothing new);
//   - a line longer than the limit is cut into pieces of at most that many
//     bytes, each cut moved back to the start of a UTF-8 character when one
//     would be split, so that no piece carries half a character;
//   - bytes that are not valid UTF-8, and NUL, are escaped as \xNN (see
//     SafeText), so every line is valid text for a database column, a JSON
//     string or a terminal, and nothing the command printed is lost.
//
// It is safe for concurrent use; emit is called with the writer's lock held,
// one line at a time, in order.
type LineWriter struct {
	mu     sync.Mutex
	max    int
	emit   func(line string)
	buf    []byte
	lastCR bool // the last line ended with "\r": a "\n" right after it ends nothing
}

// NewLineWriter returns a LineWriter that calls emit with each line, at
// most limit bytes long (before invalid bytes are replaced). A limit below 4
// is taken as 4, the longest UTF-8 character.
func NewLineWriter(limit int, emit func(line string)) *LineWriter {
	return &LineWriter{max: max(limit, utf8.UTFMax), emit: emit}
}

// Write implements io.Writer; it never fails.
func (w *LineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	rest := w.buf
	for len(rest) > 0 {
		// Only the first max+1 bytes decide: either a line end is among
		// them, or the line is too long whatever follows.
		i := bytes.IndexAny(rest[:min(len(rest), w.max+1)], "\r\n")
		if i < 0 {
			if len(rest) <= w.max {
				break // the line may still end within the limit
			}
			cut := w.cut(rest)
			w.line(rest[:cut])
			w.lastCR = false
			rest = rest[cut:]
			continue
		}
		cr := rest[i] == '\r'
		switch {
		case i > 0:
			w.line(rest[:i])
		case !cr && !w.lastCR:
			w.line(nil) // an empty line of its own
		}
		w.lastCR = cr
		rest = rest[i+1:]
	}
	// Keep the unfinished line at the start of the buffer, so it does not
	// grow without bound across writes.
	w.buf = append(w.buf[:0], rest...)
	return len(p), nil
}

// cut returns where to cut a line of more than max bytes: at max, or up to
// three bytes earlier at the start of the character that would be split.
func (w *LineWriter) cut(b []byte) int {
	for c := w.max; c > w.max-utf8.UTFMax && c > 0; c-- {
		if utf8.RuneStart(b[c]) {
			if c < w.max && !utf8.FullRune(b[c:w.max]) {
				return c // b[c] starts a character that the cut at max would split
			}
			return w.max
		}
	}
	return w.max // not UTF-8 here: nothing to keep together
}

func (w *LineWriter) line(b []byte) {
	w.emit(SafeText(b))
}

// SafeText returns b as text that PostgreSQL, JSON and terminals accept,
// losing nothing: every byte that is not part of a valid UTF-8 character,
// and every NUL (which PostgreSQL's text refuses), is written as \xNN; the
// rest is kept as it is. Valid text without NUL comes back unchanged.
func SafeText(b []byte) string {
	if utf8.Valid(b) && bytes.IndexByte(b, 0) < 0 {
		return string(b)
	}
	const hex = "0123456789abcdef"
	var sb strings.Builder
	sb.Grow(len(b) + 16)
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == 0 || r == utf8.RuneError && n == 1 {
			sb.WriteString(`\x`)
			sb.WriteByte(hex[b[0]>>4])
			sb.WriteByte(hex[b[0]&0xf])
		} else {
			sb.Write(b[:n])
		}
		b = b[n:]
	}
	return sb.String()
}

// CutText returns the longest prefix of s of at most max bytes that does
// not end inside a UTF-8 character.
func CutText(s string, max int) string {
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// Flush emits what is left as a last line, for output that does not end
// with a newline. Call it once the stream has ended.
func (w *LineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.line(w.buf)
		w.buf = w.buf[:0]
	}
	w.lastCR = false
}
