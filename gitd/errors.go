package gitd

import "errors"

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown.
var ErrServerClosed = errors.New("gitd: server closed")

// ErrForbidden may be wrapped by a Projects implementation to deny a user
// access to a project; the pusher is told so in plain words.
var ErrForbidden = errors.New("forbidden")

// errBadCommand is wrapped by parseCommand's errors; they are shown to the
// SSH client as they are.
var errBadCommand = errors.New("unsupported command")
