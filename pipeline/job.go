package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"minivercel/hosts"
	"minivercel/limits"
	"minivercel/proc"
	"minivercel/schema"
	"minivercel/secret"
	"minivercel/toolchain"
)

// Activator makes a succeeded build serve its project's production traffic. It is
// called by the build and activation workers, one build at a time per project;
// it returns only after the new build serves, or with an error and the previous
// deployment still serving. progress receives lines for the person deploying.
// Deactivate stops serving a project (it is being deleted); it is called with
// the same per-project lock held, so no activation runs at the same time.
type Activator interface {
	Activate(ctx context.Context, b schema.Build, progress func(string)) error
	Deactivate(project string)
}

// Config configures the build queue.
type Config struct {
	// ReposDir holds the bare repositories, <ReposDir>/<project>.git.
	ReposDir string
	// WorkDir holds build workspaces, removed when a build ends.
	WorkDir string
	// ArtifactsDir holds every build's artifact, <ArtifactsDir>/<project>/<build id>.tar.gz.
	ArtifactsDir string
	// CacheDir keeps each project's build HOME between builds
	// (<CacheDir>/<project id>/home): the package managers' download caches
	// (~/.npm, ~/.cache/yarn, the pnpm store) make the next install fast.
	// Zero: every build starts with an empty HOME.
	//
	// It also keeps, per branch, the node_modules of the last successful
	// build (<CacheDir>/<project id>/modules/<branch slot>), restored when
	// its key (the lockfile, the package manager and Node versions, the
	// install command, the platform) is unchanged, and the framework
	// caches (.next/cache and the like, <CacheDir>/<project id>/frameworks);
	// see buildCache. Zero: neither.
	CacheDir string
	// MaxCacheEntryBytes bounds one kept node_modules, or one branch's
	// framework caches: a bigger one is not kept. Zero:
	// DefaultMaxCacheEntryBytes.
	MaxCacheEntryBytes int64
	// DeploymentsDir is where the edge extracts builds, <DeploymentsDir>/<build id>;
	// deleting a project removes its builds there. Zero: nothing is removed there.
	DeploymentsDir string
	// Concurrency is how many builds run at once. Zero: 1.
	Concurrency int
	// URL returns the public URL of a host name (scheme and port included).
	// Zero: "http://" + host.
	URL func(host string) string
	// BaseDomain is the domain project hosts live under. Zero: "localhost".
	BaseDomain string
	// Env gives builds their project's variables. Zero: builds get none.
	Env EnvSource
	// Toolchains provides the Node versions and package managers (pnpm,
	// yarn, bun) projects ask for; the Sandbox must bind its directory
	// (Sandbox.ReadOnly). Zero: only the system's Node and npm, and a
	// project asking for anything else fails to build.
	Toolchains *toolchain.Store
	// Logger receives the queue's own events. Zero: slog.Default().
	Logger *slog.Logger
	// MaxWorkspaceBytes bounds the disk one build's workspace may use
	// while its commands run; past it the command is stopped and the build
	// fails with the reason. Zero: DefaultMaxWorkspaceBytes.
	MaxWorkspaceBytes int64
	// MaxLogLines and MaxLogBytes bound the command output one build's log
	// keeps; past them lines are counted, and the last ones shown when the
	// command ends (see logBudget). Zero: DefaultMaxLogLines and
	// DefaultMaxLogBytes.
	MaxLogLines, MaxLogBytes int
	// KeepBuilds is how many of each project's newest succeeded builds
	// keep their artifact and extracted files; the live build and each
	// branch's latest succeeded build keep theirs too. The others are
	// collected after each build and once at start (see Collect): their
	// URLs answer 410 and they cannot be activated; their logs stay.
	// Zero: DefaultKeepBuilds.
	KeepBuilds int
	// Sites is told of each collected build, so that the edge of this
	// process answers 410 for its URLs at once and stops its preview
	// processes (*edge.Server). Zero: edges notice within a minute, when
	// what they remember of the build expires.
	Sites BuildForgetter
	// AppUsers removes a deleted project's app user (proc.AppUsers). Zero:
	// apps run as no user of their project's; nothing is removed.
	AppUsers AppUserRemover
	// Node is this node's id (nodes.ID): the builds it runs are recorded
	// as its own, and only those are failed as interrupted when it starts
	// again. Zero: builds belong to no node, and every running build is
	// this process's.
	Node string
	// Git says this node keeps the repositories (the gitd role): it makes
	// source snapshots for workers without them and puts their branches
	// back. Zero: it does not.
	Git bool
	// AttemptCheck is how often a running build checks that no other
	// worker took it over (see watchAttempt). Zero: DefaultAttemptCheck.
	AttemptCheck time.Duration
	// Blobs stores artifacts and source snapshots for other nodes, and
	// fetches them. Zero: artifacts stay local, and a worker builds only
	// projects whose repository it has.
	Blobs Blobs
	// Metrics is told of each build this node's workers finish. Zero: none.
	Metrics BuildMetrics
}

