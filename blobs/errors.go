package blobs

import "errors"

// ErrNotFound means no complete blob has the sha asked for.
var ErrNotFound = errors.New("blob not found")

// ErrCorrupt means bytes do not match their blob's sha256 or size: a writer
// gave other bytes than it named, or stored bytes were altered. Corrupt bytes
// are never kept, neither in a Store nor in a Cache.
var ErrCorrupt = errors.New("blob does not match its sha256")

// ErrInvalid means a blob address is not 64 lowercase hex digits, or a size
// is negative.
var ErrInvalid = errors.New("invalid blob address or size")
