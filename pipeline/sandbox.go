package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"minivercel/limits"
	"minivercel/proc"
	"minivercel/schema"
)

// DefaultTimeout is how long one sandboxed command may run when
// Sandbox.Timeout is zero.
const DefaultTimeout = 30 * time.Minute

// killGrace is how long a timed-out command gets between SIGTERM and
// SIGKILL, and how long Run waits for output still buffered in the pipe.
const killGrace = 5 * time.Second

// probeTimeout bounds the start-up check of bubblewrap.
const probeTimeout = 10 * time.Second

// sandboxPath is the PATH a build sees after the toolchain's directories
// (see BuildPATH).
const sandboxPath = "/usr/local/bin:/usr/bin:/bin"

// BuildPATH returns the PATH of a build: first, in order, the given
// toolchain directories (a package manager's launchers, a Node's bin
// directory), then the system's. Empty entries are dropped.
func BuildPATH(first ...string) string {
	var dirs []string
	for _, d := range first {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	return strings.Join(append(dirs, sandboxPath), ":")
}

// Sandbox runs build commands (install, build) as an unprivileged user with
// an explicit minimal environment, in their own process group and, when
// bubblewrap works, in their own mount, PID, IPC and UTS namespaces. Project
// code is untrusted: the uid keeps it away from files only root may read;
// bubblewrap also keeps it away from world-readable files in Hide and from
// the other builds' workspaces, which belong to the same build user. The
// zero value runs commands as the current user, without bubblewrap, with
// DefaultTimeout.
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
	// Bwrap is the path of the bubblewrap binary Run wraps every command
	// in. BuildUser sets it only after bubblewrap ran a probe command as
	// the build user; empty means no bubblewrap (see Isolated).
	Bwrap string
	// Hide lists directories, such as the server's data directory, that a
	// command must not see: with bubblewrap each is covered by an empty
	// tmpfs (paths that do not exist are skipped; relative paths are taken
	// from the server's working directory). The command's own workspace
	// stays visible even inside a hidden directory. Without bubblewrap Hide
	// has no effect and only file permissions protect these directories.
	// Nil hides nothing beyond what Run always hides.
	Hide []string
	// ReadOnly lists directories bound read-only after Hide's covers, so
	// they stay visible inside a hidden directory: the toolchain store
	// (Node versions and package managers) inside the data directory.
	// Paths that do not exist are skipped. Nil binds nothing.
	ReadOnly []string
	// Cgroups creates the group each command runs in, under Limits, and
	// reports a command a limit stopped (see ExitError.Limit). Nil: no
	// limit beyond Timeout.
	Cgroups *limits.Manager
	// Limits bound the memory, processes and CPU share of one command and
	// everything it starts. Zero fields: not limited.
	Limits limits.Limits
}

// LimitsSummary describes the limits commands run under, for the build
// log: "2 GiB memory, 512 processes, CPU weight 50 (cgroup v1)"; empty
// without Cgroups.
func (s Sandbox) LimitsSummary() string {
	if s.Cgroups == nil {
		return ""
	}
	return fmt.Sprintf("%v (%v)", s.Limits, s.Cgroups.Mode())
}

// Isolated reports whether commands run inside bubblewrap, for the build
// log: "sandbox: bubblewrap" rather than "sandbox: unprivileged user only".
func (s Sandbox) Isolated() bool { return s.Bwrap != "" }

// BuildUser returns the Sandbox for this process. As root it uses the
// system user proc.BuildUserName (see proc.SystemUser) and returns an enabled Sandbox
// with its ids; not as root it returns a Sandbox that runs commands as the
// current user. Either way it then checks once, by running a command in it
// as that user, whether bubblewrap works here: it is missing on some hosts
// and fails in containers that forbid user namespaces. When it works the
// Sandbox uses it; when not, a warning is logged and commands are isolated
// by the uid only.
func BuildUser() (Sandbox, error) {
	uid, gid, err := proc.SystemUser(proc.BuildUserName)
	if err != nil {
		return Sandbox{}, fmt.Errorf("set up build user: %w", err)
	}
	sb := Sandbox{UID: uid, GID: gid, Enabled: os.Geteuid() == 0}
	// Looked up in the build PATH, not the server's.
	bwrap, err := lookPathEnv("bwrap", []string{"PATH=" + sandboxPath})
	if err == nil {
		err = sb.probeBwrap(bwrap)
	} else {
		err = fmt.Errorf("install the bubblewrap package: %w", err)
	}
	if err != nil {
		slog.Default().With("component", "pipeline").Warn(
			"builds run without bubblewrap: they can see other builds' workspaces and world-readable files",
			"err", err)
		return sb, nil
	}
	sb.Bwrap = bwrap
	return sb, nil
}

