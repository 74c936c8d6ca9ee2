package schema

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidName is wrapped by every error ValidateProjectName returns.
var ErrInvalidName = errors.New("invalid project name")

// MaxProjectNameLen is the longest project name accepted: a project name is
// used as a DNS label (<name>.example.com), and labels are at most 63 bytes.
const MaxProjectNameLen = 63

// reservedNames are names that would collide with the server's own host
// names, URLs or well-known accounts if a project took them.
var reservedNames = map[string]bool{
	"admin":      true,
	"api":        true,
	"assets":     true,
	"git":        true,
	"healthz":    true,
	"localhost":  true,
	"mail":       true,
	"minivercel": true,
	"panel":      true,
	"preview":    true,
	"root":       true,
	"ssh":        true,
	"static":     true,
	"www":        true,
}

// ValidateProjectName reports whether name may name a project. A valid name
// matches ^[a-z0-9][a-z0-9-]{0,62}$, contains no "--", does not end in "-"
// and is not reserved. Because of that alphabet a valid name is safe as a
// single path element, a DNS label and a shell word: callers rely on this to
// build <repos>/<name>.git without further checks.
//
// The returned error wraps ErrInvalidName and says what is wrong; it is safe
// to show to the user who typed the name.
func ValidateProjectName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: the name is empty", ErrInvalidName)
	}
	if len(name) > MaxProjectNameLen {
		return fmt.Errorf("%w %.20q…: at most %d characters are allowed, got %d",
			ErrInvalidName, name, MaxProjectNameLen, len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0:
		case c == '-':
			return fmt.Errorf("%w %q: it must start with a lowercase letter or a digit", ErrInvalidName, name)
		default:
			return fmt.Errorf("%w %q: only lowercase letters, digits and '-' are allowed", ErrInvalidName, name)
		}
	}
	if strings.Contains(name, "--") {
		return fmt.Errorf("%w %q: it must not contain \"--\"", ErrInvalidName, name)
	}
	if strings.HasSuffix(name, "-") {
		return fmt.Errorf("%w %q: it must not end with '-'", ErrInvalidName, name)
	}
	if reservedNames[name] {
		return fmt.Errorf("%w %q: the name is reserved", ErrInvalidName, name)
	}
	return nil
}
