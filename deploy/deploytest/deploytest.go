// Package deploytest starts the real deploy stack for the tests of the
// packages built on it (deploy, panel, cmd): a fresh PostgreSQL database
// (schematest), the variables under a fresh master key, an edge, the
// activator, the build queue and the service, with every directory they need.
// Nothing in it is a stand-in. The test binary's TestMain must call Main.
package deploytest

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"minivercel/deploy"
	"minivercel/edge"
	"minivercel/internal/testenv"
	"minivercel/pipeline"
	"minivercel/schema"
	"minivercel/schema/schematest"
	"minivercel/secret"
)

// Main runs a test binary whose tests use stacks: every test database is a
// copy of one template that has River's tables too. Call it from TestMain.
func Main(m *testing.M) {
	schematest.MainWith(m, schematest.Options{Migrate: pipeline.MigrateQueue})
}

// BaseDomain is the stack's base domain unless Options says otherwise.
const BaseDomain = "test.localhost"

// Options shape a Stack.
type Options struct {
	// BaseDomain names the hosts. Zero: BaseDomain.
	BaseDomain string
	// Work starts the queue's workers: builds and activations run. Without
	// it the queue only enqueues, as in a process that runs no worker.
	Work bool
	// Sandbox runs builds as the unprivileged build user, as the server
	// does. Zero: builds run as the test's own user.
	Sandbox bool
	// Runtime configures the edge's server apps.
	Runtime edge.RuntimeConfig
	// Logger receives every part's logs. Zero: discarded (warnings on
	// stderr with go test -v).
	Logger *slog.Logger
	// KeepBuilds is the queue's retention count (pipeline.Config.KeepBuilds).
	// Zero: pipeline.DefaultKeepBuilds.
	KeepBuilds int
	// MasterKeyFile is where the master key lives, created when missing (a
	// CLI run on the same data directory shares it). Zero: a fresh key in
	// memory.
	MasterKeyFile string
}

// Stack is the running deploy stack of one test.
type Stack struct {
	// DSN reaches the stack's database, for a CLI run against it.
	DSN       string
	Store     *schema.Store
	Vars      *secret.Vars
	Edge      *edge.Server
	Activator *deploy.Activator
	Broker    *pipeline.Broker
	Queue     *pipeline.Queue
	Service   *deploy.Service
	Logger    *slog.Logger
	// Root holds repos/, builds/, artifacts/ and deployments/; it is 0711
	// and outside t.TempDir (whose parents are 0700), so the build user and
	// the app users reach what they must.
	Root string
	// Admin is an administrator to act as.
	Admin schema.User

	opts   Options
	builds atomic.Int64 // numbers the builds Build records
}

// New starts a Stack; everything stops when the test ends.
func New(t testing.TB, o Options) *Stack {
	t.Helper()
	ctx := context.Background()
	if o.BaseDomain == "" {
		o.BaseDomain = BaseDomain
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
		if testing.Verbose() {
			o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		}
	}
	s := &Stack{DSN: schematest.DSN(t), Logger: o.Logger, opts: o}
	pool, err := schema.Open(ctx, s.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s.Store = schema.NewStore(pool)
	// River's tables come with the template database (Main), not migrated
	// again for every test.
	var queue *string
	if err := pool.QueryRow(ctx, `SELECT to_regclass('river_job')::text`).Scan(&queue); err != nil || queue == nil {
		t.Fatalf("the test database has no River tables (%v): call deploytest.Main from TestMain", err)
	}
	root := testenv.ShortDir(t, "mvstack")
	s.Root = root
	if err := os.Chmod(root, 0o711); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"repos", "builds", "artifacts", "deployments"} {
		if err := os.MkdirAll(s.Dir(d), 0o711); err != nil {
			t.Fatal(err)
		}
	}
	if o.MasterKeyFile == "" {
		s.Vars = NewVars(t, s.Store)
	} else {
		keys, err := secret.LoadKeyring("", o.MasterKeyFile)
		if err != nil {
			t.Fatal(err)
		}
		s.Vars = secret.NewVars(s.Store, keys)
	}
	s.Edge = s.NewEdge(t)
	s.Activator = deploy.NewActivator(s.Edge, s.Store, s.Vars, o.Logger)
	sandbox := pipeline.Sandbox{}
	if o.Sandbox {
		if sandbox, err = pipeline.BuildUser(); err != nil {
			t.Fatal(err)
		}
	}
	s.Broker = pipeline.NewBroker(s.Store, o.Logger)
	s.Queue, err = pipeline.NewQueue(pipeline.Config{
		ReposDir: s.Dir("repos"), WorkDir: s.Dir("builds"), ArtifactsDir: s.Dir("artifacts"), DeploymentsDir: s.Dir("deployments"),
		BaseDomain: o.BaseDomain, Env: s.Vars, Logger: o.Logger, KeepBuilds: o.KeepBuilds, Sites: s.Edge,
	}, s.Store, s.Broker, s.Activator, sandbox, o.Work)
	if err != nil {
		t.Fatal(err)
	}
	if o.Work {
		qctx, cancel := context.WithCancel(ctx)
		if err := s.Queue.Start(qctx); err != nil {
			t.Fatal(err)
		}
		// The start's retention pass must not collect the builds a test
		// makes next.
		s.Queue.WaitStartPass()
		t.Cleanup(func() {
			sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
			defer scancel()
			s.Queue.Shutdown(sctx)
			cancel()
		})
	}
	if s.Service, err = deploy.New(deploy.Config{BaseDomain: o.BaseDomain, Logger: o.Logger}, s.Store, s.Vars, s.Queue); err != nil {
		t.Fatal(err)
	}
	if s.Admin, err = s.Store.CreateUser(ctx, "admin", true); err != nil {
		t.Fatal(err)
	}
	return s
}

