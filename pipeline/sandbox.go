package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// buildUserName is the system account builds run as when the server is root.
const buildUserName = "minivercel-build"

// DefaultTimeout is how long one sandboxed command may run when
// Sandbox.Timeout is zero.
const DefaultTimeout = 30 * time.Minute

// killGrace is how long a timed-out command gets between SIGTERM and
// SIGKILL, and how long Run waits for output still buffered in the pipe.
const killGrace = 5 * time.Second

// sandboxPath is the only PATH a build sees.
const sandboxPath = "/usr/local/bin:/usr/bin:/bin"

// Sandbox runs build commands (install, build) as an unprivileged user with
// an explicit minimal environment, in their own process group. Project code
// is untrusted: the uid is what keeps it away from the server's data
// directory, keys and other projects. The zero value runs commands as the
// current user with DefaultTimeout.
type Sandbox struct {
	// UID and GID are the build user's ids. They are used only when Enabled.
	UID, GID uint32
	// Enabled switches to UID/GID before exec. It is false when the server
	// is not root (it cannot change user): commands then run as the current
	// user, which is only acceptable for development.
	Enabled bool
	// Timeout bounds each command; when it passes, the whole process group
	// is killed and Run returns an error wrapping ErrTimeout. Zero means
	// DefaultTimeout.
	Timeout time.Duration
}

// buildUserMu serialises the look-up-or-create, so two workers starting at
// once do not both run useradd.
var buildUserMu sync.Mutex

// BuildUser returns the Sandbox for this process. As root it looks up the
// system user minivercel-build, creating it with useradd when missing (no
// home, no login shell, its own group), and returns an enabled Sandbox with
// its ids. Not as root it returns a Sandbox that runs commands as the
// current user.
func BuildUser() (Sandbox, error) {
	if os.Geteuid() != 0 {
		return Sandbox{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}, nil
	}
	buildUserMu.Lock()
	defer buildUserMu.Unlock()

	u, err := user.Lookup(buildUserName)
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) {
		// --user-group: the build user must not share a group with anyone,
		// or it could read files left group-readable for that group.
		cmd := exec.Command("/usr/sbin/useradd", "--system", "--user-group", "--no-create-home",
			"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", buildUserName)
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}
		out, addErr := cmd.CombinedOutput()
		// Another process may have created the user meanwhile (useradd exit
		// 9): the second look-up decides.
		u, err = user.Lookup(buildUserName)
		if err != nil && addErr != nil {
			return Sandbox{}, fmt.Errorf("create build user %s: %w: %s", buildUserName, addErr, strings.TrimSpace(string(out)))
		}
	}
	if err != nil {
		return Sandbox{}, fmt.Errorf("look up build user %s: %w", buildUserName, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return Sandbox{}, fmt.Errorf("parse ids of build user %s: %w", buildUserName, err)
	}
	if uid == 0 || gid == 0 {
		// A build user that is root would make the sandbox meaningless.
		return Sandbox{}, fmt.Errorf("build user %s has uid %d gid %d: refusing to build as root", buildUserName, uid, gid)
	}
	return Sandbox{UID: uint32(uid), GID: uint32(gid), Enabled: true}, nil
}

// Prepare hands the workspace tree at dir (checkout, HOME, caches) to the
// build user, so that install and build can write into it. It does nothing
// when the Sandbox is not Enabled. It fails with an explanation when a
// parent directory of dir is not searchable by the build user, which would
// otherwise surface later as an obscure "permission denied" from npm.
//
// Ownership changes go through os.Root and Lchown, so a symlink in the tree
// is never followed to chown something outside dir.
func (s Sandbox) Prepare(dir string) error {
	if !s.Enabled {
		return nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("prepare workspace %s: %w", dir, err)
	}
	for p := filepath.Dir(abs); ; p = filepath.Dir(p) {
		if err := s.checkSearchable(p); err != nil {
			return fmt.Errorf("prepare workspace %s: %w", dir, err)
		}
		if p == "/" {
			break
		}
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return fmt.Errorf("prepare workspace %s: %w", dir, err)
	}
	defer root.Close()
	err = fs.WalkDir(root.FS(), ".", func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return root.Lchown(p, int(s.UID), int(s.GID))
	})
	if err != nil {
		return fmt.Errorf("prepare workspace %s: %w", dir, err)
	}
	return nil
}

// checkSearchable reports an error unless the build user may traverse dir.
func (s Sandbox) checkSearchable(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	perm := fi.Mode().Perm()
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case perm&0o001 != 0:
		return nil
	case ok && st.Uid == s.UID && perm&0o100 != 0:
		return nil
	case ok && st.Gid == s.GID && perm&0o010 != 0:
		return nil
	}
	return fmt.Errorf("the build user (uid %d) cannot enter %s (mode %v); make it searchable with chmod o+x", s.UID, dir, perm)
}

