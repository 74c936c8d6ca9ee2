package sshcmd

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"minivercel/apijson"
	"minivercel/deploy"
	"minivercel/hosts"
	"minivercel/internal/cliflag"
	"minivercel/pipeline"
	"minivercel/schema"
)

// Store is what the commands read directly, as the panel does: listings and
// logs, which no rule guards. *schema.Store implements it. Methods are safe
// for concurrent use; a missing row wraps schema.ErrNotFound; ctx cancels.
type Store interface {
	UserByID(ctx context.Context, id int64) (schema.User, error)
	ProjectSummaries(ctx context.Context) ([]schema.ProjectSummary, error)
	ListBuilds(ctx context.Context, projectID int64) ([]schema.Build, error)
	ActiveBuild(ctx context.Context, projectID int64) (schema.Build, error)
	ListDeployments(ctx context.Context, projectID int64) ([]schema.Deployment, error)
	LogPage(ctx context.Context, buildID int64, afterSeq, limit int) ([]schema.LogLine, error)
	RuntimeLogs(ctx context.Context, deploymentID, afterSeq int64, limit int) ([]schema.RuntimeLogLine, error)
	LastRuntimeSeq(ctx context.Context, deploymentID int64) (int64, error)
}

// Logs follows build logs as they are written. *pipeline.Queue implements
// it: Follow sends every line so far, each new one, then a Done event, and
// closes the channel after Done or when ctx ends.
type Logs interface {
	Follow(ctx context.Context, buildID int64) (<-chan pipeline.Event, error)
}

// Config configures Commands.
type Config struct {
	// BaseDomain names the hosts in URLs. Zero: "localhost".
	BaseDomain string
	// URL turns a host into the URL people reach it at (scheme and port).
	// Zero: "http://" + host.
	URL func(host string) string
	// Logger receives internal failures (the user only reads that one
	// happened). Zero: slog.Default().
	Logger *slog.Logger
	// PollInterval is how often `logs -f` looks for new runtime log lines.
	// Zero: DefaultPollInterval.
	PollInterval time.Duration
	// ActivateTimeout bounds how long rollback and redeploy wait for the
	// build to serve. Zero: DefaultActivateTimeout.
	ActivateTimeout time.Duration
}

// Defaults of Config.
const (
	DefaultPollInterval    = 500 * time.Millisecond
	DefaultActivateTimeout = 10 * time.Minute
)

// Commands runs the commands. It is safe for concurrent use.
type Commands struct {
	cfg   Config
	svc   *deploy.Service
	store Store
	logs  Logs
	hosts hosts.Scheme
	urls  apijson.URLs
	log   *slog.Logger
	// followers counts the logs -f running, in all and per user: each
	// reads the database twice a second, so their number is bounded.
	followMu  sync.Mutex
	following map[int64]int
	followAll int
}

