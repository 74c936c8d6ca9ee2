package gitd

import "errors"

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown.
var ErrServerClosed = errors.New("gitd: server closed")

// errBadCommand is wrapped by parseCommand's errors; they are shown to the
// SSH client as they are.
var errBadCommand = errors.New("unsupported command")
