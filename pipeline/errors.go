package pipeline

import "errors"

// Sentinel errors of the build queue.
var (
	// ErrNoProject means a push named a project that does not exist.
	ErrNoProject = errors.New("project does not exist")
	// ErrBuildNotQueued means a job found its build already started or finished.
	ErrBuildNotQueued = errors.New("build is not queued")
)

// ErrNotActivatable means a build cannot serve: it did not succeed or has no artifact.
var ErrNotActivatable = errors.New("build cannot be activated")