// BuildMetrics is told of each build a worker finished: its final status
// and the time from its start on the worker. It is called on the worker's
// goroutine once the result is recorded, concurrently for concurrent
// builds, and must be quick.
type BuildMetrics interface {
	BuildFinished(status schema.BuildStatus, took time.Duration)
}

// BuildForgetter is told that a build's files are gone: ForgetBuild may
// stop the build's processes and returns when they are stopped. It is
// called concurrently, never with a project's activation lock held.
type BuildForgetter interface {
	ForgetBuild(project, slug string, buildID int64)
}

// AppUserRemover removes the system users projects' apps run as. Remove
// ends every process of the user of the project with id projectID (its app,
// previews and functions, and whatever they started) and deletes the user; a
// project that has none is no error. It is called once the project is
// deleted and its sites stopped. Prune does the same for every user of a
// project keep does not hold, and returns their names; it is called at start.
type AppUserRemover interface {
	Remove(projectID int64) error
	Prune(keep map[int64]bool) ([]string, error)
}

// EnvSource gives a build its project's environment variables, decrypted.
// Resolve returns KEY=VALUE pairs for a target ("production" or "preview");
// Values returns every value of the project, for redacting logs. Both are
// called concurrently.
type EnvSource interface {
	Resolve(ctx context.Context, projectID int64, target string) ([]string, error)
	Values(ctx context.Context, projectID int64) ([]string, error)
}

// BuildArgs is the River job that runs one build.
type BuildArgs struct {
	BuildID int64 `json:"build_id"`
	// Before is where the push found the build's branch: the commit it
	// replaced, all zeros for a new branch, empty for a build no push asked
	// for (a rebuild). A failed or canceled build puts the branch back there
	// (see putBranchBack).
	Before string `json:"before,omitempty"`
}

// Kind names the job kind in River's table.
func (BuildArgs) Kind() string { return "build" }

// Queue owns the build jobs: it enqueues them with their build rows and runs them
// on River workers inside the server, never as children of a git hook.
type Queue struct {
	cfg     Config
	store   *schema.Store
	broker  *Broker
	act     Activator
	sandbox Sandbox
	client  *river.Client[pgx.Tx]
	log     *slog.Logger
	rlog    *slog.Logger // the retention collector's
	// created is when this queue was made: the start-up clean-up removes
	// only what is older.
	created time.Time
	// background runs the start-up retention pass; Shutdown waits for it.
	background sync.WaitGroup
	// projectLocks serialises activation per project so two builds finishing
	// together cannot interleave their route switches.
	projectLocks sync.Map
	// cacheLocks holds a *sync.Mutex per project id: builds of one project
	// take and put in place build cache entries one at a time (see
	// buildCache.lock).
	cacheLocks sync.Map
	// works is whether this node works jobs (builds, or git work): only
	// then does its River client start.
	works bool
}

// jobTimeout bounds one whole build job: install and build may each use the
// sandbox's 30-minute limit, plus checkout, packing and activation.
const jobTimeout = 2*DefaultTimeout + 15*time.Minute

// MigrateQueue applies River's own migrations.
func MigrateQueue(ctx context.Context, pool *pgxpool.Pool) error {
	m, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return fmt.Errorf("create queue migrator: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrate queue: %w", err)
	}
	return nil
}

