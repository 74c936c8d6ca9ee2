package limits

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Mode is how a Manager enforces limits.
type Mode int

// The ways of enforcing limits, best first.
const (
	// ModeCgroup2 uses one cgroup v2 group per tree.
	ModeCgroup2 Mode = iota + 1
	// ModeCgroup1 uses a group per tree in each of the v1 memory, pids and
	// (when mounted) cpu hierarchies.
	ModeCgroup1
	// ModeRlimit sets rlimits on the tree's first process, which everything
	// it starts inherits: memory per process, processes per user.
	ModeRlimit
)

// String implements fmt.Stringer: "cgroup v2", "cgroup v1", "rlimits".
func (m Mode) String() string {
	switch m {
	case ModeCgroup2:
		return "cgroup v2"
	case ModeCgroup1:
		return "cgroup v1"
	case ModeRlimit:
		return "rlimits"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// Valid reports whether m is one of the defined modes.
func (m Mode) Valid() bool { return m >= ModeCgroup2 && m <= ModeRlimit }

// DefaultRoot is where the cgroup file systems are mounted.
const DefaultRoot = "/sys/fs/cgroup"

// v1Controllers are the v1 hierarchies a group lives in; cpu is optional.
var v1Controllers = []string{"memory", "pids", "cpu"}

// closeTimeout bounds the wait for a group's processes to be gone.
const closeTimeout = 10 * time.Second

// Config configures a Manager.
type Config struct {
	// ID identifies the server installation, its absolute data directory:
	// its groups live under one parent named from a hash of it,
	// minivercel-<8 hex>, in each hierarchy. Two servers with different
	// IDs never touch each other's groups.
	ID string
	// Root is where the cgroup file systems are mounted: cgroup v2 itself,
	// or one directory per v1 hierarchy. Zero: DefaultRoot.
	Root string
	// Logger receives the choice of mode and clean-up problems. Zero:
	// slog.Default().
	Logger *slog.Logger
}

// Manager creates the groups of one server installation. Its methods are
// safe for concurrent use. A nil *Manager enforces nothing: NewGroup returns
// a nil *Group, whose methods do nothing.
type Manager struct {
	mode Mode
	// parents maps a controller to its parent directory: with v2 one entry
	// for every controller (""), with v1 one per mounted hierarchy.
	parents map[string]string
	// missing lists the controllers a v2 parent could not enable; their
	// limits are not enforced.
	missing []string
	seq     atomic.Int64
	log     *slog.Logger
}

// New returns the Manager of the installation cfg.ID. It picks cgroup v2
// when Root is a v2 mount with the memory controller, else the v1 memory and
// pids hierarchies under Root, else v2 without memory control, else
// rlimits; the choice is logged, with a warning when limits are weaker than
// a cgroup's. Groups left by an earlier run of this installation (a crash)
// are emptied and removed.
func New(cfg Config) *Manager {
	if cfg.Root == "" {
		cfg.Root = DefaultRoot
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	name := ParentName(cfg.ID)
	m := &Manager{mode: ModeRlimit, log: cfg.Logger.With("component", "limits")}
	var why []error
	v2 := filepath.Join(cfg.Root, "cgroup.controllers")
	controllers, v2err := os.ReadFile(v2)
	hasMemory := v2err == nil && containsWord(string(controllers), "memory")
	if hasMemory {
		err := m.setUpV2(filepath.Join(cfg.Root, name), string(controllers))
		if err == nil {
			return m.ready()
		}
		why = append(why, err)
	}
	if _, err := os.Stat(filepath.Join(cfg.Root, "memory", "cgroup.procs")); err == nil {
		err := m.setUpV1(cfg.Root, name)
		if err == nil {
			return m.ready()
		}
		why = append(why, err)
	}
	if v2err == nil && !hasMemory {
		err := m.setUpV2(filepath.Join(cfg.Root, name), string(controllers))
		if err == nil {
			return m.ready()
		}
		why = append(why, err)
	}
	m.mode, m.parents = ModeRlimit, nil
	attrs := []any{"root", cfg.Root}
	if len(why) > 0 {
		attrs = append(attrs, "err", errors.Join(why...))
	}
	m.log.Warn("no writable cgroup: builds and apps get rlimits only (memory per process, processes per user, no CPU weight)", attrs...)
	return m
}

// ParentName is the name of the parent group of installation id (see
// Config.ID) in each hierarchy: "minivercel-" and 8 hex characters.
func ParentName(id string) string {
	sum := sha256.Sum256([]byte("minivercel limits\x00" + id))
	return "minivercel-" + hex.EncodeToString(sum[:4])
}

func (m *Manager) ready() *Manager {
	if len(m.missing) > 0 {
		m.log.Warn("cgroup controllers missing: their limits are not enforced", "mode", m.mode, "controllers", m.missing)
	}
	for _, dir := range m.parents {
		m.removeLeftovers(dir)
	}
	m.log.Info("resource limits", "mode", m.mode.String(), "parents", m.parents)
	return m
}

func containsWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

// setUpV2 creates the parent group and enables in it the controllers its
// children need. The parent sits at the root of the hierarchy, where the
// rule "no processes in a group that delegates controllers" does not apply,
// and the server's own group is never changed.
func (m *Manager) setUpV2(parent, available string) error {
	if err := os.Mkdir(parent, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create cgroup %s: %w", parent, err)
	}
	root := filepath.Dir(parent)
	m.missing = nil
	for _, c := range []string{"memory", "pids", "cpu"} {
		if !containsWord(available, c) {
			m.missing = append(m.missing, c)
			continue
		}
		// The root usually delegates them already (systemd does); then
		// this write changes nothing.
		_ = os.WriteFile(filepath.Join(root, "cgroup.subtree_control"), []byte("+"+c), 0)
		if err := os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), []byte("+"+c), 0); err != nil {
			m.missing = append(m.missing, c)
		}
	}
	m.mode, m.parents = ModeCgroup2, map[string]string{"": parent}
	return nil
}

// setUpV1 creates the parent group in the memory, pids and cpu hierarchies;
// memory and pids are required, cpu is used when it is there.
func (m *Manager) setUpV1(root, name string) error {
	parents := map[string]string{}
	m.missing = nil
	for _, c := range v1Controllers {
		dir := filepath.Join(root, c, name)
		if _, err := os.Stat(filepath.Join(root, c, "cgroup.procs")); err != nil {
			if c == "cpu" {
				m.missing = append(m.missing, c)
				continue
			}
			return fmt.Errorf("find cgroup v1 %s hierarchy: %w", c, err)
		}
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			if c == "cpu" {
				m.missing = append(m.missing, c)
				continue
			}
			return fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		parents[c] = dir
	}
	m.mode, m.parents = ModeCgroup1, parents
	return nil
}

// removeLeftovers empties and removes the groups under parent.
func (m *Manager) removeLeftovers(parent string) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	n := 0
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if err := removeGroup(filepath.Join(parent, e.Name()), m.mode); err != nil {
			m.log.Warn("remove cgroup left from an earlier run", "dir", filepath.Join(parent, e.Name()), "err", err)
			continue
		}
		n++
	}
	if n > 0 {
		m.log.Warn("removed cgroups left from an earlier run", "parent", parent, "count", n)
	}
}