// New returns the commands acting through svc.
func New(cfg Config, svc *deploy.Service, store Store, logs Logs) *Commands {
	cfg.BaseDomain = cmp.Or(cfg.BaseDomain, "localhost")
	if cfg.URL == nil {
		cfg.URL = func(host string) string { return "http://" + host }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.PollInterval = cmp.Or(cfg.PollInterval, DefaultPollInterval)
	cfg.ActivateTimeout = cmp.Or(cfg.ActivateTimeout, DefaultActivateTimeout)
	names := hosts.New(cfg.BaseDomain)
	return &Commands{cfg: cfg, svc: svc, store: store, logs: logs, hosts: names, following: map[int64]int{},
		urls: apijson.URLs{Hosts: names, URL: cfg.URL}, log: cfg.Logger.With("component", "sshcmd")}
}

// Help is what `help` prints, and what an unknown command gets.
const Help = `usage: ssh git@HOST COMMAND [ARGUMENTS]   (with the key you push with)

  help                                      this text
  projects                                  every project, its latest build and what is live
  builds PROJECT                            a project's builds; the live one is marked
  logs PROJECT [-f] [--lines N]             the live app's runtime log; -f follows it
  logs PROJECT --build N [-f]               a build's log; -f follows it to its end
  env list PROJECT                          variables, values masked
  env set PROJECT KEY=VALUE... [--target production|preview|all]
  env unset PROJECT KEY... [--target production|preview]
  env import PROJECT [--target ...] < .env  variables from a .env file on stdin
  rollback PROJECT [BUILD]                  make the previous live build (or BUILD) live again
  redeploy PROJECT                          restart the live build with the current variables
  rebuild PROJECT [BRANCH|COMMIT]           build again (default: the production branch)
  domains list PROJECT
  domains add|remove PROJECT DOMAIN
  keys list
  keys add [--name LABEL] < KEY.pub         add an SSH key of yours
  keys remove ID|FINGERPRINT
  tokens list
  tokens create [--name LABEL]              an API token, shown once
  tokens revoke ID

Every command takes --json: the API's JSON instead of a table.
Exit status: 0 done, 1 failed or refused (the reason on stderr), 2 bad command line.
Words are split as a shell would split them, quotes included, and nothing is
expanded: ssh git@HOST "env set blog 'GREETING=hello world'".
`

// RunCommand runs a command line as the user with the id given
// (gitd.CommandRunner): it splits line (Split) and calls Run.
func (c *Commands) RunCommand(ctx context.Context, userID int64, line string, stdin io.Reader, stdout, stderr io.Writer) int {
	args, err := Split(line)
	if err != nil {
		fmt.Fprintf(stderr, "error: %s\n", strings.TrimPrefix(err.Error(), ErrUsage.Error()+": "))
		return 2
	}
	user, err := c.store.UserByID(ctx, userID)
	if err != nil {
		// The key was found a moment ago: its user was deleted since, or
		// the database failed.
		c.log.Error("read the user of an ssh key", "user_id", userID, "err", err)
		fmt.Fprintln(stderr, "error: internal error while reading your account; please try again later")
		return 1
	}
	return c.Run(ctx, user, args, stdin, stdout, stderr)
}

// Run runs one command as user and returns its exit status. ctx ends the
// command (a followed log stops, an activation is abandoned: it may still
// finish on the server).
func (c *Commands) Run(ctx context.Context, user schema.User, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "error: there is no shell here; these are the commands:\n\n"+Help)
		return 2
	}
	r := &request{ctx: ctx, user: user, stdin: stdin, stdout: stdout, stderr: stderr}
	var err error
	switch args[0] {
	case "help", "--help", "-h":
		fmt.Fprint(stdout, Help)
		return 0
	case "projects":
		err = c.projects(r, args[1:])
	case "builds":
		err = c.builds(r, args[1:])
	case "logs":
		err = c.logsCmd(r, args[1:])
	case "env":
		err = c.env(r, args[1:])
	case "rollback", "redeploy":
		err = c.activate(r, args[0], args[1:])
	case "rebuild":
		err = c.rebuild(r, args[1:])
	case "domains":
		err = c.domains(r, args[1:])
	case "keys":
		err = c.keys(r, args[1:])
	case "tokens":
		err = c.tokens(r, args[1:])
	default:
		fmt.Fprintf(stderr, "error: unknown command %q\n\n%s", truncate(args[0], 40), Help)
		return 2
	}
	return c.exit(r, args[0], err)
}

// exit reports err and returns the exit status for it.
func (c *Commands) exit(r *request, command string, err error) int {
	switch e := deploy.AsError(err); {
	case err == nil:
		return 0
	case errors.Is(err, ErrUsage):
		fmt.Fprintf(r.stderr, "error: %s\n", strings.TrimPrefix(err.Error(), ErrUsage.Error()+": "))
		return 2
	case e != nil:
		// The service's words, as the API answers them.
		fmt.Fprintf(r.stderr, "error: %s\n", e.Msg)
		return 1
	case errors.Is(err, errBuildFailed), errors.Is(err, ErrBusy):
		fmt.Fprintf(r.stderr, "error: %v\n", err)
		return 1
	case errors.Is(err, errGone), r.ctx.Err() != nil:
		// The client went away or asked to stop: nobody reads an error.
		return 1
	}
	c.log.Error("ssh command failed", "command", command, "user", r.user.Name, "err", err)
	fmt.Fprintln(r.stderr, "error: internal error; please try again later")
	return 1
}

// request is one command being run.
type request struct {
	ctx            context.Context
	user           schema.User
	stdin          io.Reader
	stdout, stderr io.Writer
	json           bool
}

// usage is a malformed command line: the usage line of the command.
func usage(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUsage}, args...)...)
}

// parse parses a command's flags, which may come before, between or after
// its arguments (`logs blog -f`), and checks the number of arguments
// (max < 0: no limit). Every command takes --json.
func (r *request) parse(use string, args []string, min, max int, define func(*flag.FlagSet)) ([]string, error) {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&r.json, "json", false, "")
	if define != nil {
		define(fs)
	}
	if err := cliflag.Parse(fs, args); err != nil {
		return nil, usage("%v\nusage: %s", err, use)
	}
	words := fs.Args()
	if len(words) < min || (max >= 0 && len(words) > max) {
		return nil, usage("usage: %s", use)
	}
	return words, nil
}

// verb splits "group VERB ..." and refuses a verb the group does not have.
func verb(group string, args []string, verbs ...string) (string, []string, error) {
	if len(args) > 0 {
		for _, v := range verbs {
			if args[0] == v {
				return v, args[1:], nil
			}
		}
	}
	return "", nil, usage("usage: %s %s ... (see help)", group, strings.Join(verbs, "|"))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
