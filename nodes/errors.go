package nodes

import "errors"

// Sentinel errors of the package. Callers test them with errors.Is.
var (
	// ErrInvalidRoles means a roles list names no role or an unknown one.
	ErrInvalidRoles = errors.New("invalid roles")
	// ErrInvalidID means a node id is not a DNS label (lowercase letters,
	// digits and inner dashes, at most 63 characters).
	ErrInvalidID = errors.New("invalid node id")
)
