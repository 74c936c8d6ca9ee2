package sshcmd

import "errors"

// ErrUsage is wrapped by the error of a malformed command line: the command
// exits 2 and shows how it is used.
var ErrUsage = errors.New("bad usage")

// ErrUnterminatedQuote is wrapped by Split's error for a quote that is never
// closed.
var ErrUnterminatedQuote = errors.New("unterminated quote")

// errBuildFailed ends `logs --build N -f` of a build that did not succeed
// with exit status 1, as the push that started it would.
var errBuildFailed = errors.New("build did not succeed")

// errGone is a write to a client that went away: the command ends quietly.
var errGone = errors.New("the client went away")

// ErrBusy refuses a logs -f past the number a user, or the node, may run
// at once: the command exits 1.
var ErrBusy = errors.New("too many logs followed")
