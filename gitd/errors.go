package gitd

import "errors"

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown.
var ErrServerClosed = errors.New("gitd: server closed")

// errNotGit is wrapped by parseCommand's error for a command that is not a
// git service (it is then Config.Commands' to run, when there are any); the
// message is shown to the SSH client as it is.
var errNotGit = errors.New("unsupported command")
