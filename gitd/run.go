package gitd

import (
	"errors"
	"io"
	"log/slog"
	"os/exec"
	"syscall"

	"github.com/gliderlabs/ssh"
)

// runGit runs "git <svc> <dir>" with the SSH channel as its stdin and
// stdout, and reports its exit status to the client.
//
// hookExit, when not nil, returns the exit code of the post-receive hook run
// of this push; a git that succeeded still reports the hook's failure.
func (s *Server) runGit(sess ssh.Session, log *slog.Logger, svc service, dir string, env []string, hookExit func() int) {
	ctx := sess.Context()
	cmd := exec.CommandContext(ctx, s.git, string(svc), dir)
	cmd.Env = env
	cmd.Dir = dir
	// Own process group, so the hook and its children can be signalled
	// together with receive-pack.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// When the client vanishes, receive-pack can hang forever waiting for a
	// hook whose output nobody reads (FIELD-NOTES). SIGTERM, not SIGKILL:
	// git must get to remove its .lock files.
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	}
	cmd.WaitDelay = waitDelay
	cmd.Stdout = sess
	cmd.Stderr = sess.Stderr() // exec copies stdout and stderr concurrently

	// Not cmd.Stdin = sess: Wait would then wait for a copy goroutine
	// blocked reading the channel, which a client may keep open until it
	// sees the exit status.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		log.Error("git stdin pipe", "err", err)
		s.deny(sess, "error: internal error while starting git")
		return
	}
	if err := cmd.Start(); err != nil {
		log.Error("start git", "err", err)
		s.deny(sess, "error: internal error while starting git")
		return
	}
	go func() {
		_, _ = io.Copy(stdin, sess)
		stdin.Close()
	}()
	err = cmd.Wait()
	code := 0
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
		if code < 0 { // killed by a signal
			code = 1
		}
	default:
		code = 1
	}
	if code == 0 && hookExit != nil {
		code = hookExit()
	}
	if ctx.Err() != nil {
		log.Info("git ended early: client went away", "exit", code, "err", err)
	} else if code != 0 {
		log.Info("git failed", "exit", code, "err", err)
	} else {
		log.Debug("git done")
	}
	_ = sess.Exit(code)
}
