package hooks

import "errors"

// ErrBadRefUpdate is wrapped by errors about malformed ref-update lines,
// whether they come from git's hook stdin or from a hook request.
var ErrBadRefUpdate = errors.New("bad ref update")

// ErrServerClosed is returned by ListenAndServe after Shutdown.
var ErrServerClosed = errors.New("hooks: server closed")
