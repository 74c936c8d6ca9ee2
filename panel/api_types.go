package panel

import (
	"time"

	"minivercel/apijson"
	"minivercel/schema"
)

// The API's JSON shapes. They are separate from the schema's row types so a
// column added to a table never appears in the API by accident (artifact
// paths and password hashes stay inside); those the commands over SSH
// answer with too are package apijson's.

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

// The shapes the commands over SSH share (package apijson).
type (
	projectJSON    = apijson.Project
	buildJSON      = apijson.Build
	deploymentJSON = apijson.Deployment
	keyJSON        = apijson.Key
)

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

type logLineJSON struct {
	Seq  int    `json:"seq"`
	Line string `json:"line"`
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
	return apijson.NewProject(p, s.urls, s.apiHealth(p.Name))
}

// toBuildJSON shapes a build; productionBranch is its project's, which
// decides whether the build has a branch URL.
func (s *Server) toBuildJSON(b schema.Build, active bool, productionBranch string) buildJSON {
	return apijson.NewBuild(b, active, productionBranch, s.urls, time.Now())
}

func toDeploymentJSON(d schema.Deployment) deploymentJSON { return apijson.NewDeployment(d) }

func toKeyJSON(k schema.SSHKey) keyJSON { return apijson.NewKey(k) }
