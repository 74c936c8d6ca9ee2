// Package deploy is minivercel's service layer: every operation a user can
// ask for (create, change and delete a project; rebuild, cancel, activate,
// roll back and redeploy; environment variables; custom domains; SSH keys; API
// tokens; users) is one method of Service, with one validator per kind of
// input. The CLI, the JSON API, the pages and git's front ends are thin
// adapters over it: they parse their input, call one method and render the
// result, so the same bad input gets the same refusal, in the same words,
// whichever way it came in (see Error).
//
// The package also holds the rules that connect the database to the edge:
// how a build becomes a served Site, how production switches to a build
// (Activator), which hosts get certificates (CertPolicy), and how a restarted
// server brings every site back (Restore).
package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"

	"minivercel/hosts"
	"minivercel/schema"
	"minivercel/secret"
)

// Builds is what the service asks of the build system (*pipeline.Queue).
// Methods are safe for concurrent use; a build or project that does not exist
// is an error wrapping schema.ErrNotFound.
type Builds interface {
	// Rebuild queues a new build of a branch's current commit, or of the
	// commit whose id ref is (7 to 64 hex digits) when no branch is named
	// ref; a missing repository, branch or commit wraps schema.ErrNotFound.
	Rebuild(ctx context.Context, project schema.Project, ref string, userID int64) (schema.Build, error)
	// Cancel stops a queued or running build; a finished build is
	// schema.ErrConflict.
	Cancel(ctx context.Context, buildID int64) error
	// Activate makes a succeeded build serve production, through the
	// running server's activation queue, and returns when it serves or with
	// the reason it does not; ctx bounds the wait.
	Activate(ctx context.Context, buildID int64) error
	// DeleteProject cancels a project's builds, stops serving it and removes
	// its rows, its repository and its artifacts.
	DeleteProject(ctx context.Context, project schema.Project) error
}

// Config configures a Service.
type Config struct {
	// BaseDomain is the domain projects live under; its hosts can never be
	// custom domains. Zero: "localhost".
	BaseDomain string
	// Logger receives the audit log of changes (who changed what, never a
	// secret value). Zero: slog.Default().
	Logger *slog.Logger
}

// Service carries out what users ask for. Its methods are safe for concurrent
// use. Each takes the acting user (for permissions and the audit log); the
// server's own CLI acts as Operator.
type Service struct {
	cfg    Config
	store  *schema.Store
	vars   *secret.Vars
	builds Builds
	hosts  hosts.Scheme
	log    *slog.Logger
}

// Operator is the actor of commands run on the server itself (the CLI): it
// has the filesystem and the database already, so it may do anything.
var Operator = schema.User{Name: "operator", IsAdmin: true}

// isOperator tells the Operator from a real user. A user that is neither (a
// zero User, as a request without a signed-in user would carry) is no one:
// it gets nothing of anyone's.
func isOperator(actor schema.User) bool { return actor.ID == 0 && actor == Operator }

