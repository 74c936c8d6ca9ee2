package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"minivercel/blobs"
	"minivercel/creds"
	"minivercel/deploy"
	"minivercel/edge"
	"minivercel/gitd"
	"minivercel/hooks"
	"minivercel/limits"
	"minivercel/metrics"
	"minivercel/nodes"
	"minivercel/panel"
	"minivercel/pipeline"
	"minivercel/proc"
	"minivercel/profiling"
	"minivercel/schema"
	"minivercel/sshcmd"
	"minivercel/toolchain"
	"minivercel/traffic"
)

type serveFlags struct {
	common
	sshAddr       string
	httpAddr      string
	concurrency   int
	logLines      int
	logBytes      int
	keepBuilds    int
	restoreBudget time.Duration
	trafficFlush  time.Duration
	publicPort    int
	httpsAddr     string
	acmeEmail     string
	acmeCA        string
	acmeCARoot    string
	// toolchainDir holds the Node versions and package managers fetched
	// for builds and apps; empty: <data-dir>/toolchains.
	toolchainDir string
	// buildMemory, buildPids, appMemory and appPids are the default limits
	// of one build command and one app process; 0 is no limit.
	buildMemory, appMemory limits.Size
	buildPids, appPids     int64
	// roles are the parts this node runs; nodeAddr is where other nodes
	// reach its HTTP listener.
	roles    nodes.Roles
	nodeAddr string
	// maxWorkspace and maxPush bound one build's workspace and one push.
	maxWorkspace, maxPush limits.Size
	// metricsAddr is where /metrics is served; empty: no metrics.
	metricsAddr string
	// pprofAddr is where /debug/pprof/ is served, a unix socket only;
	// empty: no profiles.
	pprofAddr string
}

// Default limits a small VPS survives: a runaway build or app is stopped
// long before the machine swaps itself to a halt. Builds weigh half an
// app on a busy CPU, so that serving stays quick during a build.
const (
	defaultBuildMemory = 2 << 30
	defaultBuildPids   = 512
	defaultAppMemory   = 1 << 30
	defaultAppPids     = 256
	buildCPUWeight     = 50
	appCPUWeight       = 100
)

