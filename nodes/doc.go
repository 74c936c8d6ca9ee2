// Package nodes is what one server process knows of the others on the same
// PostgreSQL: the roles a process runs (gitd, worker, edge, panel), its
// stable id, and the heartbeat that keeps its row in the nodes table fresh.
//
// A node registers when it starts (schema.Store.RegisterNode), heartbeats
// every HeartbeatEvery, and records its stop when it shuts down. A node whose
// last heartbeat is older than DeadAfter, by the database's clock, is stale:
// it died or lost its database. Every time is PostgreSQL's now(), so clock
// skew between machines cannot make a node look dead.
//
//	roles.go     Role, Roles and ParseRoles for --roles
//	id.go        ID: the node's id, kept in <data-dir>/node-id
//	registry.go  Registry: register, heartbeat, stop; State of a listed node
//	errors.go    the sentinel errors
package nodes