// probeBwrap runs /bin/true with bubblewrap at the path bwrap, as the
// build user, with every namespace and mount Run uses.
func (s Sandbox) probeBwrap(bwrap string) error {
	s.Bwrap = bwrap
	args, err := s.bwrapArgs("", []string{"/bin/true"})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	cmd := proc.Command(ctx, syscall.SIGKILL, killGrace, bwrap)
	cmd.Args = args
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=" + sandboxPath}
	s.addCredentials(cmd.SysProcAttr)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("probe %s: %w: %s", bwrap, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// bwrapArgs returns the bubblewrap command line that runs argv (argv[0]
// already resolved) in dir, whose parent is the workspace: the one
// directory the command may write besides its private /tmp. With dir
// empty it binds no workspace (the probe).
//
// The host's root is mounted read-only, with a fresh /dev, a /proc of the
// new PID namespace and an empty /tmp. The workspace's parent (the
// directory of all builds' workspaces) and every Hide directory are
// covered with empty tmpfs mounts before the workspace is bound back,
// writable, at its own path, so paths inside it stay what the build and
// the server see. The network is shared: installs need the registry.
//
// --unshare-pid makes bubblewrap the init of a PID namespace: when the
// command exits, everything it started dies with it, even a process that
// left the process group with setsid. --die-with-parent ties that init to
// the bubblewrap process, which has the server as parent (Pdeathsig).
// bubblewrap runs as the build user, not as root: it then creates an
// unprivileged user namespace in which the build user keeps its own uid,
// whereas root in a user namespace would still own root's files.
func (s Sandbox) bwrapArgs(dir string, argv []string) ([]string, error) {
	args := []string{s.Bwrap,
		"--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
		"--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
	}
	var ws string
	var hide []string
	if dir != "" {
		var err error
		if dir, err = realDir(dir); err != nil {
			return nil, fmt.Errorf("resolve build directory: %w", err)
		}
		ws = filepath.Dir(dir)
		if ws == "/" {
			return nil, fmt.Errorf("build directory %s has no workspace around it", dir)
		}
		if parent := filepath.Dir(ws); parent != "/" {
			hide = append(hide, parent)
		}
	}
	for _, h := range s.Hide {
		real, err := realDir(h)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("resolve hidden directory: %w", err)
		}
		if real == "/" {
			return nil, fmt.Errorf("hidden directory %s is the root", h)
		}
		hide = append(hide, real)
	}
	// Parents first, so that a hidden directory inside another one is
	// covered inside the first tmpfs rather than hidden under it.
	slices.SortFunc(hide, func(a, b string) int { return len(a) - len(b) })
	for _, h := range slices.Compact(hide) {
		if h != "/tmp" {
			args = append(args, "--tmpfs", h)
		}
	}
	for _, ro := range s.ReadOnly {
		real, err := realDir(ro)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("resolve read-only directory: %w", err)
		}
		args = append(args, "--ro-bind", real, real)
	}
	if ws != "" {
		args = append(args, "--bind", ws, ws, "--chdir", dir)
	}
	return append(append(args, "--"), argv...), nil
}

// realDir returns the absolute path of dir with symlinks resolved: a mount
// over a symlink's path would leave the real directory reachable.
func realDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// addCredentials adds to a command's process set-up (from proc.Command)
// what Run and the probe share: the build user and death with the server.
func (s Sandbox) addCredentials(a *syscall.SysProcAttr) {
	// If the server dies, its builds die with it instead of running on
	// unowned. Go sets this after the credential switch, which would
	// otherwise clear it.
	a.Pdeathsig = syscall.SIGKILL
	if s.Enabled {
		// An empty Groups drops root's supplementary groups.
		a.Credential = &syscall.Credential{Uid: s.UID, Gid: s.GID, Groups: []uint32{}}
	}
}

