package hooks

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// unreachableMsg is what a pusher sees when the hook cannot hand the push
// over: the refs are already updated, so say so.
const unreachableMsg = "error: minivercel server is not reachable; your push was stored but not built"

// RunPostReceive is the post-receive hook: it reads git's ref updates from
// stdin, hands them to the server at $MINIVERCEL_HOOK_SOCKET with the token
// in $MINIVERCEL_PUSH_TOKEN, and copies the server's output to stdout as it
// arrives (git forwards it to the pusher as "remote:" lines). It returns
// the exit code to exit with: the server's, or 1 after an "error:" line on
// stderr when anything fails.
//
// Connecting and sending the updates ignore ctx (bounded by a short
// timeout): once git has updated the refs, the push must reach the server
// even if the pusher is already gone, or it would be stored but never
// built. After that, ctx ending (SIGINT/SIGTERM in the hook process)
// disconnects, which stops the streaming but not the build.
func RunPostReceive(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	fail := func(msg string) int {
		fmt.Fprintln(stderr, msg)
		return 1
	}
	socket, token := getenv(EnvHookSocket), getenv(EnvPushToken)
	if socket == "" || token == "" {
		return fail("error: minivercel hook: " + EnvHookSocket + " or " + EnvPushToken +
			" is not set; this hook only works inside a push to minivercel")
	}
	updates, err := ParseRefUpdates(stdin)
	if err != nil {
		return fail("error: minivercel hook: " + err.Error())
	}

	conn, err := net.DialTimeout("unix", socket, handoverTimeout)
	if err != nil {
		return fail(unreachableMsg)
	}
	defer conn.Close()
	req := request{Token: token, Updates: make([]wireUpdate, len(updates))}
	for i, u := range updates {
		req.Updates[i] = wireUpdate{Old: u.Old, New: u.New, Ref: u.Name}
	}
	b, err := json.Marshal(req)
	if err != nil {
		return fail("error: minivercel hook: encode request: " + err.Error())
	}
	_ = conn.SetWriteDeadline(time.Now().Add(handoverTimeout))
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return fail(unreachableMsg)
	}
	_ = conn.SetWriteDeadline(time.Time{})

	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	br := bufio.NewReaderSize(conn, 64<<10)
	for {
		line, err := readFrame(br)
		if err != nil {
			if ctx.Err() != nil {
				return fail("error: interrupted; the build goes on on the server")
			}
			return fail("error: the minivercel server closed the connection before the push was processed; check the panel for the build status")
		}
		var f frame
		if err := json.Unmarshal(line, &f); err != nil {
			return fail("error: minivercel hook: malformed message from the server")
		}
		if f.Out != "" {
			if _, err := io.WriteString(stdout, f.Out); err != nil {
				// Nobody is reading any more: closing the connection
				// tells the server to stop streaming.
				return 1
			}
			if fl, ok := stdout.(interface{ Flush() error }); ok {
				_ = fl.Flush()
			}
		}
		if f.Exit != nil {
			if *f.Exit < 0 || *f.Exit > 255 {
				return 1
			}
			return *f.Exit
		}
	}
}

var errFrameTooLong = errors.New("frame too long")

// readFrame reads one newline-terminated frame of at most maxFrame bytes.
func readFrame(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > maxFrame {
			return nil, errFrameTooLong
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return buf, err
	}
}