// serve runs the server; its log goes to stdout (logfmt, or JSON with
// --log-format json), usage errors to stderr.
func serve(ctx context.Context, stop context.CancelFunc, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f serveFlags
	f.register(fs)
	fs.StringVar(&f.sshAddr, "ssh-addr", ":2222", "address of the git SSH server")
	fs.StringVar(&f.httpAddr, "http-addr", ":8080", "address of the edge (sites and /healthz)")
	fs.IntVar(&f.concurrency, "build-concurrency", 1, "how many builds run at once")
	fs.IntVar(&f.logLines, "build-log-lines", pipeline.DefaultMaxLogLines, "lines of command output one build's log keeps; past them lines are counted and the last 100 shown")
	fs.IntVar(&f.logBytes, "build-log-bytes", pipeline.DefaultMaxLogBytes, "bytes of command output one build's log keeps")
	fs.IntVar(&f.keepBuilds, "keep-builds", pipeline.DefaultKeepBuilds, "newest succeeded builds per project whose artifact and files are kept, besides the live build and each branch's latest; older builds' URLs answer 410")
	fs.DurationVar(&f.restoreBudget, "restore-budget", deploy.DefaultRestoreBudget, "how long one app may take to start when the server restores it; it is tried again after that")
	fs.DurationVar(&f.trafficFlush, "traffic-flush", time.Minute, "how often an edge writes its traffic counts (the panel's charts) to the database")
	fs.IntVar(&f.publicPort, "public-port", 0, "port shown in site URLs (default: the port of --http-addr, or of --https-addr with TLS; 80 and 443 are omitted)")
	fs.StringVar(&f.httpsAddr, "https-addr", "", "address of the HTTPS edge (e.g. :443); empty: plain HTTP only")
	fs.StringVar(&f.acmeEmail, "acme-email", "", "contact email for the ACME account (certificate expiry notices)")
	fs.StringVar(&f.acmeCA, "acme-ca", "", "ACME directory URL (default: Let's Encrypt production)")
	fs.StringVar(&f.acmeCARoot, "acme-ca-root", "", "PEM file of extra roots to trust for the ACME server (for a private CA)")
	fs.StringVar(&f.toolchainDir, "toolchain-dir", "", "directory of the Node versions and package managers fetched from the npm registry, shared by builds and apps (default: <data-dir>/toolchains)")
	f.buildMemory, f.appMemory = defaultBuildMemory, defaultAppMemory
	fs.Var(&f.buildMemory, "build-memory", "memory of one build command with everything it starts, such as 512M or 2G; 0: no limit")
	fs.Int64Var(&f.buildPids, "build-pids", defaultBuildPids, "processes and threads of one build command at once; 0: no limit")
	fs.Var(&f.appMemory, "app-memory", "memory of one app process with its children, such as 512M or 1G; 0: no limit")
	fs.Int64Var(&f.appPids, "app-pids", defaultAppPids, "processes and threads of one app process at once; 0: no limit")
	roles := fs.String("roles", "all", "the parts this node runs, a comma list of gitd, worker, edge and panel; any set but all needs --database-url, shared by every node")
	fs.StringVar(&f.nodeAddr, "node-addr", "", "host:port where other nodes reach this node's --http-addr (an edge without the panel role forwards the base domain there); default: 127.0.0.1 and that port")
	f.maxWorkspace, f.maxPush = pipeline.DefaultMaxWorkspaceBytes, gitd.DefaultMaxPushBytes
	fs.Var(&f.maxWorkspace, "build-disk", "disk one build's workspace may use (checkout, dependencies, output), such as 10G")
	fs.Var(&f.maxPush, "max-push", "size of one push (git's receive.maxInputSize), such as 1G")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "address of the Prometheus /metrics listener, such as 127.0.0.1:9100; keep it private: the metrics name every project; empty: no metrics")
	fs.StringVar(&f.pprofAddr, "pprof-addr", "", "unix socket of the Go profiles (/debug/pprof/), unix:/path only, in a directory only the server's user may enter, such as unix:<data-dir>/run/pprof.sock (a TCP port, even on loopback, is open to builds and apps); empty: no profiles")
	if err := parseFlags(fs, args, os.Getenv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("serve takes no arguments, got %q", fs.Args())}
	}
	var err error
	if f.roles, err = nodes.ParseRoles(*roles); err != nil {
		return usageError{"--roles: " + err.Error()}
	}
	if !f.roles.All() && f.databaseURL == "" {
		return usageError{fmt.Sprintf("--roles %s needs --database-url: the nodes of a cluster share one PostgreSQL (the private one in the data directory serves a single node running every role)", f.roles)}
	}
	if f.maxWorkspace <= 0 || f.maxPush <= 0 {
		return usageError{"--build-disk and --max-push must be more than 0"}
	}
	if f.buildPids < 0 || f.appPids < 0 {
		return usageError{"--build-pids and --app-pids must be 0 (no limit) or more"}
	}
	if f.concurrency < 1 {
		return usageError{"--build-concurrency must be at least 1"}
	}
	if f.restoreBudget <= 0 {
		return usageError{"--restore-budget must be positive, such as 2m"}
	}
	if f.trafficFlush <= 0 {
		return usageError{"--traffic-flush must be positive, such as 1m"}
	}
	if f.logLines < 1 || f.logBytes < 1 {
		return usageError{"--build-log-lines and --build-log-bytes must be at least 1"}
	}
	if f.keepBuilds < 1 {
		return usageError{"--keep-builds must be at least 1"}
	}
	if f.pprofAddr != "" {
		if err := profiling.CheckAddr(f.pprofAddr); err != nil {
			dir, _ := filepath.Abs(f.dataDir)
			return usageError{fmt.Sprintf("--pprof-addr %q: %v; such as unix:%s", f.pprofAddr, err, filepath.Join(dir, "run", "pprof.sock"))}
		}
	}
	log, err := f.logger(stdout)
	if err != nil {
		return err
	}
	slog.SetDefault(log)
	return runServer(ctx, stop, &f, log)
}

// layout is where each kind of state lives in the data directory. The data
// directory is traversable but not listable by others (0711): the build user
// must reach its workspace and the cluster user its data, and nothing else.
type layout struct {
	root, repos, work, cache, artifacts, deployments string
	// sockets holds the unix sockets (0700): <root>/run, or a private
	// directory in the system temp directory when socket paths there would
	// not fit the kernel's 108-byte limit.
	sockets string
	// temporary is whether sockets must be removed at exit.
	temporary bool
}

