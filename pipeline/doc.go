// Package pipeline is the build job: it checks out a pushed commit from the
// bare repository (go-git), detects what kind of app it is, installs and
// builds it in a sandbox as an unprivileged user with the project's
// variables, packs the output into a checksummed artifact and hands
// production builds to the Activator. It also owns the log broker that
// stores and fans out every build's log lines, and the River queue whose
// workers run builds inside the server, never as children of a git hook.
//
// The sandbox runs its commands through package proc (own process group,
// one ordered output stream, the group killed when a step ends), and cuts
// their output into log lines with proc.LineWriter.
package pipeline
