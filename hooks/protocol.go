// Package hooks is the git hook protocol both ways: the post-receive hook
// (RunPostReceive, run by git inside receive-pack) hands the ref updates of a
// push to the server over a unix socket with a one-time token and copies the
// build log it gets back to git, which shows it to the pusher as "remote:"
// lines; the server side (Server) turns a push into builds through a
// Receiver. A build belongs to the server: a hook that goes away stops
// nothing but its own copy of the log.
package hooks

// The hook protocol, over a unix stream socket:
//
//  1. The client (the post-receive hook) sends one JSON request line:
//     {"token":"<hex>","updates":[{"old":"..","new":"..","ref":".."}]}\n
//  2. The server answers with newline-delimited JSON frames: any number of
//     {"out":"<text>"} frames, each written to the hook's stdout as it
//     arrives, then one {"exit":N} frame with the hook's exit code.
//
// The client keeps its write side open until it has the exit frame: the
// server reads end-of-file as "the hook went away" (the pusher pressed
// Ctrl-C) and cancels the Receiver's context. JSON keeps the framing
// trivial and robust; its one cost is that text that is not valid UTF-8
// reaches the pusher with U+FFFD in place of the bad bytes.

import "time"

// Environment variables that gitd sets for git-receive-pack and that the
// hook reads: where the hook server listens, and the per-push token that
// identifies the push to it.
const (
	EnvHookSocket = "MINIVERCEL_HOOK_SOCKET"
	EnvPushToken  = "MINIVERCEL_PUSH_TOKEN"
)

const (
	// maxRequest bounds a hook request; a push of thousands of refs fits.
	maxRequest = 8 << 20
	// requestTimeout bounds how long a connected hook may take to send its
	// request, so a stuck client does not hold a server goroutine forever.
	requestTimeout = 30 * time.Second
	// writeTimeout bounds one frame write. A hook that reads nothing for
	// this long is treated as gone, so a stalled pusher cannot stall the
	// Receiver.
	writeTimeout = 2 * time.Minute
	// handoverTimeout bounds the client's connect and request write, which
	// ignore cancellation (see RunPostReceive).
	handoverTimeout = 10 * time.Second
	// maxFrame bounds one frame read by the client.
	maxFrame = 16 << 20
)

type wireUpdate struct {
	Old string `json:"old"`
	New string `json:"new"`
	Ref string `json:"ref"`
}

type request struct {
	Token   string       `json:"token"`
	Updates []wireUpdate `json:"updates"`
}

type frame struct {
	Out  string `json:"out,omitempty"`
	Exit *int   `json:"exit,omitempty"`
}
