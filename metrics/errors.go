package metrics

import (
	"errors"

	"minivercel/listen"
)

// ErrNoAddr is New's answer to a Config without an address: metrics are
// off unless an address is given.
var ErrNoAddr = errors.New("metrics: no listen address")

// ErrNotListening is Serve's answer when Listen was not called first.
var ErrNotListening = listen.ErrNotListening
