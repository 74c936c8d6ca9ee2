package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5/pgxpool"

	"minivercel/pipeline"
	"minivercel/schema"
)

// database is an open, migrated database and, when no URL was given, the private
// cluster behind it.
type database struct {
	pool    *pgxpool.Pool
	store   *schema.Store
	cluster *schema.Cluster
}

func (d *database) Close() {
	d.pool.Close()
	if d.cluster != nil {
		_ = d.cluster.Stop()
	}
}

// openDatabase connects to --database-url, or runs the private cluster in the
// data directory. shared lets an admin command use the cluster of a running
// server instead of refusing.
func openDatabase(ctx context.Context, c *common, shared bool, log *slog.Logger) (*database, error) {
	dsn := c.databaseURL
	var cluster *schema.Cluster
	if dsn == "" {
		dir, err := c.absDataDir()
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
		cluster, err = schema.StartCluster(ctx, schema.ClusterConfig{
			Dir: filepath.Join(dir, "postgres"), Shared: shared, Logger: log,
		})
		if errors.Is(err, schema.ErrClusterInUse) {
			return nil, fmt.Errorf("%w: is another minivercel serve running with --data-dir %s?", err, dir)
		}
		if err != nil {
			return nil, err
		}
		dsn = cluster.DSN()
	}
	pool, err := schema.Open(ctx, dsn)
	if err != nil {
		if cluster != nil {
			_ = cluster.Stop()
		}
		return nil, err
	}
	db := &database{pool: pool, store: schema.NewStore(pool), cluster: cluster}
	if err := migrateAll(ctx, pool); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func migrateAll(ctx context.Context, pool *pgxpool.Pool) error {
	if err := schema.Migrate(ctx, pool); err != nil {
		return err
	}
	return pipeline.MigrateQueue(ctx, pool)
}

func migrateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c := subcommand("migrate", stderr)
	if err := parseFlags(fs, args, os.Getenv); err != nil {
		return err
	}
	db, err := c.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	fmt.Fprintln(stdout, "migrations applied")
	return nil
}

// verbs maps a command's verbs to how many arguments each takes: at least,
// at most (-1: any number).
type verbs map[string][2]int

// parseVerb parses `<group> <verb> [arguments] [flags]`: flags registers the
// verb's own flags on top of the common ones; a verb that is not one of vs,
// or a wrong number of arguments, is the usage error.
func parseVerb(group string, args []string, vs verbs, usage string, stderr io.Writer, flags func(*flag.FlagSet)) (verb string, fs *flag.FlagSet, c *common, err error) {
	if len(args) == 0 {
		return "", nil, nil, usageError{usage}
	}
	fs, c = subcommand(group+" "+args[0], stderr)
	if flags != nil {
		flags(fs)
	}
	if err := parseFlags(fs, args[1:], os.Getenv); err != nil {
		return "", nil, nil, err
	}
	n, ok := vs[args[0]]
	if !ok || fs.NArg() < n[0] || (n[1] >= 0 && fs.NArg() > n[1]) {
		return "", nil, nil, usageError{usage}
	}
	return args[0], fs, c, nil
}

// subcommand returns a subcommand's flag set with the flags every subcommand
// takes.
func subcommand(name string, stderr io.Writer) (*flag.FlagSet, *common) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &common{}
	c.register(fs)
	return fs, c
}

// open opens the database for an admin subcommand: it uses the running
// server's private cluster when there is one.
func (c *common) open(ctx context.Context, stderr io.Writer) (*database, error) {
	log, err := c.logger(stderr)
	if err != nil {
		return nil, err
	}
	return openDatabase(ctx, c, true, log)
}
