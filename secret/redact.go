package secret

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"io"
	"sort"
	"sync"
)

// Mask replaces a secret in redacted output.
const Mask = "[secret]"

// MinRedactLen is the shortest value that is redacted: shorter ones ("true",
// "80") would mask ordinary words everywhere.
const MinRedactLen = 6

// minEncodedLen is the shortest encoded form worth masking, against false
// positives on short base64 fragments.
const minEncodedLen = 8

// Redactor replaces secret values in text: the values themselves and their
// base64 (standard and URL alphabets, at any alignment inside a longer base64
// text) and hex encodings. Safe for concurrent use; nil redacts nothing.
type Redactor struct {
	patterns [][]byte // longest first, so the longest match wins
	maxLen   int
	// byFirst holds the patterns by their first byte: most output bytes
	// start no pattern and cost one table lookup.
	byFirst [256][][]byte
}

// NewRedactor returns a redactor for the given values; values shorter than
// MinRedactLen are ignored.
func NewRedactor(values []string) *Redactor {
	seen := map[string]bool{}
	r := &Redactor{}
	add := func(p string) {
		if len(p) >= MinRedactLen && !seen[p] {
			seen[p] = true
			r.patterns = append(r.patterns, []byte(p))
		}
	}
	for _, v := range values {
		if len(v) < MinRedactLen {
			continue
		}
		add(v)
		add(hex.EncodeToString([]byte(v)))
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			// Inside a longer base64 text the value starts at one of three
			// alignments; for each, the bytes from the first block boundary
			// on encode the same way whatever surrounds them.
			for skip := 0; skip < 3 && skip < len(v); skip++ {
				inner := v[skip:]
				inner = inner[:len(inner)/3*3]
				if e := enc.EncodeToString([]byte(inner)); len(e) >= minEncodedLen {
					add(e)
				}
			}
			add(enc.EncodeToString([]byte(v)))
		}
	}
	if len(r.patterns) == 0 {
		return nil
	}
	sort.Slice(r.patterns, func(i, j int) bool { return len(r.patterns[i]) > len(r.patterns[j]) })
	r.maxLen = len(r.patterns[0])
	for _, p := range r.patterns {
		r.byFirst[p[0]] = append(r.byFirst[p[0]], p)
	}
	return r
}

// String redacts one complete text.
func (r *Redactor) String(s string) string {
	if r == nil {
		return s
	}
	out, _ := r.scan(nil, []byte(s), true)
	return string(out)
}

// scan appends src to dst with every match masked. Unless final, it stops at
// the first position where the rest of src could still grow into a value (a
// proper prefix of a pattern), and returns how much of src it consumed: only
// what might be a secret is held back, so ordinary output is never delayed.
func (r *Redactor) scan(dst, src []byte, final bool) ([]byte, int) {
	i, plain := 0, 0 // src[plain:i] is copied in one go when a match or the end comes
	for i < len(src) {
		candidates := r.byFirst[src[i]]
		if len(candidates) == 0 {
			i++
			continue
		}
		rest := src[i:]
		if !final && len(rest) < r.maxLen {
			for _, p := range candidates {
				if len(rest) < len(p) && bytes.HasPrefix(p, rest) {
					return append(dst, src[plain:i]...), i
				}
			}
		}
		matched := 0
		for _, p := range candidates {
			if bytes.HasPrefix(rest, p) {
				matched = len(p)
				break
			}
		}
		if matched > 0 {
			dst = append(append(dst, src[plain:i]...), Mask...)
			i += matched
			plain = i
			continue
		}
		i++
	}
	return append(dst, src[plain:i]...), i
}

// Writer redacts a byte stream however it is split into writes: a value cut
// across two writes (or two lines) is still masked. It holds back only a tail
// that could be the beginning of a value, until more arrives or Flush.
type Writer struct {
	r   *Redactor
	out io.Writer
	mu  sync.Mutex
	buf []byte
}

// NewWriter returns a redacting writer to out; with a nil redactor it passes
// everything through.
func NewWriter(r *Redactor, out io.Writer) *Writer { return &Writer{r: r, out: out} }

// Write implements io.Writer.
func (w *Writer) Write(p []byte) (int, error) {
	if w.r == nil {
		return w.out.Write(p)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	out, n := w.r.scan(nil, w.buf, false)
	w.buf = append(w.buf[:0], w.buf[n:]...)
	if len(out) > 0 {
		if _, err := w.out.Write(out); err != nil {
			return len(p), err
		}
	}
	return len(p), nil
}

// Flush redacts and writes what is held back.
func (w *Writer) Flush() error {
	if w.r == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	out, _ := w.r.scan(nil, w.buf, true)
	w.buf = w.buf[:0]
	if len(out) == 0 {
		return nil
	}
	_, err := w.out.Write(out)
	return err
}
