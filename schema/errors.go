package schema

import "errors"

// Sentinel errors returned by the typed queries. Callers test them with errors.Is;
// MapError is the one place that turns PostgreSQL errors into them.
var (
	// ErrNotFound means the row asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a unique constraint refused the write (a duplicate name or key).
	ErrConflict = errors.New("already exists")
	// ErrInvalid means a value failed validation before it reached the database.
	ErrInvalid = errors.New("invalid value")
	// ErrClusterInUse means another running process owns the private cluster.
	ErrClusterInUse = errors.New("private postgresql is in use by another process")
	// ErrClusterStart means the private PostgreSQL cluster could not be started.
	ErrClusterStart = errors.New("private postgresql did not start")
)
