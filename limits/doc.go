// Package limits caps what one process tree of the server's children may
// use: memory, process count and CPU weight, for each build command and
// each process of an app. The tree runs in a control group of its own,
// with cgroup v2 where the machine has it and the v1 memory, pids and cpu
// hierarchies where it has only those; with neither writable, rlimits are
// the last fallback (RLIMIT_DATA and RLIMIT_NPROC; never RLIMIT_AS, which
// breaks Node: V8 reserves far more address space than it uses).
//
// It is a package of its own, not part of proc, because it owns state of
// the machine rather than of one child: one parent cgroup per server
// installation (named from its data directory, so two servers on one
// machine never touch each other's groups), cleaned up at start after a
// crash, and the kernel's records of out-of-memory kills that turn into a
// build's failure reason. proc keeps the plumbing of one child; a Group
// adds itself to such a child before it starts and is closed after it
// ends.
//
// Placement is race-free: with v2 the child is created inside its group
// (clone3 with CLONE_INTO_CGROUP, SysProcAttr.UseCgroupFD); with v1 and
// rlimits it starts as a small shell that waits on a pipe until its pid is
// in the groups (or its rlimits set), then execs the command, so nothing it
// forks can escape.
package limits
