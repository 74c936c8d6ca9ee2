package profiling

import "errors"

// ErrNoAddr is New's answer to a Config without an address: profiling is
// off unless an address is given.
var ErrNoAddr = errors.New("profiling: no listen address")

// ErrNotLoopback is New's answer to an address that is not on loopback (nor
// a unix socket): profiles are never served to the network.
var ErrNotLoopback = errors.New("profiling: address is not on loopback")

// ErrNotListening is Serve's answer when Listen was not called first.
var ErrNotListening = errors.New("profiling: Listen was not called")