// NewQueue returns a queue that runs builds with sandbox and activates
// production builds with act. With work false it only enqueues (a server without
// the worker role).
func NewQueue(cfg Config, store *schema.Store, broker *Broker, act Activator, sandbox Sandbox, work bool) (*Queue, error) {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	if cfg.MaxWorkspaceBytes <= 0 {
		cfg.MaxWorkspaceBytes = DefaultMaxWorkspaceBytes
	}
	if cfg.MaxCacheEntryBytes <= 0 {
		cfg.MaxCacheEntryBytes = DefaultMaxCacheEntryBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.BaseDomain == "" {
		cfg.BaseDomain = "localhost"
	}
	if cfg.URL == nil {
		cfg.URL = func(host string) string { return "http://" + host }
	}
	q := &Queue{cfg: cfg, store: store, broker: broker, act: act, sandbox: sandbox, created: time.Now(),
		log: cfg.Logger.With("component", "pipeline"), rlog: cfg.Logger.With("component", "retention")}
	rc := &river.Config{
		Logger:     slog.New(slog.DiscardHandler),
		JobTimeout: jobTimeout,
		// Jobs go to the nodes whose roles work them: a gitd node inserts
		// builds it does not run, a worker source jobs.
		SkipUnknownJobCheck: true,
	}
	if work || cfg.Git {
		workers := river.NewWorkers()
		rc.Queues = map[string]river.QueueConfig{}
		if work {
			river.AddWorker(workers, &buildWorker{q: q})
			river.AddWorker(workers, &activateWorker{q: q})
			rc.Queues[river.QueueDefault] = river.QueueConfig{MaxWorkers: cfg.Concurrency}
			rc.Queues[deployQueue] = river.QueueConfig{MaxWorkers: 2}
		}
		if cfg.Git {
			river.AddWorker(workers, &sourceWorker{q: q})
			river.AddWorker(workers, &putBackWorker{q: q})
			rc.Queues[gitQueue] = river.QueueConfig{MaxWorkers: 2}
		}
		rc.Workers = workers
		rc.FetchCooldown = 20 * time.Millisecond
		q.works = true
	}
	client, err := river.NewClient(riverpgxv5.New(store.Pool()), rc)
	if err != nil {
		return nil, fmt.Errorf("create build queue: %w", err)
	}
	q.client = client
	return q, nil
}

// Start starts the workers; it returns once they run. Before, it fails
// the builds an earlier run left running and removes what that run left on
// disk (cleanUp); after, it applies retention to every project in the
// background (CollectAll).
func (q *Queue) Start(ctx context.Context) error {
	if err := q.failInterrupted(ctx); err != nil {
		return err
	}
	if err := q.cleanUp(ctx, q.created); err != nil {
		return err
	}
	if q.works {
		if err := q.client.Start(ctx); err != nil {
			return fmt.Errorf("start build queue: %w", err)
		}
	}
	q.background.Go(func() {
		if err := q.CollectAll(ctx); err != nil && ctx.Err() == nil {
			q.rlog.Warn("retention pass at start", "err", err)
		}
	})
	return nil
}

// WaitStartPass waits for the retention pass that Start began in the
// background.
func (q *Queue) WaitStartPass() { q.background.Wait() }

// Shutdown stops fetching builds and waits for running ones until ctx ends,
// then cancels them.
func (q *Queue) Shutdown(ctx context.Context) error {
	defer q.background.Wait()
	if !q.works {
		return nil
	}
	if err := q.client.Stop(ctx); err != nil {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return q.client.StopAndCancel(cctx)
	}
	return nil
}

// failInterrupted marks builds left running by a previous run of this node as
// failed: their worker died with the process and River will not retry them.
// Other nodes' builds are theirs (or the reaper's, when those nodes died).
func (q *Queue) failInterrupted(ctx context.Context) error {
	_, err := q.store.Pool().Exec(ctx, `UPDATE builds SET status = 'failed', finished_at = now(),
		error = 'interrupted: the server stopped during the build; rebuild it with minivercel deploy rebuild'
		WHERE status = 'running' AND (node_id IS NULL OR node_id = $1)`, q.cfg.Node)
	if err != nil {
		return fmt.Errorf("fail interrupted builds: %w", err)
	}
	if q.cfg.Node != "" {
		// Its activations too: the edges discard what they prepared.
		if _, err := q.store.FailOrphanedDeployments(ctx, q.cfg.Node, 0,
			"interrupted: the node activating it stopped during the activation"); err != nil {
			return fmt.Errorf("fail interrupted activations: %w", err)
		}
	}
	return nil
}

// Enqueue records a queued build and its job in one transaction, so a build row
// never exists without a job to run it, nor a job without its row.
func (q *Queue) Enqueue(ctx context.Context, nb schema.NewBuild) (schema.Build, error) {
	return q.enqueue(ctx, nb, "")
}

// enqueue is Enqueue of a pushed build whose branch was at before.
func (q *Queue) enqueue(ctx context.Context, nb schema.NewBuild, before string) (schema.Build, error) {
	var b schema.Build
	err := q.store.InTx(ctx, func(tx pgx.Tx) error {
		var err error
		if b, err = q.store.WithTx(tx).CreateBuild(ctx, nb); err != nil {
			return err
		}
		// One attempt: a failed build is reported to the user, never silently re-run.
		_, err = q.client.InsertTx(ctx, tx, BuildArgs{BuildID: b.ID, Before: before}, &river.InsertOpts{MaxAttempts: 1})
		return err
	})
	if err != nil {
		return schema.Build{}, fmt.Errorf("enqueue build: %w", err)
	}
	return b, nil
}

// lockProject takes a project's activation lock and returns its release.
// The lock holds across nodes: a PostgreSQL advisory lock on a connection
// of its own, taken after this process's mutex (so one process queues its
// own callers). The database lock is tried, not waited for, so that no
// pool connection is held while another node's activation runs; past
// projectLockWait, or if the database cannot be reached, the lock is not
// taken and the error says so: nothing goes ahead unlocked.
func (q *Queue) lockProject(ctx context.Context, id int64) (unlock func(), err error) {
	mu, _ := q.projectLocks.LoadOrStore(id, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	ctx, cancel := context.WithTimeout(ctx, projectLockWait)
	defer cancel()
	for {
		conn, err := q.store.Pool().Acquire(ctx)
		if err != nil {
			mu.(*sync.Mutex).Unlock()
			return nil, fmt.Errorf("lock project %d: %w", id, err)
		}
		var locked bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2)`, projectLockClass, int32(id)).Scan(&locked); err != nil {
			conn.Release()
			mu.(*sync.Mutex).Unlock()
			return nil, fmt.Errorf("lock project %d: %w", id, err)
		}
		if locked {
			return func() {
				uctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1, $2)`, projectLockClass, int32(id)); err != nil {
					// A session lock goes with its connection.
					conn.Conn().Close(uctx)
				}
				conn.Release()
				mu.(*sync.Mutex).Unlock()
			}, nil
		}
		conn.Release()
		select {
		case <-ctx.Done():
			mu.(*sync.Mutex).Unlock()
			return nil, fmt.Errorf("lock project %d: another node holds it: %w", id, ctx.Err())
		case <-time.After(projectLockRetry):
		}
	}
}

