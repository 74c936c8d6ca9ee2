// Package proc is the one place for the plumbing of child processes that
// every part of the server needs: starting a command in its own process
// group with an explicit environment, signalling that whole group, turning
// a command's output into lines, and the unprivileged system users builds
// and apps run as.
//
// Every caller (gitd over SSH and over HTTP, the build sandbox, the app
// runtime) shares one exit-code mapping and one idea of what a line is. The
// rules: a child gets its own process group so that hooks and build tools
// are signalled with it; cancellation
// sends a chosen signal to the group (SIGTERM for git, which must release its
// .lock files) instead of os/exec's SIGKILL to the leader only; WaitDelay is
// always set so that a grandchild holding a pipe cannot hang Wait; and the
// environment is never inherited, because the server's own holds the
// database URL and the master key.
package proc