// Mode returns how limits are enforced; a nil Manager reports 0 (none).
func (m *Manager) Mode() Mode {
	if m == nil {
		return 0
	}
	return m.mode
}

// Groups lists the names of the Manager's groups that exist now, in its
// first hierarchy: none once every tree was closed.
func (m *Manager) Groups() ([]string, error) {
	if m == nil || len(m.parents) == 0 {
		return nil, nil
	}
	dir := m.parents[""]
	if m.mode == ModeCgroup1 {
		dir = m.parents["memory"]
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list cgroups: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Close removes every group of the Manager that is left, ending its
// processes, and the parent groups. Groups must not be created after it.
func (m *Manager) Close() error {
	if m == nil {
		return nil
	}
	var errs []error
	for _, dir := range m.parents {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.IsDir() {
				errs = append(errs, removeGroup(filepath.Join(dir, e.Name()), m.mode))
			}
		}
		if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}

// Group is the cgroup (or the rlimits) of one process tree. It is used by
// one goroutine: NewGroup, Prepare, Start, then the process's Wait, then
// Close.
type Group struct {
	mode   Mode
	limits Limits
	// dirs maps a controller to the group's directory (see
	// Manager.parents).
	dirs map[string]string
	// v2 is the open v2 group directory handed to clone3.
	v2 *os.File
	// gateR and gateW hold a v1 or rlimit child until it is placed.
	gateR, gateW *os.File
	closed       bool
}

// NewGroup creates the group of one process tree with limits l (zero fields
// are not limited). name says what the tree is ("build", "app-blog"); a
// number makes it unique. A nil Manager returns a nil Group.
func (m *Manager) NewGroup(name string, l Limits) (*Group, error) {
	if m == nil {
		return nil, nil
	}
	g := &Group{mode: m.mode, limits: l, dirs: map[string]string{}}
	if m.mode == ModeRlimit {
		return g, nil
	}
	leaf := fmt.Sprintf("%s-%d", name, m.seq.Add(1))
	for c, parent := range m.parents {
		dir := filepath.Join(parent, leaf)
		if err := os.Mkdir(dir, 0o755); err != nil {
			g.removeDirs()
			return nil, fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		g.dirs[c] = dir
	}
	if err := g.setLimits(); err != nil {
		g.removeDirs()
		return nil, err
	}
	if m.mode == ModeCgroup2 {
		f, err := os.Open(g.dirs[""])
		if err != nil {
			g.removeDirs()
			return nil, fmt.Errorf("open cgroup: %w", err)
		}
		g.v2 = f
	}
	return g, nil
}

// setLimits writes the limits into the group's files.
func (g *Group) setLimits() error {
	l := g.limits
	type setting struct {
		controller, file string
		value            int64
		set, optional    bool
	}
	var settings []setting
	if g.mode == ModeCgroup2 {
		settings = []setting{
			{"", "memory.max", l.Memory, l.Memory > 0, false},
			// Swap would only make a hog slower to stop.
			{"", "memory.swap.max", 0, l.Memory > 0, true},
			// One process killed by the limit takes the whole tree with it:
			// a build tool whose worker died would otherwise hang or go on
			// half-done.
			{"", "memory.oom.group", 1, l.Memory > 0, true},
			{"", "pids.max", l.Pids, l.Pids > 0, false},
			{"", "cpu.weight", l.CPUWeight, l.CPUWeight > 0, false},
		}
	} else {
		settings = []setting{
			{"memory", "memory.limit_in_bytes", l.Memory, l.Memory > 0, false},
			{"memory", "memory.memsw.limit_in_bytes", l.Memory, l.Memory > 0, true},
			{"pids", "pids.max", l.Pids, l.Pids > 0, false},
			{"cpu", "cpu.shares", max(l.CPUWeight*1024/100, 2), l.CPUWeight > 0, false},
		}
	}
	for _, s := range settings {
		dir, ok := g.dirs[s.controller]
		if !s.set || !ok {
			continue // not limited, or a missing controller (logged by New)
		}
		path := filepath.Join(dir, s.file)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		err := os.WriteFile(path, []byte(strconv.FormatInt(s.value, 10)), 0)
		if err != nil && !s.optional {
			return fmt.Errorf("set %s: %w", path, err)
		}
	}
	return nil
}

// Prepare sets up cmd, not started yet, so that its process starts under
// the group's limits: with cgroup v2 it is created inside the group; with
// v1 and rlimits the command becomes a small /bin/sh that waits until Start
// has placed it, then execs the original program with its arguments
// (cmd.Args[0] becomes cmd.Path). A nil Group leaves cmd as it is.
func (g *Group) Prepare(cmd *exec.Cmd) error {
	if g == nil {
		return nil
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if g.mode == ModeCgroup2 {
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = int(g.v2.Fd())
		return nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("create limits gate: %w", err)
	}
	g.gateR, g.gateW = r, w
	fd := 3 + len(cmd.ExtraFiles)
	cmd.ExtraFiles = append(cmd.ExtraFiles, r)
	// read returns at EOF, when Start closes the write end. The name is in
	// MINIVERCEL_*, which no project variable may use. The gate's
	// descriptor is closed for the program.
	script := fmt.Sprintf(`read -r MINIVERCEL_GATE <&%d; unset MINIVERCEL_GATE; exec "$@" %d<&-`, fd, fd)
	cmd.Args = append([]string{"/bin/sh", "-c", script, "minivercel-limits", cmd.Path}, cmd.Args[1:]...)
	cmd.Path = "/bin/sh"
	return nil
}

// Start places the started process pid (of a command given to Prepare) in
// the group, or sets its rlimits, and then lets it run. When that fails the
// process is killed and the error returned: a tree never runs unlimited
// unnoticed. A nil Group does nothing.
func (g *Group) Start(pid int) error {
	if g == nil {
		return nil
	}
	if g.gateR != nil {
		g.gateR.Close() // the child holds its own copy
	}
	err := g.place(pid)
	if err != nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if g.gateW != nil {
		g.gateW.Close()
		g.gateR, g.gateW = nil, nil
	}
	return err
}

func (g *Group) place(pid int) error {
	switch g.mode {
	case ModeCgroup2:
		return nil // placed by clone3
	case ModeCgroup1:
		for _, dir := range g.dirs {
			path := filepath.Join(dir, "cgroup.procs")
			if err := os.WriteFile(path, []byte(strconv.Itoa(pid)), 0); err != nil {
				return fmt.Errorf("move process %d into %s: %w", pid, path, err)
			}
		}
		return nil
	}
	if g.limits.Memory > 0 {
		lim := unix.Rlimit{Cur: uint64(g.limits.Memory), Max: uint64(g.limits.Memory)}
		if err := unix.Prlimit(pid, unix.RLIMIT_DATA, &lim, nil); err != nil {
			return fmt.Errorf("set memory rlimit of process %d: %w", pid, err)
		}
	}
	if g.limits.Pids > 0 {
		lim := unix.Rlimit{Cur: uint64(g.limits.Pids), Max: uint64(g.limits.Pids)}
		if err := unix.Prlimit(pid, unix.RLIMIT_NPROC, &lim, nil); err != nil {
			return fmt.Errorf("set process rlimit of process %d: %w", pid, err)
		}
	}
	return nil
}

// Events is what the kernel recorded about a group's limits.
type Events struct {
	// OOMKills counts the processes the memory limit killed.
	OOMKills int64
	// ForkRefusals counts the forks the process limit refused.
	ForkRefusals int64
	// Limits are the group's limits.
	Limits Limits
}

// Err returns an *ExceededError when a limit stopped the tree, the memory
// limit first, else nil.
func (e Events) Err() error {
	switch {
	case e.OOMKills > 0:
		return &ExceededError{Err: ErrOutOfMemory, Limit: e.Limits.Memory}
	case e.ForkRefusals > 0:
		return &ExceededError{Err: ErrTooManyProcesses, Limit: e.Limits.Pids}
	}
	return nil
}

// Close ends every process still in the group, reads what the kernel
// recorded about its limits and removes it. Call it after the tree's first
// process was waited for. With rlimits it only reports the limits. A nil
// Group returns zero Events.
func (g *Group) Close() (Events, error) {
	if g == nil {
		return Events{}, nil
	}
	ev := Events{Limits: g.limits}
	if g.closed {
		return ev, nil
	}
	g.closed = true
	for _, f := range []*os.File{g.v2, g.gateR, g.gateW} {
		if f != nil {
			f.Close()
		}
	}
	if g.mode == ModeRlimit {
		return ev, nil
	}
	if dir, ok := g.dirs[g.memoryKey()]; ok {
		if g.mode == ModeCgroup2 {
			ev.OOMKills = readCounter(filepath.Join(dir, "memory.events"), "oom_kill")
		} else {
			ev.OOMKills = readCounter(filepath.Join(dir, "memory.oom_control"), "oom_kill")
		}
	}
	if dir, ok := g.dirs[g.pidsKey()]; ok {
		ev.ForkRefusals = readCounter(filepath.Join(dir, "pids.events"), "max")
	}
	return ev, g.removeDirs()
}

func (g *Group) memoryKey() string {
	if g.mode == ModeCgroup2 {
		return ""
	}
	return "memory"
}

func (g *Group) pidsKey() string {
	if g.mode == ModeCgroup2 {
		return ""
	}
	return "pids"
}

// removeDirs removes the group's directories, ending their processes.
func (g *Group) removeDirs() error {
	var errs []error
	for _, dir := range g.dirs {
		errs = append(errs, removeGroup(dir, g.mode))
	}
	return errors.Join(errs...)
}

// readCounter returns the value of key in a flat-keyed cgroup file
// ("oom_kill 1"), or 0.
func readCounter(path, key string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == key {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// removeGroup kills every process in the group at dir until none is left,
// then removes it. A fork bomb cannot outrun it: each round kills every
// process listed, and the group's process limit bounds how many a round
// finds.
func removeGroup(dir string, mode Mode) error {
	deadline := time.Now().Add(closeTimeout)
	if mode == ModeCgroup2 {
		// cgroup.kill (Linux 5.14) ends the whole tree at once.
		_ = os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
	}
	for {
		pids, err := groupPids(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if len(pids) == 0 {
			// A process killed a moment ago may still hold the group
			// until its parent reaps it: rmdir then says EBUSY.
			err := os.Remove(dir)
			if err == nil || errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
				return fmt.Errorf("remove cgroup %s: %w", dir, err)
			}
		} else if time.Now().After(deadline) {
			return fmt.Errorf("remove cgroup %s: %d processes still in it", dir, len(pids))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// groupPids lists the processes in the group at dir.
func groupPids(dir string) ([]int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
