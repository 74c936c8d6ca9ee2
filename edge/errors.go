package edge

import "errors"

// ErrChecksumMismatch reports that an artifact's bytes do not hash to the
// sha256 recorded with its build. Nothing is extracted in that case.
var ErrChecksumMismatch = errors.New("artifact checksum mismatch")

// ErrUnsafeArchive reports an archive entry that extraction refuses: an
// absolute or escaping name, a write through a symlink, a symlink leaving the
// root, a hardlink, device or fifo. The wrapping error names the entry.
var ErrUnsafeArchive = errors.New("unsafe archive entry")

// ErrArchiveTooLarge reports an archive that exceeds the extraction Limits
// (total bytes or entry count): a guard against archive bombs.
var ErrArchiveTooLarge = errors.New("archive exceeds extraction limits")

// ErrUnknownSite is what a BuildLookup wraps when no build matches a
// project and slug; the edge answers such requests with 404.
var ErrUnknownSite = errors.New("unknown site")

// ErrAppStart reports that a server app's process could not be started.
var ErrAppStart = errors.New("app did not start")

// ErrUnhealthy reports that a server app started but did not pass its health
// check; the previous deployment keeps serving.
var ErrUnhealthy = errors.New("app failed its health check")

// ErrTooManyPreviews reports that a preview process could not start because
// RuntimeConfig.MaxPreviews previews run and every one has a request in
// flight; the client gets 503 and may try again.
var ErrTooManyPreviews = errors.New("too many previews running")