func newLayout(root string) (layout, error) {
	l := layout{
		root:        root,
		repos:       filepath.Join(root, "repos"),
		work:        filepath.Join(root, "builds"),
		cache:       filepath.Join(root, "cache"),
		artifacts:   filepath.Join(root, "artifacts"),
		deployments: filepath.Join(root, "deployments"),
		sockets:     filepath.Join(root, "run"),
	}
	for dir, mode := range map[string]os.FileMode{
		l.root: 0o711, l.repos: 0o700, l.work: 0o711, l.cache: 0o700, l.artifacts: 0o700, l.deployments: 0o711, l.sockets: 0o700,
	} {
		if err := os.MkdirAll(dir, mode); err != nil {
			return l, fmt.Errorf("create %s: %w", dir, err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			return l, fmt.Errorf("chmod %s: %w", dir, err)
		}
	}
	if len(l.socket("hooks")) >= 100 {
		// A name of its own, made 0700 by MkdirTemp: nobody else can take
		// it first or reach a socket in it.
		dir, err := os.MkdirTemp("", "minivercel-")
		if err != nil {
			return l, fmt.Errorf("create the socket directory: %w", err)
		}
		l.sockets, l.temporary = dir, true
	}
	return l, nil
}

// socket returns a unix socket's path.
func (l layout) socket(name string) string { return filepath.Join(l.sockets, name+".sock") }

// hookSocket is where the git hook reaches the server.
func (l layout) hookSocket() string { return l.socket("hooks") }

// openToolchains opens the store of fetched Node versions and package
// managers at dir (default <root>/toolchains), reading from the npm
// registry npm is configured with, trusting npm's cafile. Without npm or its configuration the
// server runs with no store: builds get the system's Node and npm only.
func openToolchains(ctx context.Context, dir, root string, log *slog.Logger) (*toolchain.Store, error) {
	if dir == "" {
		dir = filepath.Join(root, "toolchains")
	}
	npm, err := toolchain.NPMConfig(ctx, os.Getenv)
	if err != nil {
		log.Warn("no npm registry: builds get the system's Node and npm only, no other Node version, pnpm, yarn nor bun", "err", err)
		return nil, nil
	}
	store, err := toolchain.New(toolchain.Config{Dir: dir, Registry: npm.Registry, CAFile: npm.CAFile})
	if err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		// Builds and apps run as other users: say so at start rather than
		// with a build's obscure "permission denied".
		for p := filepath.Dir(store.Dir()); ; p = filepath.Dir(p) {
			if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o001 == 0 {
				log.Warn("builds and apps cannot use the toolchain directory: make its parent searchable (chmod o+x) or choose another --toolchain-dir",
					"dir", store.Dir(), "parent", p, "mode", fi.Mode().Perm())
				break
			}
			if p == "/" {
				break
			}
		}
	}
	log.Debug("toolchain store", "dir", store.Dir(), "registry", toolchain.Redacted(npm.Registry), "cafile", npm.CAFile)
	return store, nil
}

