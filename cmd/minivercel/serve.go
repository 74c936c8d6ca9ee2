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
	"time"

	"golang.org/x/sync/errgroup"

	"minivercel/creds"
	"minivercel/deploy"
	"minivercel/edge"
	"minivercel/gitd"
	"minivercel/hooks"
	"minivercel/limits"
	"minivercel/panel"
	"minivercel/pipeline"
	"minivercel/proc"
	"minivercel/toolchain"
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

func serve(ctx context.Context, stop context.CancelFunc, args []string, stderr io.Writer) error {
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
	if err := parseFlags(fs, args, os.Getenv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("serve takes no arguments, got %q", fs.Args())}
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
	if f.logLines < 1 || f.logBytes < 1 {
		return usageError{"--build-log-lines and --build-log-bytes must be at least 1"}
	}
	if f.keepBuilds < 1 {
		return usageError{"--keep-builds must be at least 1"}
	}
	log, err := f.logger(stderr)
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
	db, _, vars, err := f.openVars(ctx, log, false)
	if err != nil {
		return err
	}
	defer db.Close()
	sandbox, err := pipeline.BuildUser()
	if err != nil {
		return err
	}
	cgroups := limits.New(limits.Config{ID: root, Logger: log})
	defer func() {
		if err := cgroups.Close(); err != nil {
			log.Warn("remove cgroups", "err", err)
		}
	}()
	sandbox.Cgroups = cgroups
	sandbox.Limits = limits.Limits{Memory: int64(f.buildMemory), Pids: f.buildPids, CPUWeight: buildCPUWeight}
	// Builds see nothing of the data directory: not the database, the
	// repositories, the artifacts, nor other builds' workspaces; only the
	// toolchain store, read-only.
	sandbox.Hide = []string{root}
	tools, err := openToolchains(ctx, f.toolchainDir, root, log)
	if err != nil {
		return err
	}
	var nodes edge.NodeStore
	if tools != nil {
		sandbox.ReadOnly = []string{tools.Dir()}
		nodes = tools
	}
	appUID, appGID, err := proc.SystemUser(proc.AppUserName)
	if err != nil {
		return err
	}
	// Each project's apps run as a user of this server's own: another
	// server on the machine never shares one, nor kills its apps at start.
	appUsers := proc.NewAppUsers(root)
	runtimeLogs := newRuntimeLogs(db.store, log)
	defer runtimeLogs.Close()
	urlFor := siteURL(f.httpAddr, f.httpsAddr, f.publicPort)
	tlsCfg, err := tlsConfig(f, db.store, log)
	if err != nil {
		return err
	}
	jwtKey, err := loadSecretKey(os.Getenv("MINIVERCEL_JWT_KEY"), filepath.Join(root, "jwt.key"))
	if err != nil {
		return err
	}
	lookup := deploy.NewLookup(db.store, vars)
	// The panel listens on loopback; the edge forwards the base-domain host to
	// it once its port is known.
	toPanel, gitHTTP := &lateHandler{}, &lateHandler{}
	edgeSrv, err := edge.New(edge.Config{
		Addr: f.httpAddr, BaseDomain: f.baseDomain, DeploymentsDir: dirs.deployments, Logger: log,
		PanelHandler: toPanel, GitHandler: gitHTTP, TLS: tlsCfg, CustomDomains: lookup,
		Health: db.pool.Ping,
		Runtime: edge.RuntimeConfig{
			UID: appUID, GID: appGID, DropPrivileges: os.Geteuid() == 0, Logs: runtimeLogs,
			UserFor: appUsers.For, OrphanUIDs: appUsers.UIDs(), Node: nodes,
			Cgroups: cgroups, AppLimits: limits.Limits{Memory: int64(f.appMemory), Pids: f.appPids, CPUWeight: appCPUWeight},
		},
	}, lookup)
	if err != nil {
		return err
	}
	edgeSrv.KillOrphans()
	broker := pipeline.NewBroker(db.store, log)
	activator := deploy.NewActivator(edgeSrv, db.store, vars, log)
	activator.RestoreBudget = f.restoreBudget
	queue, err := pipeline.NewQueue(pipeline.Config{
		ReposDir: dirs.repos, WorkDir: dirs.work, CacheDir: dirs.cache, ArtifactsDir: dirs.artifacts, DeploymentsDir: dirs.deployments,
		Concurrency: f.concurrency, MaxLogLines: f.logLines, MaxLogBytes: f.logBytes, URL: urlFor, BaseDomain: f.baseDomain,
		Env: vars, Logger: log, Toolchains: tools, KeepBuilds: f.keepBuilds, AppUsers: appUsers, Sites: edgeSrv,
	}, db.store, broker, activator, sandbox, true)
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
	auth, err := creds.NewAuthenticator(db.store, jwtKey, 0)
	if err != nil {
		return err
	}
	panelSrv, err := panel.New(panel.Config{
		Addr: "unix:" + dirs.socket("panel"), BaseDomain: f.baseDomain, URL: urlFor, Logger: log,
	}, db.store, svc, auth, queue, edgeSrv)
	if err != nil {
		return err
	}
	hookSrv, err := hooks.NewServer(hooks.ServerConfig{SocketPath: dirs.hookSocket(), Logger: log}, queue)
	if err != nil {
		return err
	}
	gitSrv, err := gitd.New(gitd.Config{
		Addr: f.sshAddr, HostKeyPath: filepath.Join(root, "ssh_host_ed25519_key"), ReposDir: dirs.repos,
		HookCommand: exe, HookSocket: dirs.hookSocket(), Logger: log,
	}, svc, svc, hookSrv)
	if err != nil {
		return err
	}

	gitHandler, err := gitd.NewHTTPHandler(gitd.HTTPConfig{
		ReposDir: dirs.repos, HookCommand: exe, HookSocket: dirs.hookSocket(), Logger: log,
	}, svc, svc, hookSrv)
	if err != nil {
		return err
	}
	gitHTTP.set(gitHandler)

	for _, l := range []interface{ Listen() error }{panelSrv, edgeSrv, hookSrv, gitSrv} {
		if err := l.Listen(); err != nil {
			return err
		}
	}
	toPanel.set(panelProxy(dirs.socket("panel")))
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return ignoreClosed(edgeSrv.Serve()) })
	g.Go(func() error { return ignoreClosed(hookSrv.Serve()) })
	g.Go(func() error { return ignoreClosed(gitSrv.Serve()) })
	g.Go(func() error { return ignoreClosed(panelSrv.Serve()) })
	// The listeners serve first. Static sites come back before the edge
	// says it is ready, so a restart never answers a 404 for a site that
	// was live; apps start in the background meanwhile, their hosts
	// answering 503 "starting" until they serve, so one slow or broken app
	// never keeps the server or the other sites down.
	startErr := start(gctx, activator, queue, log)
	if startErr == nil {
		edgeSrv.SetReady(true)
		if a := edgeSrv.TLSAddr(); a != nil {
			log.Info("https edge listening", "addr", a.String())
		}
		log.Info("minivercel is ready", "ssh", gitSrv.Addr().String(), "http", edgeSrv.Addr().String(),
			"base_domain", f.baseDomain, "data_dir", root)
		<-gctx.Done()
	}
	stop() // a second signal now forces exit through the default handler
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Git first so no new push starts, builds next, the edge last so sites keep
	// serving until the very end.
	edgeSrv.SetReady(false)
	activator.WaitRestored() // its context ended: the attempts stop
	errs := []error{
		startErr,
		gitSrv.Shutdown(sctx),
		hookSrv.Shutdown(sctx),
		queue.Shutdown(sctx),
		edgeSrv.Shutdown(sctx),
		panelSrv.Shutdown(sctx),
	}
	if err := g.Wait(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// start brings the sites back and starts the build workers, once the
// listeners serve.
func start(ctx context.Context, activator *deploy.Activator, queue *pipeline.Queue, log *slog.Logger) error {
	n, err := activator.Restore(ctx)
	if err != nil {
		return err
	}
	log.Info("restoring active deployments", "count", n)
	activator.WaitTried(readyWait)
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