// Prepare hands the workspace tree at dir (checkout, HOME, caches) to the
// build user, so that install and build can write into it. It does nothing
// when the Sandbox is not Enabled. It fails with an explanation when a
// parent directory of dir is not searchable by the build user, which would
// otherwise surface later as an obscure "permission denied" from npm.
//
// Ownership changes go through os.Root and Lchown, so a symlink in the tree
// is never followed to chown something outside dir; nor is one at dir
// itself: a symlink there is refused, and so is a dir that is swapped for
// another between the check and the opening.
func (s Sandbox) Prepare(dir string) error {
	if !s.Enabled {
		return nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("prepare workspace %s: %w", dir, err)
	}
	before, err := os.Lstat(abs)
	if err != nil {
		return fmt.Errorf("prepare workspace %s: %w", dir, err)
	}
	if !before.IsDir() {
		return fmt.Errorf("prepare workspace %s: not a directory (%v)", dir, before.Mode().Type())
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
	if opened, err := root.Stat("."); err != nil || !os.SameFile(before, opened) {
		return fmt.Errorf("prepare workspace %s: it changed while it was opened", dir)
	}
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
	// Under bubblewrap, which reports its command's death by a signal as a
	// shell does, that is 128 plus the signal number instead.
	Code int
	// Signal is the signal that killed the process, or 0. Under bubblewrap
	// it is set only when bubblewrap itself was killed.
	Signal syscall.Signal
	// Limit is the *limits.ExceededError of a command that a resource
	// limit stopped (out of memory, too many processes), or nil.
	Limit error
}

// Error implements error.
func (e *ExitError) Error() string {
	cmd := strings.Join(e.Argv, " ")
	if e.Limit != nil {
		return fmt.Sprintf("%s: %v", cmd, e.Limit)
	}
	if e.Signal != 0 {
		return fmt.Sprintf("%s: killed by signal %v", cmd, e.Signal)
	}
	return fmt.Sprintf("%s: exited with code %d", cmd, e.Code)
}

// Unwrap makes errors.Is(err, ErrCommandFailed) true, and
// errors.Is(err, limits.ErrOutOfMemory) when that limit stopped it.
func (e *ExitError) Unwrap() []error {
	if e.Limit != nil {
		return []error{ErrCommandFailed, e.Limit}
	}
	return []error{ErrCommandFailed}
}

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
// With bubblewrap (Sandbox.Bwrap), the command runs in the namespaces
// described at bwrapArgs: it sees dir's parent directory (the workspace,
// holding dir and HOME) writable, the rest of the host read-only minus
// Hide and the other workspaces, a /tmp of its own that starts empty for
// every command, and its own PID namespace, so nothing it started survives
// it, not even a process that left the group.
//
// With Cgroups, each command runs in a group of its own under Limits,
// removed with anything left in it when the command ends.
//
// The error wraps ErrCommandFailed with an *ExitError (errors.As) when the
// command exits non-zero (its Limit says when a limit stopped it),
// ErrTimeout when it timed out, and ctx's error when ctx ended first.
func (s Sandbox) Run(ctx context.Context, dir string, argv []string, env []string, out io.Writer) error {
	if len(argv) == 0 {
		return errors.New("run: empty command")
	}
	bin, err := lookPathEnv(argv[0], env)
	if err != nil {
		return fmt.Errorf("run %s: %w", argv[0], err)
	}
	prog, args := bin, argv
	if s.Bwrap != "" {
		// bubblewrap execs the command with PATH look-up: hand it the path
		// resolved in the build's PATH above.
		if args, err = s.bwrapArgs(dir, append([]string{bin}, argv[1:]...)); err != nil {
			return fmt.Errorf("run %s: %w", argv[0], err)
		}
		prog = s.Bwrap
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	cmd := proc.Command(tctx, syscall.SIGTERM, killGrace, prog)
	cmd.Args = args
	cmd.Dir = dir
	// bubblewrap (and the limits' launcher shell) pass their environment on
	// to the command unchanged; the dynamic loader's and the shell's start-up
	// variables are dropped because they would act on those launchers
	// themselves, before anything is isolated or limited
	// (schema.ValidateEnvVar refuses them too).
	for _, kv := range env {
		if name, _, _ := strings.Cut(kv, "="); !schema.IsLauncherVar(name) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	s.addCredentials(cmd.SysProcAttr)
	group, err := s.Cgroups.NewGroup("build", s.Limits)
	if err != nil {
		return fmt.Errorf("run %s: %w", argv[0], err)
	}
	if err := group.Prepare(cmd); err != nil {
		s.closeGroup(group)
		return fmt.Errorf("run %s: %w", argv[0], err)
	}
	p, err := proc.StartPiped(cmd, out)
	if err != nil {
		s.closeGroup(group)
		return fmt.Errorf("run %s: %w", argv[0], err)
	}
	if err := group.Start(p.Pid()); err != nil {
		_ = p.Wait(0)
		s.closeGroup(group)
		return fmt.Errorf("run %s: %w", argv[0], err)
	}
	// Leftovers (a dev server started in the background, a daemonised
	// watcher) must not outlive their step, and would keep the pipe open:
	// no linger for them.
	waitErr := p.Wait(0)
	exceeded := s.closeGroup(group).Err()

	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("run %s: %w", argv[0], ctx.Err())
	case tctx.Err() != nil:
		return fmt.Errorf("run %s: no result after %v: %w", argv[0], timeout, ErrTimeout)
	case waitErr == nil:
		return nil
	}
	if st, ok := proc.StatusOf(waitErr); ok {
		return &ExitError{Argv: append([]string(nil), argv...), Code: st.Code, Signal: st.Signal, Limit: exceeded}
	}
	return fmt.Errorf("run %s: %w", argv[0], waitErr)
}

// closeGroup ends what is left of a command's group and removes it,
// returning what its limits recorded. A group that cannot be removed is
// logged: it holds no process that could still run.
func (s Sandbox) closeGroup(g *limits.Group) limits.Events {
	ev, err := g.Close()
	if err != nil {
		slog.Default().With("component", "pipeline").Warn("remove a build command's cgroup", "err", err)
	}
	return ev
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
