package proc

import "errors"

// ErrNoGroup is returned by KillGroup for a pid that cannot lead a process
// group of ours: signalling -0 or -1 would reach the server's own group or
// every process it may signal.
var ErrNoGroup = errors.New("not a process group leader")
