package proc

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Command returns a command for name and args set up the way every child of
// the server must be:
//
//   - in its own process group (Setpgid), so that KillGroup reaches what it
//     starts as well: git's hooks, npm's scripts, an app's workers;
//   - when ctx ends, stop goes to that whole group rather than os/exec's
//     SIGKILL to the leader alone. git needs SIGTERM to remove its .lock
//     files; a build tool's children would otherwise run on unowned;
//   - WaitDelay is grace: a leader that ignores stop gets SIGKILL after it,
//     and Wait stops waiting for output pipes a grandchild still holds
//     after it, instead of hanging;
//   - Env is empty, not nil: nil would mean "inherit the server's
//     environment", which holds the database URL and the master key. The
//     caller sets the whole environment the child gets.
//
// The caller may add to cmd.SysProcAttr (Credential, Pdeathsig) but must
// keep Setpgid. When stdout and stderr are writers rather than files,
// os/exec copies each in its own goroutine, so a child never blocks on one
// full pipe while the other is read; see StartPiped for one ordered stream.
func Command(ctx context.Context, stop syscall.Signal, grace time.Duration, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = []string{}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return KillGroup(cmd.Process.Pid, stop) }
	cmd.WaitDelay = grace
	return cmd
}

// KillGroup sends sig to the process group led by pid. A group that is
// already gone gives os.ErrProcessDone, which os/exec's Cancel treats as
// success. A pid below 2 gives ErrNoGroup: kill(-0) would signal the
// server's own group and kill(-1) every process it may signal.
func KillGroup(pid int, sig syscall.Signal) error {
	if pid < 2 {
		return ErrNoGroup
	}
	err := syscall.Kill(-pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// Status is how a command that ran ended.
type Status struct {
	// Code is the exit status, or -1 when a signal killed the process.
	Code int
	// Signal is the signal that killed the process, or 0.
	Signal syscall.Signal
}

// StatusOf returns how the command ended from the error of its Wait or Run;
// ok is false when err is not about the command's exit (it could not start,
// or an I/O copy failed) and nil err is a zero Status.
func StatusOf(err error) (st Status, ok bool) {
	if err == nil {
		return Status{}, true
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return Status{}, false
	}
	st.Code = ee.ExitCode()
	if ws, isWait := ee.Sys().(syscall.WaitStatus); isWait && ws.Signaled() {
		st.Signal = ws.Signal()
	}
	return st, true
}

// ExitCode is the exit status to report for a finished command to a client
// that only understands numbers (an SSH exit status): its own code when it
// exited non-zero, and 1 for every other failure (killed by a signal, I/O
// error, WaitDelay exceeded), so that no failure ever reads as success.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	if st, ok := StatusOf(err); ok && st.Code > 0 {
		return st.Code
	}
	return 1
}

// Piped is a started command whose stdout and stderr share one pipe, read by
// one goroutine: the writer sees the output in the order the command wrote
// it (two pipes would reorder stdout and stderr lines) and is never called
// concurrently.
type Piped struct {
	cmd    *exec.Cmd
	pr     *os.File
	copied chan struct{}
}

// StartPiped starts cmd (from Command) with its stdout and stderr going to
// out; nil out discards the output.
func StartPiped(cmd *exec.Cmd, out io.Writer) (*Piped, error) {
	if out == nil {
		out = io.Discard
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	err = cmd.Start()
	// The child holds its own copy: EOF comes when every holder has exited.
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, err
	}
	p := &Piped{cmd: cmd, pr: pr, copied: make(chan struct{})}
	go func() {
		defer close(p.copied)
		_, _ = io.Copy(out, pr)
	}()
	return p, nil
}

// Pid is the process id of the command, which is also its process group id.
func (p *Piped) Pid() int { return p.cmd.Process.Pid }

// Wait waits for the command to exit and returns the error of its Wait.
// Then it ends the rest of the process group: what is still running there
// (a server started in the background, a daemonised watcher) gets linger to
// finish its output, then SIGKILL. Last, output held open by a process that
// left the group (setsid) is cut off after the command's WaitDelay. When
// Wait returns, out is no longer written to.
func (p *Piped) Wait(linger time.Duration) error {
	err := p.cmd.Wait()
	if linger > 0 {
		t := time.NewTimer(linger)
		select {
		case <-p.copied:
		case <-t.C:
		}
		t.Stop()
	}
	// The group id cannot have been reused while any member is alive.
	_ = KillGroup(p.Pid(), syscall.SIGKILL)
	t := time.NewTimer(p.cmd.WaitDelay)
	defer t.Stop()
	select {
	case <-p.copied:
	case <-t.C:
		_ = p.pr.SetReadDeadline(time.Now())
		<-p.copied
	}
	p.pr.Close()
	return err
}
