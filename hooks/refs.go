package hooks

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
)

// RefUpdate is one line of git's post-receive input: a ref moved from Old to
// New. Old and New are hex object ids of the same length (40 for SHA-1
// repositories, 64 for SHA-256); Name is the full ref name such as
// refs/heads/main.
type RefUpdate struct {
	Old, New, Name string
}

// maxRefLine bounds one input line: two 64-hex ids plus a ref name of a
// sane length. git itself does not produce longer lines.
const maxRefLine = 4096

// Branch returns the branch name for refs/heads/* refs.
func (u RefUpdate) Branch() (string, bool) {
	b, ok := strings.CutPrefix(u.Name, "refs/heads/")
	return b, ok && b != ""
}

// IsDelete reports whether the update deletes the ref (New is all zeros).
func (u RefUpdate) IsDelete() bool {
	return isZeroID(u.New)
}

// IsCreate reports whether the update creates the ref (Old is all zeros).
func (u RefUpdate) IsCreate() bool {
	return isZeroID(u.Old)
}

func isZeroID(id string) bool {
	return id != "" && strings.Trim(id, "0") == ""
}

// ParseRefUpdates parses git's post-receive (and pre-receive) standard
// input, one "<old> <new> <ref>\n" line per updated ref. It is strict
// because the result names files and drives builds: every malformed line
// yields an error wrapping ErrBadRefUpdate. Empty input yields no updates.
func ParseRefUpdates(r io.Reader) ([]RefUpdate, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), maxRefLine)
	sc.Split(scanLF)
	var updates []RefUpdate
	for n := 1; sc.Scan(); n++ {
		u, err := parseRefLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("parse line %d: %w", n, err)
		}
		updates = append(updates, u)
	}
	if err := sc.Err(); err != nil {
		if err == bufio.ErrTooLong {
			return nil, fmt.Errorf("read ref updates: %w: line longer than %d bytes", ErrBadRefUpdate, maxRefLine)
		}
		return nil, fmt.Errorf("read ref updates: %w", err)
	}
	return updates, nil
}

// scanLF splits on '\n' only: unlike bufio.ScanLines it keeps a '\r',
// which git never writes, so that it is rejected rather than dropped.
func scanLF(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

func parseRefLine(line string) (RefUpdate, error) {
	parts := strings.Split(line, " ")
	if len(parts) != 3 {
		return RefUpdate{}, fmt.Errorf("%w: want \"<old> <new> <ref>\", got %d fields", ErrBadRefUpdate, len(parts))
	}
	u := RefUpdate{Old: parts[0], New: parts[1], Name: parts[2]}
	return u, u.validate()
}

// validate checks one update; the server calls it too, since a hook
// request is not trusted more than git's stdin.
func (u RefUpdate) validate() error {
	if !isObjectID(u.Old) {
		return fmt.Errorf("%w: old object id %q is not 40 or 64 lowercase hex digits", ErrBadRefUpdate, u.Old)
	}
	if !isObjectID(u.New) {
		return fmt.Errorf("%w: new object id %q is not 40 or 64 lowercase hex digits", ErrBadRefUpdate, u.New)
	}
	if len(u.Old) != len(u.New) {
		return fmt.Errorf("%w: object ids %q and %q differ in length", ErrBadRefUpdate, u.Old, u.New)
	}
	if err := checkRefName(u.Name); err != nil {
		return fmt.Errorf("%w: ref %q: %s", ErrBadRefUpdate, u.Name, err)
	}
	return nil
}

func isObjectID(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// checkRefName applies the rules of git check-ref-format to a full ref name
// under refs/. It returns a plain error; the caller wraps it.
func checkRefName(name string) error {
	if !strings.HasPrefix(name, "refs/") {
		return fmt.Errorf("must start with refs/")
	}
	if len(name) > 1024 {
		return fmt.Errorf("longer than 1024 bytes")
	}
	if strings.Contains(name, "..") || strings.Contains(name, "@{") {
		return fmt.Errorf("must not contain \"..\" or \"@{\"")
	}
	if strings.HasSuffix(name, "/") || strings.HasSuffix(name, ".") {
		return fmt.Errorf("must not end with '/' or '.'")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("must not contain control characters")
		}
		if strings.IndexByte(" ~^:?*[\\", c) >= 0 {
			return fmt.Errorf("must not contain %q", c)
		}
	}
	for _, comp := range strings.Split(name, "/") {
		if comp == "" {
			return fmt.Errorf("must not contain empty components")
		}
		if strings.HasPrefix(comp, ".") || strings.HasSuffix(comp, ".lock") {
			return fmt.Errorf("components must not start with '.' or end with \".lock\"")
		}
	}
	return nil
}

// FormatRefUpdates formats updates the way git writes them to a hook's
// standard input; it is the inverse of ParseRefUpdates.
func FormatRefUpdates(updates []RefUpdate) string {
	var b strings.Builder
	for _, u := range updates {
		b.WriteString(u.Old)
		b.WriteByte(' ')
		b.WriteString(u.New)
		b.WriteByte(' ')
		b.WriteString(u.Name)
		b.WriteByte('\n')
	}
	return b.String()
}
