package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"path/filepath"

	"minivercel/deploy"
	"minivercel/pipeline"
	"minivercel/secret"
)

// openVars opens the database (shared: a running server's private cluster is
// used, not refused) and the variables under the master key, and finishes a
// key rotation that a crash interrupted.
func (c *common) openVars(ctx context.Context, log *slog.Logger, shared bool) (*database, *secret.Keyring, *secret.Vars, error) {
	keys, err := openKeyring(c)
	if err != nil {
		return nil, nil, nil, err
	}
	db, err := openDatabase(ctx, c, shared, log)
	if err != nil {
		return nil, nil, nil, err
	}
	vars := secret.NewVars(db.store, keys)
	if err := vars.RecoverRotation(ctx); err != nil {
		db.Close()
		return nil, nil, nil, err
	}
	return db, keys, vars, nil
}

// openVerb parses a verb command (see parseVerb) and opens the service for
// it; the caller closes the database.
func openVerb(ctx context.Context, group string, args []string, vs verbs, usage string, stderr io.Writer,
	flags func(*flag.FlagSet)) (verb string, fs *flag.FlagSet, db *database, svc *deploy.Service, err error) {
	verb, fs, c, err := parseVerb(group, args, vs, usage, stderr, flags)
	if err != nil {
		return "", nil, nil, nil, err
	}
	db, svc, err = c.openService(ctx, stderr)
	return verb, fs, db, svc, err
}

// openService opens what a subcommand needs to act through the service
// layer: the database, the variables and a build queue that only enqueues.
// The running server's workers carry out what it asks for (an activation is
// a job they pick up), so the subcommands work while the server runs.
func (c *common) openService(ctx context.Context, stderr io.Writer) (db *database, svc *deploy.Service, err error) {
	log, err := c.logger(stderr)
	if err != nil {
		return nil, nil, err
	}
	// The repositories are where the server keeps them: a rebuild reads the
	// branch's commit there.
	dir, err := c.absDataDir()
	if err != nil {
		return nil, nil, err
	}
	db, _, vars, err := c.openVars(ctx, log, true)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			db.Close()
		}
	}()
	q, err := pipeline.NewQueue(pipeline.Config{ReposDir: filepath.Join(dir, "repos")}, db.store, nil, nil, pipeline.Sandbox{}, false)
	if err != nil {
		return nil, nil, err
	}
	// The service's audit lines repeat what the command prints; they show
	// from --log-level debug on, warnings always.
	audit := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if c.logLevel == "debug" {
		audit = log
	}
	svc, err = deploy.New(deploy.Config{BaseDomain: c.baseDomain, Logger: audit}, db.store, vars, q)
	if err != nil {
		return nil, nil, err
	}
	return db, svc, nil
}