// projectLockClass is the first key of the projects' advisory locks; the
// second is the project's id.
const projectLockClass = 0x6d76 // "mv"

// projectLockWait bounds the wait for another node's activation of the
// same project: as long as an activation may take. projectLockRetry is
// how often the lock is tried meanwhile.
const (
	projectLockWait  = 15 * time.Minute
	projectLockRetry = 100 * time.Millisecond
)

// activate runs the activator with the project's lock held, so two builds or
// rollbacks of one project never interleave their switches.
//
// With pushed set (a build going live at its own end), a build is not
// activated when a later build is live already: with several builds of one
// project running at once, the last push wins, whichever build finishes
// last. An explicit activation (a rollback) always goes ahead.
//
// A panic in the activation (a bug) is recovered and logged with its
// stack: it fails this activation alone, never the server or the other
// projects, and the previous deployment serves on.
func (q *Queue) activate(ctx context.Context, b schema.Build, progress func(string), pushed bool) (err error) {
	unlock, err := q.lockProject(ctx, b.ProjectID)
	if err != nil {
		return err
	}
	defer unlock()
	defer func() {
		if r := recover(); r != nil {
			q.log.Error("activation panicked", "build", b.ID, "project", b.ProjectName, "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("activation failed: internal error (see the server log): %w", ErrActivationPanicked)
		}
	}()
	if pushed {
		// A worker the others took for dead (it lost the database for a
		// while) must not deploy a build another attempt now owns.
		if held, err := q.store.HoldsAttempt(ctx, b.ID, b.Attempt); err != nil {
			return fmt.Errorf("read build %d: %w", b.ID, err)
		} else if !held {
			return fmt.Errorf("build %d: %w", b.ID, ErrTakenOver)
		}
		live, err := q.store.ActiveBuild(ctx, b.ProjectID)
		if err != nil && !errors.Is(err, schema.ErrNotFound) {
			return fmt.Errorf("read the live build: %w", err)
		}
		if err == nil && live.ID > b.ID {
			progress(fmt.Sprintf("Build #%d, pushed later, is live already: production stays on it (to make this build live: minivercel deploy activate %s %d)",
				live.ID, b.ProjectName, b.ID))
			return nil
		}
	} else {
		// Read again under the lock: retention may have collected the
		// build since the caller read it. (A build still running, as a
		// pushed one is, is never collected.)
		now, err := q.store.BuildByID(ctx, b.ID)
		if err != nil {
			return fmt.Errorf("read build %d: %w", b.ID, err)
		}
		if err := Activatable(now); err != nil {
			return err
		}
	}
	return q.act.Activate(ctx, b, progress)
}

type buildWorker struct {
	river.WorkerDefaults[BuildArgs]
	q *Queue
}

// Timeout overrides River's one-minute default.
func (w *buildWorker) Timeout(*river.Job[BuildArgs]) time.Duration { return jobTimeout }

// Work runs one build. Build failures are recorded on the build and reported in
// its log; the job itself succeeds so River does not retry it.
func (w *buildWorker) Work(ctx context.Context, job *river.Job[BuildArgs]) error {
	err := w.q.run(ctx, job.Args.BuildID, job.Args.Before)
	if errors.Is(err, ErrBuildNotQueued) {
		return nil
	}
	return err
}

func (q *Queue) run(ctx context.Context, buildID int64, before string) error {
	attempt, err := q.store.ClaimBuild(ctx, buildID, q.cfg.Node)
	if err != nil {
		if errors.Is(err, schema.ErrConflict) {
			return ErrBuildNotQueued
		}
		return err
	}
	// A build taken over by another worker (this one lost the database
	// for longer than a heartbeat allows) stops here too, rather than
	// use the machine for nothing.
	ctx, stopWatch := q.watchAttempt(ctx, buildID, attempt)
	defer stopWatch()
	b, err := q.store.BuildByID(ctx, buildID)
	if err != nil {
		return err
	}
	project, err := q.store.ProjectByID(ctx, b.ProjectID)
	if err != nil {
		return err
	}
	var vars, values []string
	var envErr error
	if q.cfg.Env != nil {
		target := schema.TargetPreview
		if b.Branch == project.ProductionBranch {
			target = schema.TargetProduction
		}
		vars, envErr = q.cfg.Env.Resolve(ctx, project.ID, target)
		if envErr == nil {
			values, envErr = q.cfg.Env.Values(ctx, project.ID)
		}
	}
	redact := secret.NewRedactor(values)
	// An earlier attempt (on a worker that died) left lines: this one's
	// follow them.
	after, err := q.store.LastLogSeq(ctx, b.ID)
	if err != nil {
		return err
	}
	q.broker.BeginRedacted(b.ID, redact, after)
	started := time.Now()
	out := &buildLog{broker: q.broker, buildID: b.ID, redact: redact, budget: newLogBudget(q.cfg.MaxLogLines, q.cfg.MaxLogBytes)}
	status, reason := schema.BuildFailed, ""
	if envErr != nil {
		q.log.Error("read environment variables", "build", b.ID, "err", envErr)
		reason = "clone failed: the project's environment variables cannot be read (see the server log)"
	} else {
		status, reason = q.build(ctx, b, project, vars, out)
	}
	if status == schema.BuildSucceeded {
		out.heading(fmt.Sprintf("Build #%d succeeded in %s", b.ID, time.Since(started).Round(10*time.Millisecond)))
		names := hosts.New(q.cfg.BaseDomain)
		buildURL := q.cfg.URL(names.Build(b.ProjectName, b.Slug))
		if b.Branch == project.ProductionBranch {
			out.heading("Production: " + q.cfg.URL(names.Production(project.Name)))
			out.detail("This build: " + buildURL)
		} else if branch := names.Branch(b.ProjectName, b.Branch); branch != "" {
			out.heading("Preview of " + b.Branch + ": " + q.cfg.URL(branch))
			out.detail("This build: " + buildURL)
		} else {
			// A branch name with no letter or digit has no branch URL.
			out.heading("This build: " + buildURL)
		}
	} else {
		out.line("error: " + reason)
		// Only the attempt that owns the build moves its branch: one taken
		// over by another worker is that worker's to put back.
		if held, err := q.store.HoldsAttempt(ctx, b.ID, attempt); err == nil && held {
			q.putBranchBack(ctx, b, before, out)
		}
	}
	// The final status is written even when ctx was canceled, so no build is
	// left "running".
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	q.broker.Flush(b.ID)
	if err := q.store.FinishAttempt(fctx, b.ID, attempt, status, reason); err != nil {
		q.log.Error("record build result", "build", b.ID, "err", err)
	}
	if q.cfg.Metrics != nil {
		q.cfg.Metrics.BuildFinished(status, time.Since(started))
	}
	q.broker.Finish(b.ID, status)
	q.releaseSource(fctx, b.ID)
	q.log.Info("build finished", "build", b.ID, "project", project.Name, "status", status, "duration", time.Since(started))
	q.collectAfter(ctx, b.ProjectID)
	return nil
}

// DefaultAttemptCheck is how often a running build checks that it is
// still its attempt's.
const DefaultAttemptCheck = 10 * time.Second

// watchAttempt returns a context that ends when attempt is no longer the
// build's running attempt (it was taken over, or finished elsewhere), and
// the function that stops watching. A failed check (the database away)
// changes nothing.
func (q *Queue) watchAttempt(ctx context.Context, buildID int64, attempt int) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(cmp.Or(q.cfg.AttemptCheck, DefaultAttemptCheck))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if held, err := q.store.HoldsAttempt(ctx, buildID, attempt); err == nil && !held {
				q.log.Warn("build taken over by another worker: stopping this attempt", "build", buildID, "attempt", attempt)
				cancel(ErrTakenOver)
				return
			}
		}
	}()
	return ctx, func() { close(done); cancel(nil) }
}

