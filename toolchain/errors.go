package toolchain

import "errors"

var (
	// ErrNoVersion is returned when no published version matches a request.
	ErrNoVersion = errors.New("no matching version")
	// ErrIntegrity is returned when a downloaded tarball does not match the
	// registry's integrity field (or a packageManager field's hash).
	ErrIntegrity = errors.New("integrity check failed")
	// ErrTooLarge is returned when a registry answer or a tarball passes a
	// size bound.
	ErrTooLarge = errors.New("too large")
	// ErrBadTarball is returned for a tarball with an entry that could
	// leave its directory or is not a plain file or directory.
	ErrBadTarball = errors.New("unsafe tarball")
	// ErrRegistry is returned when the registry cannot be reached or
	// answers with an error.
	ErrRegistry = errors.New("registry request failed")
	// ErrBadSpec is returned for a version request that cannot be parsed.
	ErrBadSpec = errors.New("invalid version request")
)
