// Package schema is minivercel's PostgreSQL layer and its one shared domain
// package: the embedded SQL migrations, the row types and their lifecycle
// enums, the typed queries on pgx, and the private PostgreSQL cluster the server
// starts when it is given no database URL.
//
// Every query is a method of Store, which runs on a pool or, through WithTx, on a
// transaction. Rows are read with the generic one and many helpers, and MapError
// is the single place where database errors become ErrNotFound, ErrConflict or
// ErrInvalid; callers test them with errors.Is.
//
// One file holds one entity's types and queries:
//
//	store.go        Store, Open, the one/many readers and MapError
//	users.go        users, their SSH keys and API tokens, passwords and sessions
//	projects.go     projects, their settings and the panel's summaries
//	builds.go       builds, their statuses and stages, branch previews
//	deployments.go  activations of builds and what serves production
//	logs.go         build log lines and deployments' runtime logs
//	envvars.go      sealed environment variables and the master-key lock
//	domains.go      custom domains, their validation and certificate status
//	certstore.go    certmagic's storage and locks for the whole cluster
//	nodes.go        the server processes on this database and their heartbeats
//	cluster.go      the private PostgreSQL supervisor
//	migrate.go      the embedded migrations
//	errors.go       the sentinel errors
//
// Tests get a cluster and a database of their own from package schematest.
package schema
