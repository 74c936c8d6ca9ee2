package pipeline

import "errors"

// Sentinel errors of the build queue.
var (
	// ErrNoProject means a push named a project that does not exist.
	ErrNoProject = errors.New("project does not exist")
	// ErrBuildNotQueued means a job found its build already started or finished.
	ErrBuildNotQueued = errors.New("build is not queued")
)

// ErrActivationPanicked means an activation hit a bug and was stopped; the
// server log has the stack.
var ErrActivationPanicked = errors.New("activation panicked")

// ErrNotActivatable means a build cannot serve: it did not succeed or has no artifact.
var ErrNotActivatable = errors.New("build cannot be activated")

// ErrCollected means a build's artifact and extracted files were removed by
// retention (Config.KeepBuilds): it can no longer serve.
var ErrCollected = errors.New("build was collected")

// ErrInvalidFunctions means the api/ folder holds a function that cannot be
// routed or run here; the wrapping error names the file and the reason.
var ErrInvalidFunctions = errors.New("invalid api/ functions")

// ErrTakenOver means a build was given to another worker while this one
// ran it (this worker lost the database for longer than a heartbeat
// allows): this worker's attempt may neither deploy it nor record it.
var ErrTakenOver = errors.New("the build was taken over by another worker")