// Dir returns one of the stack's directories: repos, builds, artifacts or
// deployments.
func (s *Stack) Dir(name string) string { return filepath.Join(s.Root, name) }

// NewEdge starts an edge on the stack's deployments directory, stopped when
// the test ends; a second one is what a restarted server runs.
func (s *Stack) NewEdge(t testing.TB) *edge.Server {
	t.Helper()
	eg, err := edge.New(edge.Config{
		DeploymentsDir: s.Dir("deployments"), BaseDomain: s.opts.BaseDomain, Logger: s.Logger, Runtime: s.opts.Runtime,
	}, deploy.NewLookup(s.Store, s.Vars))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		eg.Shutdown(ctx)
	})
	return eg
}

// NewVars is the variables service on a fresh master key, as serve builds it
// from the key file.
func NewVars(t testing.TB, store *schema.Store) *secret.Vars {
	t.Helper()
	keys, err := secret.LoadKeyring(secret.NewKey().String(), "")
	if err != nil {
		t.Fatal(err)
	}
	return secret.NewVars(store, keys)
}

// Project creates a project of the admin as a first push does. Its health
// checks are generous: a check starts as soon as the port accepts, so a
// healthy app goes live at once whatever the limits, and a loaded machine
// never fails it.
func (s *Stack) Project(t testing.TB, name string) schema.Project {
	t.Helper()
	ctx := context.Background()
	p, _, err := s.Store.EnsureProject(ctx, name, s.Admin.ID)
	if err != nil {
		t.Fatal(err)
	}
	ps := p.Settings()
	ps.HealthTries, ps.HealthIntervalMS = 20, 500
	if p, err = s.Store.UpdateProjectSettings(ctx, p.ID, ps); err != nil {
		t.Fatal(err)
	}
	return p
}

// Build records a succeeded build of branch whose artifact, really packed,
// holds files; a non-empty start makes it a server app. message is its
// commit's subject, and log its stored log.
func (s *Stack) Build(t testing.TB, p schema.Project, branch string, files map[string]string, start, message string, log ...string) schema.Build {
	t.Helper()
	ctx := context.Background()
	n := s.builds.Add(1)
	src := filepath.Join(s.Root, "src-"+strconv.FormatInt(n, 10))
	for name, content := range files {
		path := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := s.Store.CreateBuild(ctx, schema.NewBuild{ProjectID: p.ID, Branch: branch,
		CommitSHA: strings.Repeat(strconv.FormatInt(n%10, 10), 40), CommitMessage: message})
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(s.Dir("artifacts"), strconv.FormatInt(b.ID, 10)+".tar.gz")
	sum, size, err := pipeline.Pack(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	kind := "static"
	if start != "" {
		kind = "node"
	}
	if err := s.Store.SetBuildArtifact(ctx, b.ID, schema.Artifact{Kind: kind, StartCommand: start, Path: dst, SHA256: sum, Size: size}); err != nil {
		t.Fatal(err)
	}
	if err := s.Store.AppendLogLines(ctx, b.ID, 1, log); err != nil {
		t.Fatal(err)
	}
	if err := s.Store.FinishBuild(ctx, b.ID, schema.BuildSucceeded, ""); err != nil {
		t.Fatal(err)
	}
	if b, err = s.Store.BuildByID(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	return b
}
