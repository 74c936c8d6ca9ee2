// Package blobs moves content-addressed files (artifacts, build source
// snapshots) between the nodes of one installation without a shared disk.
//
// A blob is named by the lowercase hex SHA-256 of its bytes. A Store keeps
// blobs; PG is the Store on the installation's PostgreSQL (schema's blobs and
// blob_chunks tables), and an object store can be another behind the same
// interface. A Cache is one node's local copy: Fetch downloads a blob once,
// verifies it and keeps it as <dir>/<sha>, and Adopt takes in a file the node
// produced itself so that it is never downloaded.
//
//	store.go  the Store contract, PG and the address check
//	cache.go  the node's verified local copies
//	errors.go the sentinel errors
package blobs
