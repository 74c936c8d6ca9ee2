package profiling

import (
	"errors"

	"minivercel/listen"
)

// ErrNoAddr is New's answer to a Config without an address: profiling is
// off unless an address is given.
var ErrNoAddr = errors.New("profiling: no listen address")

// ErrNotUnix is CheckAddr's answer to an address that is not a unix socket
// ("unix:/absolute/path"): a TCP port, even on loopback, is open to the
// builds and apps that share the host's network.
var ErrNotUnix = errors.New("profiling: address is not unix:/absolute/path (a TCP port, even on loopback, is reachable by builds and apps)")

// ErrDirNotPrivate is Listen's answer when the socket's directory is not the
// server user's alone (mode 0700 or stricter).
var ErrDirNotPrivate = errors.New("profiling: socket directory is open to other users; want mode 0700, such as <data-dir>/run")

// ErrNotListening is Serve's answer when Listen was not called first.
var ErrNotListening = listen.ErrNotListening