// New returns a Service. vars is required; builds may be nil in a process
// that runs no build system (then building, canceling, activating and
// deleting are ErrUnavailable).
func New(cfg Config, store *schema.Store, vars *secret.Vars, builds Builds) (*Service, error) {
	if store == nil || vars == nil {
		return nil, errors.New("new deploy service: the store and the variables service are required")
	}
	if cfg.BaseDomain == "" {
		cfg.BaseDomain = "localhost"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{cfg: cfg, store: store, vars: vars, builds: builds,
		hosts: hosts.New(cfg.BaseDomain), log: cfg.Logger.With("component", "deploy")}, nil
}

// withStore is the service on another store: one transaction's.
func (s *Service) withStore(st *schema.Store) *Service {
	c := *s
	c.store = st
	return &c
}

// CanBuild reports whether this process can build, cancel and activate.
func (s *Service) CanBuild() bool { return s.builds != nil }

func (s *Service) needBuilds() error {
	if s.builds == nil {
		return refuse(ErrUnavailable, "", "this server runs no build system")
	}
	return nil
}

// Project returns a project by name.
func (s *Service) Project(ctx context.Context, name string) (schema.Project, error) {
	p, err := s.store.ProjectByName(ctx, name)
	return found(p, err, "project "+name, func() *Error { return notFound("no project named %q", name) })
}

// found passes on what a read returned: its ErrNotFound as the user's
// refusal (missing), any other error as a failure naming what was read.
func found[T any](v T, err error, what string, missing func() *Error) (T, error) {
	if errors.Is(err, schema.ErrNotFound) {
		return v, missing()
	}
	if err != nil {
		return v, fmt.Errorf("read %s: %w", what, err)
	}
	return v, nil
}

// listOf lists what a project has, the project named as a user typed it.
func listOf[T any](ctx context.Context, s *Service, project, what string, list func(context.Context, int64) ([]T, error)) ([]T, error) {
	p, err := s.Project(ctx, project)
	if err != nil {
		return nil, err
	}
	items, err := list(ctx, p.ID)
	if err != nil {
		return nil, fmt.Errorf("list %s of %s: %w", what, p.Name, err)
	}
	return items, nil
}

// ValidateProjectName checks a new project's name.
func ValidateProjectName(name string) error {
	if err := hosts.ValidateProject(name); err != nil {
		return invalid("name", "%s", err.Error())
	}
	return nil
}

// CreateProject creates a project with the patch applied to the defaults, in
// one transaction: a refused setting leaves no project behind. A name that is
// taken is ErrConflict.
func (s *Service) CreateProject(ctx context.Context, actor schema.User, name string, patch SettingsPatch) (schema.Project, error) {
	if err := ValidateProjectName(name); err != nil {
		return schema.Project{}, err
	}
	if err := mayChangeLimits(actor, patch); err != nil {
		return schema.Project{}, err
	}
	var out schema.Project
	err := s.store.InTx(ctx, func(tx pgx.Tx) error {
		st := s.store.WithTx(tx)
		p, created, err := st.EnsureProject(ctx, name, actor.ID)
		if err != nil {
			return err
		}
		if !created {
			return conflict("project %q already exists", name)
		}
		out = p
		if patch.Empty() {
			return nil
		}
		ps, err := patch.Apply(p.Settings())
		if err != nil {
			return err
		}
		out, err = st.UpdateProjectSettings(ctx, p.ID, ps)
		return err
	})
	if err != nil {
		if AsError(err) != nil {
			return schema.Project{}, err
		}
		return schema.Project{}, fmt.Errorf("create project %s: %w", name, err)
	}
	s.log.Info("project created", "project", name, "by", actor.Name)
	return out, nil
}

// EnsureProject creates the project a first push names, owned by the pusher;
// it reports whether it was created. Every authenticated user may push to
// every project: minivercel has one team per server.
func (s *Service) EnsureProject(ctx context.Context, name string, ownerID int64) (bool, error) {
	_, created, err := s.store.EnsureProject(ctx, name, ownerID)
	if created {
		s.log.Info("project created by a push", "project", name, "user_id", ownerID)
	}
	return created, err
}

// ProjectExists reports whether a project exists (for fetches and clones).
func (s *Service) ProjectExists(ctx context.Context, name string) (bool, error) {
	_, err := s.store.ProjectByName(ctx, name)
	if errors.Is(err, schema.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// UpdateProject changes a project's settings; they apply from the next build
// (the health check from the next activation).
func (s *Service) UpdateProject(ctx context.Context, actor schema.User, name string, patch SettingsPatch) (schema.Project, error) {
	p, err := s.Project(ctx, name)
	if err != nil {
		return p, err
	}
	if err := mayChangeLimits(actor, patch); err != nil {
		return p, err
	}
	ps, err := patch.Apply(p.Settings())
	if err != nil {
		return p, err
	}
	p, err = s.store.UpdateProjectSettings(ctx, p.ID, ps)
	if errors.Is(err, schema.ErrInvalid) {
		// ValidateSettings mirrors the database's checks; reaching this
		// means they drifted apart. Still the user's input, not a 500.
		s.log.Warn("database refused project settings that passed validation", "project", name, "err", err)
		return p, invalid("", "a setting is out of range")
	}
	if err != nil {
		return p, fmt.Errorf("update project %s: %w", name, err)
	}
	s.log.Info("project settings changed", "project", name, "by", actor.Name)
	return p, nil
}

// mayChangeLimits refuses a patch of resource limits by anyone but an
// administrator. Limits protect the server and every other project: a
// member may not raise the ones the operator set, neither when creating a
// project nor later.
func mayChangeLimits(actor schema.User, patch SettingsPatch) error {
	if (patch.MemoryLimit != nil || patch.PidsLimit != nil) && !actor.IsAdmin {
		return refuse(ErrForbidden, "memory_limit", "only an administrator can change a project's resource limits")
	}
	return nil
}

// DeleteProject stops serving a project, then removes it: builds, logs,
// deployments, variables and domains, its repository and its files. A later
// push of the same name starts from nothing.
func (s *Service) DeleteProject(ctx context.Context, actor schema.User, name string) error {
	p, err := s.Project(ctx, name)
	if err != nil {
		return err
	}
	if err := s.needBuilds(); err != nil {
		return err
	}
	// The build system stops serving the project before its rows go, under
	// the lock activations take: a route left pointing at deleted rows
	// would keep the site up with no way to manage it.
	if err := s.builds.DeleteProject(ctx, p); err != nil && !errors.Is(err, schema.ErrNotFound) {
		return fmt.Errorf("delete project %s: %w", name, err)
	}
	s.log.Info("project deleted", "project", name, "by", actor.Name)
	s.announce(ctx, name)
	return nil
}

// announce tells every edge node that a project's routes or domains
// changed (schema.ChannelRoutes); they read them again. A failure is
// logged: edges also read every route again periodically.
func (s *Service) announce(ctx context.Context, project string) {
	if err := s.store.Notify(context.WithoutCancel(ctx), schema.ChannelRoutes, project); err != nil {
		s.log.Warn("tell the edges of a change", "project", project, "err", err)
	}
}
