package secret

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"io"
	"sort"
	"strings"
	"sync"
)

// Mask replaces a secret in redacted output.
const Mask = "[secret]"

// MinRedactLen is the shortest value that is redacted: shorter ones ("true",
// "80") would mask ordinary words everywhere.
const MinRedactLen = 6

// Redactor replaces secret values in text: the values themselves, their hex
// encodings in either case and their base64 encodings (standard and URL
// alphabets, padded or not, at any alignment inside a longer base64 text).
// Occurrences that overlap are masked together, so no part of either shows.
// Safe for concurrent use; nil redacts nothing.
type Redactor struct {
	patterns [][]byte // longest first, so the longest match wins
	maxLen   int
	// byFirst holds the patterns by their first byte: most output bytes
	// start no pattern and cost one table lookup.
	byFirst [256][][]byte
	// second is, for each first byte, the set of the patterns' second
	// bytes (every pattern has one: values have at least MinRedactLen
	// bytes). Most bytes that do start a pattern are not followed by one of
	// these, and cost a second lookup rather than a comparison with each
	// pattern.
	second [256][4]uint64
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
		h := hex.EncodeToString([]byte(v))
		add(h)
		add(strings.ToUpper(h)) // xxd -u, printf %X, many dumps
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			for _, core := range base64Cores(enc, v) {
				add(core)
			}
			// Alone, the value is masked with its padding, not only its core.
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
		r.second[p[0]][p[1]/64] |= 1 << (p[1] % 64)
	}
	return r
}

// base64Cores returns, for each of the three byte alignments v can have inside
// a longer base64 text, the characters that encode bits of v only: they read
// the same whatever surrounds v. A character holds 6 bits, so with v starting
// a bytes into a 3-byte block, character k is v's own when its bits
// [6k, 6k+6) lie within v's bits [8a, 8a+8len(v)). A value of MinRedactLen
// bytes has cores of 7 or 8 characters: long enough not to match by chance.
func base64Cores(enc *base64.Encoding, v string) []string {
	raw := enc.WithPadding(base64.NoPadding)
	cores := make([]string, 0, 3)
	for a := range 3 {
		buf := make([]byte, a+len(v))
		copy(buf[a:], v)
		first, end := (8*a+5)/6, 8*(a+len(v))/6
		cores = append(cores, raw.EncodeToString(buf)[first:end])
	}
	return cores
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
//
// Where matches overlap, the whole run they cover becomes one mask: masking
// only the leftmost longest match would print the rest of a second value
// that begins inside the first (values "sk_live_1234" and "1234abcd" in
// "sk_live_1234abcd" would leave "abcd").
func (r *Redactor) scan(dst, src []byte, final bool) ([]byte, int) {
	i, plain := 0, 0 // src[plain:i] is copied in one go when a match or the end comes
	for i < len(src) {
		if !r.mayStart(src[i:]) {
			i++
			continue
		}
		if !final && r.mayGrow(src[i:]) {
			return append(dst, src[plain:i]...), i
		}
		end := i + r.longestAt(src[i:])
		if end == i {
			i++
			continue
		}
		for j := i + 1; j < end; j++ {
			if !final && r.mayGrow(src[j:]) {
				return append(dst, src[plain:i]...), i
			}
			end = max(end, j+r.longestAt(src[j:]))
		}
		dst = append(append(dst, src[plain:i]...), Mask...)
		i, plain = end, end
	}
	return append(dst, src[plain:i]...), i
}

// mayStart reports whether a pattern may begin at s[0], judging by its first
// two bytes (the first only, when s has one).
func (r *Redactor) mayStart(s []byte) bool {
	if len(r.byFirst[s[0]]) == 0 {
		return false
	}
	return len(s) == 1 || r.second[s[0]][s[1]/64]&(1<<(s[1]%64)) != 0
}

// longestAt returns the length of the longest pattern s begins with, or 0.
func (r *Redactor) longestAt(s []byte) int {
	for _, p := range r.byFirst[s[0]] { // longest first
		if bytes.HasPrefix(s, p) {
			return len(p)
		}
	}
	return 0
}

// mayGrow reports whether s is a proper prefix of a pattern: more input
// could complete a longer match than s holds now.
func (r *Redactor) mayGrow(s []byte) bool {
	if len(s) >= r.maxLen {
		return false
	}
	for _, p := range r.byFirst[s[0]] {
		if len(s) < len(p) && bytes.HasPrefix(p, s) {
			return true
		}
	}
	return false
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
