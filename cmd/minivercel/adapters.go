package main

import (
	"context"
	"io"
	"path/filepath"

	"minivercel/deploy"
	"minivercel/pipeline"
	"minivercel/secret"
)

// openService opens what a subcommand needs to act through the service
// layer: the database, the variables and a build queue that only enqueues.
// The running server's workers carry out what it asks for (an activation is
// a job they pick up), so the subcommands work while the server runs.
func (c *common) openService(ctx context.Context, stderr io.Writer, baseDomain string) (*database, *deploy.Service, error) {
	keys, err := openKeyring(c)
	if err != nil {
		return nil, nil, err
	}
	db, err := c.open(ctx, stderr)
	if err != nil {
		return nil, nil, err
	}
	dir, err := c.absDataDir()
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	q, err := pipeline.NewQueue(pipeline.Config{ReposDir: filepath.Join(dir, "repos")}, db.store, nil, nil, pipeline.Sandbox{}, false)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	svc, err := deploy.New(deploy.Config{BaseDomain: baseDomain}, db.store, secret.NewVars(db.store, keys), q, nil)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return db, svc, nil
}