// build runs the stages and returns the final status with a one-line reason.
func (q *Queue) build(ctx context.Context, b schema.Build, project schema.Project, vars []string, out *buildLog) (schema.BuildStatus, string) {
	ws := filepath.Join(q.cfg.WorkDir, strconv.FormatInt(b.ID, 10))
	src := filepath.Join(ws, "src")
	home := filepath.Join(ws, "home")
	defer os.RemoveAll(ws)

	settings := Settings{
		Framework:      project.Framework,
		InstallCommand: project.InstallCommand,
		BuildCommand:   project.BuildCommand,
		StartCommand:   project.StartCommand,
		OutputDir:      project.OutputDir,
	}
	// The project's variables come first so the platform's own names win.
	env := MinimalEnv(home, append(vars, "MINIVERCEL_BRANCH="+b.Branch, "MINIVERCEL_COMMIT="+b.CommitSHA)...)
	var plan Plan
	var committed time.Time // every packed file's mtime
	var fns *Functions
	artifact := filepath.Join(q.cfg.ArtifactsDir, project.Name, strconv.FormatInt(b.ID, 10)+".tar.gz")
	production := b.Branch == project.ProductionBranch
	// The project's own limits win over the server's.
	sandbox := q.sandbox
	sandbox.Limits = limits.Limits{Memory: project.MemoryLimit, Pids: project.PidsLimit}.Or(q.sandbox.Limits)
	cache := q.newBuildCache(project.ID, b.ID, b.Branch, production, sandbox)

	steps := []step{
		{schema.StageClone, func(ctx context.Context) error {
			out.heading(fmt.Sprintf("Checking out %s (%s)", short(b.CommitSHA), b.Branch))
			if q.cfg.Node != "" {
				out.detail("Worker: " + q.cfg.Node)
			}
			if err := os.MkdirAll(src, 0o755); err != nil {
				return err
			}
			if q.restoreCache(project.ID, home) {
				out.detail("Restored the dependency cache of earlier builds")
			} else if err := os.MkdirAll(home, 0o755); err != nil {
				return err
			}
			var err error
			if committed, err = q.checkout(ctx, b, src, out); err != nil {
				return err
			}
			if err := sandbox.Prepare(ws); err != nil {
				return err
			}
			if plan, err = Detect(src, settings); err != nil {
				if plan, err = FunctionsOnlyPlan(src, err); err != nil {
					return err
				}
			}
			out.detail("Detected: " + plan.Describe())
			// Functions first: they may give a static site an install
			// step, whose package manager the toolchain then provides.
			if fns, err = detectFunctions(src, settings, &plan, out); err != nil {
				return err
			}
			tools, err := q.prepareTools(ctx, src, &plan, fns != nil, out)
			if err != nil {
				return err
			}
			if err := checkFunctionsNode(ctx, fns, tools.nodeVersion); err != nil {
				return err
			}
			env = tools.environ(home, env)
			b.NodeVersion = tools.nodeVersion
			if sandbox.Isolated() {
				out.detail("Sandbox: bubblewrap, as an unprivileged user")
			} else {
				out.detail("Sandbox: unprivileged user only (bubblewrap is not available)")
			}
			if l := sandbox.LimitsSummary(); l != "" {
				out.detail("Limits: " + l)
			}
			return cache.restoreModules(ctx, sandbox, src, env, plan, out)
		}},
		{schema.StageInstall, func(ctx context.Context) error {
			if len(plan.Install) == 0 || cache.hit {
				return nil
			}
			out.heading("Installing dependencies: " + strings.Join(plan.Install, " "))
			wctx, stop := watchWorkspace(ctx, ws, q.cfg.MaxWorkspaceBytes)
			defer stop()
			return workspaceErr(wctx, out.run(wctx, sandbox, src, plan.Install, env))
		}},
		{schema.StageBuild, func(ctx context.Context) error {
			if len(plan.Build) > 0 {
				out.heading("Building: " + strings.Join(plan.Build, " "))
				restored, err := cache.restoreFrameworks(sandbox, src)
				if err != nil {
					return err
				}
				if len(restored) > 0 {
					out.detail("Framework cache: restored " + strings.Join(restored, ", "))
				}
				wctx, stop := watchWorkspace(ctx, ws, q.cfg.MaxWorkspaceBytes)
				defer stop()
				if err := out.run(wctx, sandbox, src, plan.Build, append(env, "NODE_ENV=production")); err != nil {
					return workspaceErr(wctx, err)
				}
			}
			return ResolveOutput(src, &plan)
		}},
		{schema.StageArtifact, func(ctx context.Context) error {
			if err := writeSiteConfig(ws, plan.OutputDir, out.line); err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(artifact), 0o700); err != nil {
				return err
			}
			if fns != nil {
				if err := fns.Stage(src, plan.OutputDir); err != nil {
					return err
				}
			}
			// The caches keep the whole node_modules; the artifact of a
			// server app then goes without its devDependencies.
			cache.save(src, plan.Server() || plan.OutputDir == ".", out)
			pruneDevDependencies(ctx, sandbox, src, env, plan, cache.backup(), out)
			out.heading("Packing " + plan.OutputDir)
			// Packed through the workspace, which the build user cannot
			// rename: not through paths it could swap for symlinks.
			sum, size, err := PackIn(ctx, ws, filepath.Join("src", plan.OutputDir), artifact, PackOptions{MTime: committed})
			if err != nil {
				return err
			}
			out.detail(fmt.Sprintf("%s, sha256 %s", humanBytes(size), sum[:16]))
			if q.cfg.Blobs != nil {
				// Stored where every edge node fetches it from; stored once
				// however many builds pack the same bytes.
				if err := q.cfg.Blobs.Put(ctx, artifact, sum, size); err != nil {
					return fmt.Errorf("store the artifact: %w", err)
				}
			}
			b.Kind, b.SPA, b.StartCommand, b.ArtifactPath, b.ArtifactSHA256, b.ArtifactSize = plan.Kind.String(), plan.SPA, plan.Start, artifact, sum, size
			if err := q.store.SetBuildArtifact(ctx, b.ID, schema.Artifact{
				Kind: b.Kind, SPA: b.SPA, StartCommand: b.StartCommand, Path: artifact, SHA256: sum, Size: size,
				NodeVersion: b.NodeVersion,
			}); err != nil {
				return err
			}
			return q.storedAgain(ctx, artifact, sum, size)
		}},
		{schema.StageActivate, func(ctx context.Context) error {
			if !production {
				out.heading(fmt.Sprintf("Branch %s is not the production branch (%s): production is unchanged", b.Branch, project.ProductionBranch))
				return nil
			}
			out.heading("Activating")
			return q.activate(ctx, b, out.detail, true)
		}},
	}
	failed, err := runSteps(ctx, steps, func(s schema.Stage) {
		if err := q.store.SetBuildStage(ctx, b.ID, s); err != nil {
			q.log.Warn("record build stage", "build", b.ID, "err", err)
		}
	})
	// A failed build's trees are not kept: they may be what failed.
	if err == nil {
		cache.commit()
	} else {
		cache.discard()
	}
	// The HOME is kept after a failure too: package managers verify what
	// they take from their caches, and a fix pushed after a failed build
	// should not have to download everything again.
	q.saveCache(ctx, project.ID, home)
	if err == nil {
		return schema.BuildSucceeded, ""
	}
	if ctx.Err() != nil {
		return schema.BuildCanceled, fmt.Sprintf("%s canceled", failed)
	}
	q.log.Debug("build failed", "build", b.ID, "stage", failed, "err", err)
	return schema.BuildFailed, reasonFor(failed, err)
}

