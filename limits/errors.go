package limits

import (
	"errors"
	"fmt"
)

// ErrOutOfMemory is wrapped by the *ExceededError of a tree whose memory
// limit made the kernel kill a process of it.
var ErrOutOfMemory = errors.New("out of memory")

// ErrTooManyProcesses is wrapped by the *ExceededError of a tree that
// tried to start more processes than its limit allows.
var ErrTooManyProcesses = errors.New("process limit reached")

// ErrInvalidSize is returned by ParseSize for text that is not a size.
var ErrInvalidSize = errors.New("invalid size")

// ExceededError says which limit stopped a process tree, for a build's
// failure reason or an app's runtime log.
type ExceededError struct {
	// Err is ErrOutOfMemory or ErrTooManyProcesses.
	Err error
	// Limit is the limit that was reached: bytes of memory or a number of
	// processes.
	Limit int64
}

// Error implements error: "killed: out of memory (limit 2 GiB)" or
// "stopped: process limit reached (limit 512 processes)".
func (e *ExceededError) Error() string {
	if errors.Is(e.Err, ErrOutOfMemory) {
		return fmt.Sprintf("killed: out of memory (limit %s)", FormatSize(e.Limit))
	}
	return fmt.Sprintf("stopped: %v (limit %d processes)", e.Err, e.Limit)
}

// Unwrap makes errors.Is(err, ErrOutOfMemory) and
// errors.Is(err, ErrTooManyProcesses) work.
func (e *ExceededError) Unwrap() error { return e.Err }