func runServer(ctx context.Context, stop context.CancelFunc, f *serveFlags, log *slog.Logger) error {
	root, err := f.absDataDir()
	if err != nil {
		return err
	}
	dirs, err := newLayout(root)
	if err != nil {
		return err
	}
	if dirs.temporary {
		defer os.RemoveAll(dirs.sockets)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable for the git hook: %w", err)
	}
	nodeID, err := nodes.ID(root)
	if err != nil {
		return err
	}
	roles := f.roles
	has := roles.Has
	log = log.With("node", nodeID)
	db, _, vars, err := f.openVars(ctx, log, false)
	if err != nil {
		return err
	}
	defer db.Close()
	registry, err := nodes.NewRegistry(db.store, schema.Node{
		ID: nodeID, Roles: roles.Strings(), Address: nodeAddress(f.nodeAddr, f.httpAddr), Version: version,
	}, 0, log)
	if err != nil {
		return err
	}
	events := schema.NewListener(db.store, log, schema.ChannelLogs, schema.ChannelRoutes, schema.ChannelDeploy, schema.ChannelBuilds)
	view := nodes.View{Store: db.store}
	// With the private database this node is the whole installation: what
	// a build writes stays on its disk. With a shared one, artifacts and
	// source snapshots go to PostgreSQL for the other nodes.
	var store *blobStore
	if db.cluster == nil {
		cache, err := blobs.NewCache(filepath.Join(root, "blobs"), blobs.PG(db.store), 4)
		if err != nil {
			return err
		}
		if err := cache.RemoveTemporary(); err != nil {
			log.Warn("remove unfinished downloads", "err", err)
		}
		// Copies of blobs released while this node was away go: the cache
		// holds no more than the database does.
		if n, err := cache.Prune(ctx); err != nil {
			log.Warn("prune the blob cache", "err", err)
		} else if n > 0 {
			log.Info("removed copies of blobs no build needs", "count", n)
		}
		store = &blobStore{db: db.store, store: blobs.PG(db.store), cache: cache}
	}
	cgroups := limits.New(limits.Config{ID: root, Logger: log})
	defer func() {
		if err := cgroups.Close(); err != nil {
			log.Warn("remove cgroups", "err", err)
		}
	}()
	var tools *toolchain.Store
	if has(nodes.Worker) || has(nodes.Edge) {
		if tools, err = openToolchains(ctx, f.toolchainDir, root, log); err != nil {
			return err
		}
	}
	urlFor := siteURL(f.httpAddr, f.httpsAddr, f.publicPort)
	jwtKey, err := loadSecretKey(os.Getenv("MINIVERCEL_JWT_KEY"), filepath.Join(root, "jwt.key"))
	if err != nil {
		return err
	}
	appUsers := proc.NewAppUsers(root)
	// Metrics: a registry the parts tell what happens, on a listener of
	// its own.
	var seen observers // told of every request a site served
	var stats *metrics.Registry
	var metricsSrv *metrics.Server
	if f.metricsAddr != "" {
		stats = metrics.NewRegistry(metrics.Options{State: db.store, Logger: log})
		if metricsSrv, err = metrics.New(metrics.Config{Addr: f.metricsAddr, Logger: log}, stats); err != nil {
			return err
		}
		seen = append(seen, stats)
	}
	var pprofSrv *profiling.Server
	if f.pprofAddr != "" {
		if pprofSrv, err = profiling.New(profiling.Config{Addr: f.pprofAddr, Logger: log}); err != nil {
			return usageError{"--pprof-addr: " + err.Error()}
		}
	}

	// The edge: the public listener. A node with the panel role and not
	// the edge's runs it too, serving the base domain only.
	var edgeSrv *edge.Server
	var runtimeLogs *runtimeLogs
	var recorder *traffic.Recorder // nil on a node without the edge role
	toPanel, gitHTTP := &lateHandler{}, &lateHandler{}
	if has(nodes.Edge) || has(nodes.Panel) {
		appUID, appGID, err := proc.SystemUser(proc.AppUserName)
		if err != nil {
			return err
		}
		var nodeStore edge.NodeStore
		if tools != nil {
			nodeStore = tools
		}
		runtimeLogs = newRuntimeLogs(db.store, log)
		defer runtimeLogs.Close()
		tlsCfg, err := tlsConfig(f, db.store, log)
		if err != nil {
			return err
		}
		lookup := deploy.NewLookup(db.store, vars)
		cfg := edge.Config{
			Addr: f.httpAddr, BaseDomain: f.baseDomain, DeploymentsDir: dirs.deployments, Logger: log,
			PanelHandler: toPanel, TLS: tlsCfg, CustomDomains: lookup,
			Health: db.pool.Ping,
			Runtime: edge.RuntimeConfig{
				UID: appUID, GID: appGID, DropPrivileges: os.Geteuid() == 0, Logs: runtimeLogs,
				UserFor: appUsers.For, OrphanUIDs: appUsers.UIDs(), Node: nodeStore,
				Cgroups: cgroups, AppLimits: limits.Limits{Memory: int64(f.appMemory), Pids: f.appPids, CPUWeight: appCPUWeight},
			},
		}
		if has(nodes.Gitd) {
			cfg.GitHandler = gitHTTP
		}
		if stats != nil {
			cfg.Runtime.Restarted = stats.AppRestarted
		}
		if store != nil {
			cfg.Artifacts = store
		}
		if !has(nodes.Panel) {
			cfg.PanelHandler = newRemotePanel(view, nodeID, jwtKey, log)
		}
		if has(nodes.Edge) {
			recorder = traffic.NewRecorder(traffic.Config{FlushEvery: f.trafficFlush, Logger: log}, db.store)
			seen = append(seen, recorder)
		}
		cfg.Observer = seen.observer()
		if edgeSrv, err = edge.New(cfg, lookup); err != nil {
			return err
		}
		edgeSrv.KillOrphans()
	}
	var localEdge deploy.Edge // nil unless this node serves sites
	if has(nodes.Edge) {
		localEdge = edgeSrv
		if stats != nil {
			stats.WatchSites(edgeSrv)
		}
	}

	broker := pipeline.NewBroker(db.store, log)
	activator := deploy.NewActivator(localEdge, db.store, vars, log)
	activator.RestoreBudget = f.restoreBudget
	activator.Node, activator.Peers = nodeID, view
	if stats != nil {
		activator.Metrics = stats
	}
	sandbox, err := pipeline.BuildUser()
	if err != nil {
		return err
	}
	sandbox.Cgroups = cgroups
	sandbox.Limits = limits.Limits{Memory: int64(f.buildMemory), Pids: f.buildPids, CPUWeight: buildCPUWeight}
	// Builds see nothing of the data directory: not the database, the
	// repositories, the artifacts, nor other builds' workspaces; only the
	// toolchain store, read-only.
	sandbox.Hide = []string{root}
	if tools != nil {
		sandbox.ReadOnly = []string{tools.Dir()}
	}
	qcfg := pipeline.Config{
		ReposDir: dirs.repos, WorkDir: dirs.work, CacheDir: dirs.cache, ArtifactsDir: dirs.artifacts, DeploymentsDir: dirs.deployments,
		Concurrency: f.concurrency, MaxLogLines: f.logLines, MaxLogBytes: f.logBytes, URL: urlFor, BaseDomain: f.baseDomain,
		Env: vars, Logger: log, Toolchains: tools, KeepBuilds: f.keepBuilds, AppUsers: appUsers,
		MaxWorkspaceBytes: int64(f.maxWorkspace), Node: nodeID, Git: has(nodes.Gitd),
		Sites: buildForgetter{edge: edgeSrv, store: db.store, log: log},
	}
	if store != nil {
		qcfg.Blobs = store
	}
	if stats != nil {
		qcfg.Metrics = stats
	}
	queue, err := pipeline.NewQueue(qcfg, db.store, broker, activator, sandbox, has(nodes.Worker))
	if err != nil {
		return err
	}
	svc, err := deploy.New(deploy.Config{BaseDomain: f.baseDomain, Logger: log}, db.store, vars, queue)
	if err != nil {
		return err
	}
	if n, err := svc.SeedAdmin(ctx, os.Getenv("MINIVERCEL_INITIAL_ADMIN_KEYS")); err != nil {
		return fmt.Errorf("MINIVERCEL_INITIAL_ADMIN_KEYS: %w", err)
	} else if n > 0 {
		log.Info("created the admin user", "keys", n)
	}
	if n, _ := db.store.CountUsers(ctx); n == 0 {
		log.Warn("no user can push yet: set MINIVERCEL_INITIAL_ADMIN_KEYS or run: minivercel admin key add \"$(cat ~/.ssh/id_ed25519.pub)\"")
	}

	type server interface {
		Listen() error
		Serve() error
		Shutdown(context.Context) error
	}
	// In the order they stop: git first so no new push starts, the panel,
	// the edge last so sites keep serving until the very end.
	var gitSrv *gitd.Server
	var hookSrv *hooks.Server
	var panelSrv *panel.Server
	var servers []server
	if has(nodes.Gitd) {
		hookSrv, err = hooks.NewServer(hooks.ServerConfig{SocketPath: dirs.hookSocket(), Logger: log}, queue)
		if err != nil {
			return err
		}
		gitSrv, err = gitd.New(gitd.Config{
			Addr: f.sshAddr, HostKeyPath: filepath.Join(root, "ssh_host_ed25519_key"), ReposDir: dirs.repos,
			HookCommand: exe, HookSocket: dirs.hookSocket(), Logger: log, MaxPushBytes: int64(f.maxPush),
			Commands: sshcmd.New(sshcmd.Config{BaseDomain: f.baseDomain, URL: urlFor, Logger: log}, svc, db.store, queue),
		}, svc, svc, hookSrv)
		if err != nil {
			return err
		}
		gitHandler, err := gitd.NewHTTPHandler(gitd.HTTPConfig{
			ReposDir: dirs.repos, HookCommand: exe, HookSocket: dirs.hookSocket(), Logger: log, MaxPushBytes: int64(f.maxPush),
		}, svc, svc, hookSrv)
		if err != nil {
			return err
		}
		gitHTTP.set(gitHandler)
		servers = append(servers, gitSrv, hookSrv)
	}
	if has(nodes.Panel) {
		auth, err := creds.NewAuthenticator(db.store, jwtKey, 0)
		if err != nil {
			return err
		}
		var sites panel.Sites
		if edgeSrv != nil && has(nodes.Edge) {
			sites = edgeSrv
		}
		panelSrv, err = panel.New(panel.Config{
			Addr: "unix:" + dirs.socket("panel"), BaseDomain: f.baseDomain, URL: urlFor, Logger: log,
		}, db.store, svc, auth, queue, sites)
		if err != nil {
			return err
		}
		servers = append(servers, panelSrv)
	}
	if edgeSrv != nil {
		servers = append(servers, edgeSrv)
	}
	if metricsSrv != nil {
		servers = append(servers, metricsSrv)
	}
	if pprofSrv != nil {
		servers = append(servers, pprofSrv)
	}
	for _, l := range servers {
		if err := l.Listen(); err != nil {
			return err
		}
	}
	if panelSrv != nil {
		toPanel.set(panelProxy(dirs.socket("panel"), jwtKey))
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, l := range servers {
		g.Go(func() error { return ignoreClosed(l.Serve()) })
	}
	// The cluster's bookkeeping: this node's heartbeat, the notifications
	// of the others, their log lines for followers here, and the builds of
	// workers that died.
	bg, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var background sync.WaitGroup
	// An edge's agent subscribes before the node says it is a live edge:
	// an activation asking it to prepare in the meantime is answered once
	// the sites are back.
	var agent *deploy.Agent
	if has(nodes.Edge) {
		agent = deploy.NewAgent(edgeSrv, db.store, vars, nodeID, events, log)
		if store != nil {
			agent.Forget = extractedRemover(dirs.deployments, *store)
		}
	}
	background.Go(func() { _ = registry.Run(bg) })
	background.Go(func() { events.Run(bg) })
	background.Go(func() { followAnnouncements(bg, events, broker) })
	if has(nodes.Worker) {
		background.Go(func() { forgetCollected(bg, events, queue) })
	}
	background.Go(func() { queue.Reap(bg, view, nodes.DeadAfter) })
	if recorder != nil {
		background.Go(func() { recorder.Run(bg) })
	}
	// The listeners serve first. Static sites come back before the edge
	// says it is ready, so a restart never answers a 404 for a site that
	// was live; apps start in the background meanwhile, their hosts
	// answering 503 "starting" until they serve, so one slow or broken app
	// never keeps the server or the other sites down.
	startErr := start(gctx, activator, queue, has(nodes.Edge), log)
	if startErr == nil && agent != nil {
		background.Go(func() { agent.Run(bg) })
	}
	if startErr == nil {
		if edgeSrv != nil {
			edgeSrv.SetReady(true)
			if a := edgeSrv.TLSAddr(); a != nil {
				log.Info("https edge listening", "addr", a.String())
			}
		}
		attrs := []any{"roles", roles.String(), "base_domain", f.baseDomain, "data_dir", root}
		if gitSrv != nil {
			attrs = append(attrs, "ssh", gitSrv.Addr().String())
		}
		if edgeSrv != nil {
			attrs = append(attrs, "http", edgeSrv.Addr().String())
		}
		log.Info("minivercel is ready", attrs...)
		<-gctx.Done()
	}
	stop() // a second signal now forces exit through the default handler
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if edgeSrv != nil {
		edgeSrv.SetReady(false)
	}
	activator.WaitRestored() // its context ended: the attempts stop
	errs := []error{startErr}
	if gitSrv != nil {
		errs = append(errs, gitSrv.Shutdown(sctx), hookSrv.Shutdown(sctx))
	}
	errs = append(errs, queue.Shutdown(sctx))
	if edgeSrv != nil {
		errs = append(errs, edgeSrv.Shutdown(sctx))
	}
	if panelSrv != nil {
		errs = append(errs, panelSrv.Shutdown(sctx))
	}
	if metricsSrv != nil {
		errs = append(errs, metricsSrv.Shutdown(sctx))
	}
	if pprofSrv != nil {
		errs = append(errs, pprofSrv.Shutdown(sctx))
	}
	// The heartbeat stops last: the node says it stopped once its work is
	// done.
	stopBackground()
	background.Wait()
	if recorder != nil { // the edge has stopped: its last requests are counted
		// A deadline of its own: a slow stop of the parts before it must
		// not lose the last minute's counts.
		fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		errs = append(errs, recorder.Shutdown(fctx))
		cancel()
	}
	if err := g.Wait(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// followAnnouncements wakes the broker's followers of builds running on
// other nodes when those nodes store lines.
func followAnnouncements(ctx context.Context, events *schema.Listener, broker *pipeline.Broker) {
	logs, unsubscribe := events.Subscribe(schema.ChannelLogs)
	defer unsubscribe()
	for {
		select {
		case <-ctx.Done():
			return
		case msg := <-logs:
			id, _ := strconv.ParseInt(msg, 10, 64) // Resync: 0 wakes them all
			broker.Announce(id)
		}
	}
}

// forgetCollected removes this worker's files of the builds other nodes
// collect.
func forgetCollected(ctx context.Context, events *schema.Listener, queue *pipeline.Queue) {
	builds, unsubscribe := events.Subscribe(schema.ChannelBuilds)
	defer unsubscribe()
	for {
		select {
		case <-ctx.Done():
			return
		case msg := <-builds:
			if id, ok := strings.CutPrefix(msg, "forget:"); ok {
				if n, err := strconv.ParseInt(id, 10, 64); err == nil {
					queue.ForgetBuild(ctx, n)
				}
			}
		}
	}
}

// buildForgetter tells this node's edge, and every other edge, that a
// build's files are gone (pipeline.BuildForgetter).
type buildForgetter struct {
	edge  *edge.Server // nil on a node without one
	store *schema.Store
	log   *slog.Logger
}

func (b buildForgetter) ForgetBuild(project, slug string, buildID int64) {
	if b.edge != nil {
		b.edge.ForgetBuild(project, slug, buildID)
	}
	if err := b.store.Notify(context.Background(), schema.ChannelBuilds, "forget:"+strconv.FormatInt(buildID, 10)); err != nil {
		b.log.Warn("tell the edges of a collected build", "build", buildID, "err", err)
	}
}

// start brings the sites back and starts the build workers, once the
// listeners serve.
func start(ctx context.Context, activator *deploy.Activator, queue *pipeline.Queue, edge bool, log *slog.Logger) error {
	if edge {
		n, err := activator.Restore(ctx)
		if err != nil {
			return err
		}
		log.Info("restoring active deployments", "count", n)
		activator.WaitTried(readyWait)
	}
	return queue.Start(ctx)
}

// readyWait bounds how long /healthz waits, at start, for the apps' first
// start attempts: the static sites serve already, and a hung app answers
// 503 "starting" while it is tried again.
const readyWait = 30 * time.Second

func ignoreClosed(err error) error {
	if err == nil || errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed) ||
		errors.Is(err, gitd.ErrServerClosed) || errors.Is(err, hooks.ErrServerClosed) {
		return nil
	}
	return err
}

// siteURL returns how users reach a host through the edge: https when TLS is
// on, with the port unless it is the scheme's default.
func siteURL(httpAddr, httpsAddr string, publicPort int) func(host string) string {
	scheme, addr, defaultPort := "http", httpAddr, 80
	if httpsAddr != "" {
		scheme, addr, defaultPort = "https", httpsAddr, 443
	}
	port := publicPort
	if port == 0 {
		if _, p, err := net.SplitHostPort(addr); err == nil {
			port, _ = strconv.Atoi(p)
		}
	}
	return func(host string) string {
		if port == 0 || port == defaultPort {
			return scheme + "://" + host + "/"
		}
		return scheme + "://" + host + ":" + strconv.Itoa(port) + "/"
	}
}