// cacheHome is where a project's build HOME waits between builds. It is
// named by the project's id, never reused, not by its name: a project
// deleted during a build and made again under the same name starts with
// nothing of the old one's.
func (q *Queue) cacheHome(projectID int64) string {
	return filepath.Join(q.cfg.CacheDir, strconv.FormatInt(projectID, 10), "home")
}

// restoreCache moves the project's saved HOME into the workspace (a rename: no
// copying) and reports whether there was one. Each project has its own, so a
// build can only ever poison its own project's cache; two builds of one
// project at once: the first takes it, the second starts empty.
func (q *Queue) restoreCache(projectID int64, home string) bool {
	if q.cfg.CacheDir == "" {
		return false
	}
	return os.Rename(q.cacheHome(projectID), home) == nil
}

// saveCache keeps a build's HOME for the next build of the project, unless
// the project was deleted meanwhile.
func (q *Queue) saveCache(ctx context.Context, projectID int64, home string) {
	if q.cfg.CacheDir == "" {
		return
	}
	dst := q.cacheHome(projectID)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		q.log.Warn("save dependency cache", "project", projectID, "err", err)
		return
	}
	_ = os.RemoveAll(dst)
	if err := os.Rename(home, dst); err != nil {
		q.log.Warn("save dependency cache", "project", projectID, "err", err)
	}
	// Deleted during the build: DeleteProject removed the cache before
	// this saved it, so it goes now.
	if _, err := q.store.ProjectByID(context.WithoutCancel(ctx), projectID); errors.Is(err, schema.ErrNotFound) {
		_ = os.RemoveAll(filepath.Dir(dst))
	}
}

