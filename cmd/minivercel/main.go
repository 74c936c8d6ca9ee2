// Command minivercel is the whole server in one binary: git over SSH, the build
// queue, the edge that serves sites, and the admin subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"minivercel/deploy"
	"minivercel/hooks"
	"minivercel/internal/cliflag"
)

// version is set at link time by `make build`.
var version = "dev"

const usage = `minivercel: git push to deploy, on your own server

Usage:
  minivercel serve [flags]             run every role: git over SSH, builds, the edge
  minivercel migrate [flags]           apply database migrations and exit
  minivercel admin key add [--user NAME] [--name LABEL] KEY|-
  minivercel admin key list
  minivercel admin key remove ID|FINGERPRINT
  minivercel admin user set-password NAME [--password-stdin]
  minivercel admin token create|list|revoke ...      API tokens (also git over HTTP)
  minivercel project show|set <project> [--start-command CMD ...]
  minivercel deploy list|logs|redeploy|rollback|rebuild <project>
  minivercel env set|unset|list|import <project> ...   encrypted environment variables
  minivercel admin rotate-key                         re-encrypt every variable under a new key
  minivercel admin nodes                              the nodes on this database and their state
  minivercel domain add|remove|list <project> [domain]  custom domains (automatic TLS)
  minivercel deploy activate <project> <build-id>   roll back (or forward) to a build
  minivercel version

Every flag also reads the environment variable MINIVERCEL_<FLAG> (upper case,
dashes as underscores); --database-url also reads DATABASE_URL.
Run "minivercel serve -h" for the server's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, stop, args[1:], stdout, stderr)
	case "migrate":
		err = migrateCmd(ctx, args[1:], stdout, stderr)
	case "admin":
		err = admin(ctx, args[1:], stdin, stdout, stderr)
	case "deploy":
		err = deployCmd(ctx, args[1:], stdout, stderr)
	case "env":
		err = envCmd(ctx, args[1:], stdin, stdout, stderr)
	case "domain":
		err = domainCmd(ctx, args[1:], stdout, stderr)
	case "project":
		err = projectCmd(ctx, args[1:], stdout, stderr)
	case "hook":
		// Run by git inside receive-pack: hands the push to the server and copies
		// the build log back; git shows it to the pusher as "remote:" lines.
		if len(args) < 2 || args[1] != "post-receive" {
			fmt.Fprintln(stderr, "error: usage: minivercel hook post-receive")
			return 2
		}
		return hooks.RunPostReceive(ctx, stdin, stdout, stderr, os.Getenv)
	case "version", "--version":
		fmt.Fprintln(stdout, "minivercel", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "error: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "error: %s\n", ue.msg)
			return 2
		}
		// Bad input refused by the service is a usage error too: the same
		// words as the API and the panel, exit code 2.
		if errors.Is(err, deploy.ErrInvalid) {
			fmt.Fprintf(stderr, "error: %v\n", err)
			return 2
		}
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 1
	}
	return 0
}

// usageError is a mistake in the command line, reported with exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// common holds the flags every subcommand that touches the database takes.
type common struct {
	dataDir     string
	databaseURL string
	logLevel    string
	logFormat   string
	// baseDomain is the server's: a subcommand needs it to refuse its hosts
	// as custom domains. MINIVERCEL_BASE_DOMAIN serves serve and the
	// subcommands alike.
	baseDomain string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.dataDir, "data-dir", "./data", "directory for repositories, artifacts, keys and the private PostgreSQL")
	fs.StringVar(&c.databaseURL, "database-url", "", "PostgreSQL URL; empty runs a private PostgreSQL in the data directory")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "text", "text (logfmt: key=value) or json")
	fs.StringVar(&c.baseDomain, "base-domain", "localhost", "projects are served at <project>.<base-domain>")
}

// parseFlags parses args, flags and positional arguments in any order (as in
// `admin key add KEY --data-dir D`; "--" ends the flags), then fills every flag
// not given on the command line from MINIVERCEL_<FLAG> (and --database-url from
// DATABASE_URL as a last resort).
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := cliflag.Parse(fs, args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		name := "MINIVERCEL_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v := getenv(name)
		if v == "" && f.Name == "database-url" {
			name, v = "DATABASE_URL", getenv("DATABASE_URL")
		}
		// An empty variable counts as unset, as most tools treat it.
		if v != "" {
			if e := f.Value.Set(v); e != nil {
				err = usageError{fmt.Sprintf("%s=%q: %v", name, v, e)}
			}
		}
	})
	return err
}

func (c *common) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, usageError{fmt.Sprintf("--log-level %q: want debug, info, warn or error", c.logLevel)}
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.logFormat {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageError{fmt.Sprintf("--log-format %q: want text or json", c.logFormat)}
}

func (c *common) absDataDir() (string, error) {
	d, err := filepath.Abs(c.dataDir)
	if err != nil {
		return "", fmt.Errorf("resolve data dir: %w", err)
	}
	return d, nil
}
