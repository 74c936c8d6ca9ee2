package gitd

import (
	"context"
	"io"
	"log/slog"
	"syscall"

	"minivercel/proc"
)

// gitRun is one run of a git service. SSH and HTTP run git the same way and
// differ only in where its input comes from and where its output goes.
type gitRun struct {
	svc  service
	args []string // after the service name: flags, then the repository
	dir  string   // the bare repository, also the working directory
	env  []string // the whole environment (gitEnv)
	// stdin is the client's request stream; nil gives git no input.
	stdin io.Reader
	// unblockStdin, when not nil, ends a read of stdin still blocked after
	// git exited, so that nothing reads the client's stream once runGit
	// has returned (an HTTP handler must not touch the body afterwards).
	// Nil leaves that read to end with the stream, as an SSH channel does
	// when the session ends.
	unblockStdin func()
	// stdout and stderr receive git's output. They are written from two
	// goroutines at once: git must never block on a full stderr pipe while
	// we wait on stdout (gitkit's serial copy does exactly that).
	stdout, stderr io.Writer
}

// runGit runs "git <svc> <args...>" and returns the exit status to report
// (proc.ExitCode: a signal or I/O failure is 1, never 0). err is not nil only
// when git could not be started; the caller tells its client in its own
// way. How the run ended is logged here, once for both transports.
//
// git gets its own process group, so that the post-receive hook and its
// children are signalled with receive-pack. When ctx ends early (the pusher
// pressed Ctrl-C, the connection dropped) the group gets SIGTERM, not
// SIGKILL: git must remove its .lock files, and the refs it already updated
// stay. Without it receive-pack can hang forever waiting for a hook whose
// output nobody reads once the client is gone. The build itself belongs
// to the hook server and goes on.
func runGit(ctx context.Context, git string, log *slog.Logger, r gitRun) (code int, err error) {
	cmd := proc.Command(ctx, syscall.SIGTERM, waitDelay, git, append([]string{string(r.svc)}, r.args...)...)
	cmd.Env = r.env
	cmd.Dir = r.dir
	cmd.Stdout, cmd.Stderr = r.stdout, r.stderr
	// Not cmd.Stdin = r.stdin: Wait would then wait for a copy goroutine
	// blocked reading a client that may keep its stream open until it sees
	// the exit status, or stall on purpose.
	var stdin io.WriteCloser
	if r.stdin != nil {
		if stdin, err = cmd.StdinPipe(); err != nil {
			log.Error("git stdin pipe", "err", err)
			return 0, err
		}
	}
	if err := cmd.Start(); err != nil {
		log.Error("start git", "err", err)
		return 0, err
	}
	copied := make(chan error, 1)
	if stdin != nil {
		go func() {
			_, err := io.Copy(stdin, r.stdin)
			stdin.Close()
			copied <- err
		}()
	} else {
		copied <- nil
	}
	err = cmd.Wait()
	var cerr error
	select {
	case cerr = <-copied:
	default:
		if r.unblockStdin != nil {
			r.unblockStdin()
			cerr = <-copied
		}
	}
	if cerr != nil {
		// Often only the echo of git's own end (a closed pipe) or of the
		// client's; git's status says what happened.
		log.Debug("copy git request stream", "err", cerr)
	}

	code = proc.ExitCode(err)
	switch {
	case ctx.Err() != nil:
		log.Info("git ended early: client went away", "exit", code, "err", err)
	case code != 0:
		log.Info("git failed", "exit", code, "err", err)
	default:
		log.Debug("git done")
	}
	return code, nil
}