// reasonFor is the one line a user reads about a failed stage: the tool's own
// output is already in the log above it.
func reasonFor(stage schema.Stage, err error) string {
	var exit *ExitError
	switch {
	case errors.As(err, &exit) && exit.Limit != nil:
		return fmt.Sprintf("%s failed: %v", stage, exit.Limit)
	case errors.As(err, &exit):
		return fmt.Sprintf("%s failed: %s exited with code %d", stage, strings.Join(exit.Argv, " "), exit.Code)
	case errors.Is(err, ErrTimeout):
		return fmt.Sprintf("%s failed: timed out", stage)
	}
	return fmt.Sprintf("%s failed: %v", stage, strings.TrimPrefix(err.Error(), string(stage)+": "))
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// buildLog writes a build's log lines in the push output's style.
type buildLog struct {
	broker  *Broker
	buildID int64
	redact  *secret.Redactor
	budget  *logBudget // bounds the commands' output, not the platform's lines
}

func (l *buildLog) line(s string)    { l.broker.Publish(l.buildID, s) }
func (l *buildLog) heading(s string) { l.line("-----> " + s) }
func (l *buildLog) detail(s string)  { l.line("       " + s) }

// run runs a command in the sandbox with its output as indented log lines,
// written as the command prints them.
//
// Secret values are masked in the byte stream, before it is cut into lines, so
// a value split across lines or writes is masked too.
func (l *buildLog) run(ctx context.Context, sb Sandbox, dir string, argv, env []string) error {
	lines := proc.NewLineWriter(maxLineBytes, func(s string) {
		if l.budget.keep(s) {
			l.detail(s)
		}
	})
	w := secret.NewWriter(l.redact, lines)
	err := sb.Run(ctx, dir, argv, env, w)
	w.Flush()
	lines.Flush()
	l.budget.endOfOutput(l.detail)
	return err
}

// maxLineBytes caps one log line; longer output is split.
const maxLineBytes = 4096