// MinimalEnv returns the environment a build command gets: a fixed PATH, HOME
// (a writable directory inside the workspace: npm keeps its cache and config
// there), LANG=C.UTF-8, CI=1 and npm settings that keep install output quiet
// and offline-friendly (no update notifier, funding or audit requests),
// followed by extra ("KEY=value", such as the project's variables). A later
// entry replaces an earlier one with the same key; entries without "=" are
// dropped. NODE_ENV is not set: with NODE_ENV=production an install skips
// devDependencies, which most builds need; callers add it for the build step.
//
// Nothing is taken from the server's own environment: it holds the
// database URL and the master key.
func MinimalEnv(home string, extra ...string) []string {
	base := []string{
		"PATH=" + sandboxPath,
		"HOME=" + home,
		"LANG=C.UTF-8",
		"CI=1",
		"npm_config_update_notifier=false",
		"npm_config_fund=false",
		"npm_config_audit=false",
	}
	env := make([]string, 0, len(base)+len(extra))
	index := map[string]int{}
	for _, kv := range append(base, extra...) {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			continue
		}
		if i, seen := index[k]; seen {
			env[i] = kv
			continue
		}
		index[k] = len(env)
		env = append(env, kv)
	}
	return env
}

// ExitError is the error of a command that ran and failed. It wraps
// ErrCommandFailed.
type ExitError struct {
	// Argv is the command as run (argv[0] as given, not the resolved path).
	Argv []string
	// Code is the exit status, or -1 when the process was killed by a signal.
	Code int
	// Signal is the signal that killed the process, or 0.
	Signal syscall.Signal
}

// Error implements error.
func (e *ExitError) Error() string {
	cmd := strings.Join(e.Argv, " ")
	if e.Signal != 0 {
		return fmt.Sprintf("%s: killed by signal %v", cmd, e.Signal)
	}
	return fmt.Sprintf("%s: exited with code %d", cmd, e.Code)
}

// Unwrap makes errors.Is(err, ErrCommandFailed) true.
func (e *ExitError) Unwrap() error { return ErrCommandFailed }

// Run runs argv in dir with exactly env (see MinimalEnv) as the build user,
// and writes the command's stdout and stderr to out (nil discards them).
// argv[0] is looked up in env's PATH, never the server's. Stdin is
// /dev/null.
//
// Stdout and stderr share one pipe, so out receives the output in the order
// the command wrote it, from a single goroutine: out need not be safe for
// concurrent use. The command gets its own process group; when it exits,
// anything it left running in that group is killed, and when Sandbox.Timeout
// passes the group gets SIGTERM, then SIGKILL after a short grace.
//
// The error wraps ErrCommandFailed with an *ExitError (errors.As) when the
// command exits non-zero, ErrTimeout when it timed out, and ctx's error
// when ctx ended first.
func (s Sandbox) Run(ctx context.Context, dir string, argv []string, env []string, out io.Writer) error {
	if len(argv) == 0 {
		return errors.New("run: empty command")
	}
	if out == nil {
		out = io.Discard
	}
	bin, err := lookPathEnv(argv[0], env)
	if err != nil {
		return fmt.Errorf("run %s: %w", argv[0], err)
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("run %s: %w", argv[0], err)
	}
	defer pr.Close()

	cmd := exec.CommandContext(tctx, bin)
	cmd.Args = argv
	cmd.Dir = dir
	// A nil Env would mean "inherit the server's environment".
	cmd.Env = append([]string{}, env...)
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// If the server dies, its builds die with it instead of running on
		// unowned. Go sets this after the credential switch, which would
		// otherwise clear it.
		Pdeathsig: syscall.SIGKILL,
	}
	if s.Enabled {
		// An empty Groups drops root's supplementary groups.
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: s.UID, Gid: s.GID, Groups: []uint32{}}
	}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid, syscall.SIGTERM) }
	// After the grace the leader gets SIGKILL from os/exec; the rest of the
	// group gets it below.
	cmd.WaitDelay = killGrace

	err = cmd.Start()
	pw.Close() // the child holds its own copy; EOF comes when all holders exit
	if err != nil {
		return fmt.Errorf("run %s: %w", argv[0], err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(out, pr)
	}()

	waitErr := cmd.Wait()
	// Leftovers (a dev server started in the background, a daemonised
	// watcher) must not outlive their step, and would keep the pipe open.
	// The group id cannot have been reused while any member is alive.
	_ = killGroup(cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-copied:
	case <-time.After(killGrace):
		// Something escaped the group (setsid) and still holds the pipe.
		_ = pr.SetReadDeadline(time.Now())
		<-copied
	}

	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("run %s: %w", argv[0], ctx.Err())
	case tctx.Err() != nil:
		return fmt.Errorf("run %s: no result after %v: %w", argv[0], timeout, ErrTimeout)
	case waitErr == nil:
		return nil
	}
	var ee *exec.ExitError
	if errors.As(waitErr, &ee) {
		e := &ExitError{Argv: append([]string(nil), argv...), Code: ee.ExitCode()}
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			e.Signal = ws.Signal()
		}
		return e
	}
	return fmt.Errorf("run %s: %w", argv[0], waitErr)
}

// killGroup signals the process group led by pid.
func killGroup(pid int, sig syscall.Signal) error {
	err := syscall.Kill(-pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// lookPathEnv resolves name in the PATH of env, as the child would: the
// server's own PATH could hold tools the build must not pick up.
func lookPathEnv(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	pathList := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathList = v
		}
	}
	for _, d := range filepath.SplitList(pathList) {
		if d == "" || !filepath.IsAbs(d) {
			// A relative PATH entry would resolve against the server's
			// working directory.
			continue
		}
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH %q: %w", name, pathList, exec.ErrNotFound)
}
