package pipeline

import (
	"errors"
	"fmt"

	"minivercel/schema"
)

// Sentinel errors of the build steps (checkout, detection, sandboxed commands,
// packing). Callers test them with errors.Is; the wrapped message carries the
// detail a user needs.
var (
	// ErrUnsafePath means a path in a commit or a build output would leave its
	// directory: an absolute or ".." path, a ".git" component, or a symlink
	// whose target resolves outside the tree.
	ErrUnsafePath = errors.New("unsafe path")

	// ErrCommitNotFound means the commit to build is not in the repository
	// (for example it was force-pushed away and pruned).
	ErrCommitNotFound = errors.New("commit not found")

	// ErrNeverBuilt means a commit to rebuild was never built on a branch,
	// so which branch it is for is unknown. It wraps schema.ErrNotFound.
	ErrNeverBuilt = fmt.Errorf("this commit was never built on a branch: push it to the branch it is for: %w", schema.ErrNotFound)

	// ErrUndetectable means Detect found nothing it knows how to build or serve.
	ErrUndetectable = errors.New("cannot detect how to build this project")

	// ErrInvalidPackageJSON means package.json could not be parsed.
	ErrInvalidPackageJSON = errors.New("invalid package.json")

	// ErrInvalidProcfile means the Procfile has a line that is not
	// "name: command", or a web process without a command or twice.
	ErrInvalidProcfile = errors.New("invalid Procfile")

	// ErrInvalidSettings means a project's build settings are unusable, such
	// as an unknown framework or an output directory outside the project.
	ErrInvalidSettings = errors.New("invalid build settings")

	// ErrUnservable means a project builds something this server cannot
	// run, such as a server bundle with no start command: serving it as
	// files would publish the server's code, so the build fails instead.
	ErrUnservable = errors.New("build output cannot be served here")

	// ErrTooLarge means a build output or its artifact is over its size
	// limit (PackOptions).
	ErrTooLarge = errors.New("build output too large")

	// ErrNoOutput means the build finished but its output directory is missing.
	ErrNoOutput = errors.New("build output not found")

	// ErrCommandFailed means a sandboxed command exited non-zero or was killed
	// by a signal; errors.As with *ExitError gives the exit code.
	ErrCommandFailed = errors.New("command failed")

	// ErrTimeout means a sandboxed command ran past Sandbox.Timeout and its
	// process group was killed.
	ErrTimeout = errors.New("command timed out")
)
