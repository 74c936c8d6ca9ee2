package panel

import (
	"time"

	"minivercel/schema"
)

// The API's JSON shapes. They are separate from the schema's row types so a
// column added to a table never appears in the API by accident (artifact
// paths and password hashes stay inside).

type userJSON struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	IsAdmin   bool      `json:"is_admin"`
	CreatedAt time.Time `json:"created_at"`
}

func toUserJSON(u schema.User) userJSON {
	return userJSON{ID: u.ID, Name: u.Name, IsAdmin: u.IsAdmin, CreatedAt: u.CreatedAt}
}

// settingsJSON is a project's changeable settings; the same names are the
// fields of POST /api/projects and PATCH /api/projects/{name}.
type settingsJSON struct {
	ProductionBranch string `json:"production_branch"`
	Framework        string `json:"framework"`
	InstallCommand   string `json:"install_command"`
	BuildCommand     string `json:"build_command"`
	StartCommand     string `json:"start_command"`
	OutputDir        string `json:"output_dir"`
	HealthPath       string `json:"health_path"`
	HealthTries      int    `json:"health_tries"`
	HealthIntervalMS int    `json:"health_interval_ms"`
	// MemoryLimit (bytes) and PidsLimit bound one build command and one app
	// process; 0 is the server's default.
	MemoryLimit int64 `json:"memory_limit"`
	PidsLimit   int64 `json:"pids_limit"`
}

// projectJSON is a project as listed.
type projectJSON struct {
	Name             string `json:"name"`
	ProductionBranch string `json:"production_branch"`
	URL              string `json:"url"`
	// Status is the latest build's status; null before the first build.
	Status        *schema.BuildStatus `json:"status"`
	LatestBuildID *int64              `json:"latest_build_id"`
	ActiveBuildID *int64              `json:"active_build_id"`
	LastDeployAt  *time.Time          `json:"last_deploy_at"`
	// Health is "healthy", "unhealthy", or "none" when nothing serves.
	Health    string    `json:"health"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// projectDetailJSON is one project with its settings and active build.
type projectDetailJSON struct {
	projectJSON
	Settings    settingsJSON `json:"settings"`
	ActiveBuild *buildJSON   `json:"active_build"`
	// PreviewURLs are the branch previews: one per branch other than the
	// production branch that has a succeeded build, newest first.
	PreviewURLs []previewURLJSON `json:"preview_urls"`
}

// previewURLJSON is one branch preview: the URL following the branch, and
// the build it serves.
type previewURLJSON struct {
	Branch  string `json:"branch"`
	URL     string `json:"url"`
	BuildID int64  `json:"build_id"`
}

type buildJSON struct {
	ID            int64              `json:"id"`
	Project       string             `json:"project"`
	Status        schema.BuildStatus `json:"status"`
	Stage         schema.Stage       `json:"stage"`
	Branch        string             `json:"branch"`
	CommitSHA     string             `json:"commit_sha"`
	CommitMessage string             `json:"commit_message"`
	Error         string             `json:"error"`
	Kind          string             `json:"kind"`
	CreatedAt     time.Time          `json:"created_at"`
	StartedAt     *time.Time         `json:"started_at"`
	FinishedAt    *time.Time         `json:"finished_at"`
	// DurationMS is finished minus started; for a running build, the time so
	// far; null before it starts.
	DurationMS *int64 `json:"duration_ms"`
	// URL serves exactly this build, <project>--<slug>.<base>.
	URL string `json:"url"`
	// BranchURL follows the branch, <project>--git-<branch slug>.<base>: it
	// serves the branch's latest succeeded build, which is this one or a
	// newer one. Null for the production branch, whose URL is the project's.
	BranchURL *string `json:"branch_url"`
	Active    bool    `json:"active"`
}

type logLineJSON struct {
	Seq  int    `json:"seq"`
	Line string `json:"line"`
}

type deploymentJSON struct {
	ID            int64                   `json:"id"`
	BuildID       int64                   `json:"build_id"`
	Environment   string                  `json:"environment"`
	Status        schema.DeploymentStatus `json:"status"`
	Port          int                     `json:"port"`
	Error         string                  `json:"error"`
	ActivatedAt   time.Time               `json:"activated_at"`
	DeactivatedAt *time.Time              `json:"deactivated_at"`
	Active        bool                    `json:"active"`
}

type keyJSON struct {
	ID          int64      `json:"id"`
	Name        string     `json:"name"`
	User        string     `json:"user"`
	Fingerprint string     `json:"fingerprint"`
	PublicKey   string     `json:"public_key"`
	CreatedAt   time.Time  `json:"created_at"`
	LastUsedAt  *time.Time `json:"last_used_at"`
}

func toSettingsJSON(ps schema.ProjectSettings) settingsJSON {
	return settingsJSON{
		ProductionBranch: ps.ProductionBranch, Framework: ps.Framework, InstallCommand: ps.InstallCommand,
		BuildCommand: ps.BuildCommand, StartCommand: ps.StartCommand, OutputDir: ps.OutputDir,
		HealthPath: ps.HealthPath, HealthTries: ps.HealthTries, HealthIntervalMS: ps.HealthIntervalMS,
		MemoryLimit: ps.MemoryLimit, PidsLimit: ps.PidsLimit,
	}
}

// apiHealth names what the edge says about a project's production:
// "healthy", "unhealthy" or "none".
func (s *Server) apiHealth(name string) string {
	if h := s.health(name); h != "" {
		return h
	}
	return "none"
}

func (s *Server) toProjectJSON(p schema.ProjectSummary) projectJSON {
	return projectJSON{
		Name: p.Name, ProductionBranch: p.ProductionBranch, URL: s.projectURL(p.Name),
		Status: p.LatestStatus, LatestBuildID: p.LatestBuildID, ActiveBuildID: p.ActiveBuildID,
		LastDeployAt: p.LastDeployAt, Health: s.apiHealth(p.Name), CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
}

// toBuildJSON shapes a build; productionBranch is its project's, which
// decides whether the build has a branch URL.
func (s *Server) toBuildJSON(b schema.Build, active bool, productionBranch string) buildJSON {
	j := buildJSON{
		ID: b.ID, Project: b.ProjectName, Status: b.Status, Stage: b.Stage, Branch: b.Branch,
		CommitSHA: b.CommitSHA, CommitMessage: b.CommitMessage, Error: b.Error, Kind: b.Kind,
		CreatedAt: b.CreatedAt, StartedAt: b.StartedAt, FinishedAt: b.FinishedAt,
		URL: s.buildURL(b), Active: active,
	}
	if u := s.branchURL(b.ProjectName, b.Branch, productionBranch); u != "" {
		j.BranchURL = &u
	}
	if b.StartedAt != nil {
		end := time.Now()
		if b.FinishedAt != nil {
			end = *b.FinishedAt
		}
		ms := end.Sub(*b.StartedAt).Milliseconds()
		j.DurationMS = &ms
	}
	return j
}

func toDeploymentJSON(d schema.Deployment) deploymentJSON {
	return deploymentJSON{
		ID: d.ID, BuildID: d.BuildID, Environment: d.Environment, Status: d.Status, Port: d.Port,
		Error: d.Error, ActivatedAt: d.ActivatedAt, DeactivatedAt: d.DeactivatedAt,
		Active: d.Status == schema.DeploymentActive,
	}
}

func toKeyJSON(k schema.SSHKey) keyJSON {
	return keyJSON{ID: k.ID, Name: k.Name, User: k.UserName, Fingerprint: k.Fingerprint,
		PublicKey: k.PublicKey, CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt}
}
