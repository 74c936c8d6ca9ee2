package schema

import "time"

// BuildStatus is the lifecycle state of a build:
// queued → running → succeeded | failed | canceled.
type BuildStatus string

// The build statuses.
const (
	BuildQueued    BuildStatus = "queued"
	BuildRunning   BuildStatus = "running"
	BuildSucceeded BuildStatus = "succeeded"
	BuildFailed    BuildStatus = "failed"
	BuildCanceled  BuildStatus = "canceled"
)

// String returns the status as stored.
func (s BuildStatus) String() string { return string(s) }

// Valid reports whether s is one of the build statuses.
func (s BuildStatus) Valid() bool {
	switch s {
	case BuildQueued, BuildRunning, BuildSucceeded, BuildFailed, BuildCanceled:
		return true
	}
	return false
}

// Done reports whether the status is final.
func (s BuildStatus) Done() bool {
	return s == BuildSucceeded || s == BuildFailed || s == BuildCanceled
}

// Stage is the step a running build is in, in this order:
// clone, install, build, artifact, activate.
type Stage string

// The build stages.
const (
	StageClone    Stage = "clone"
	StageInstall  Stage = "install"
	StageBuild    Stage = "build"
	StageArtifact Stage = "artifact"
	StageActivate Stage = "activate"
)

// String returns the stage as stored.
func (s Stage) String() string { return string(s) }

// Valid reports whether s is one of the stages.
func (s Stage) Valid() bool {
	switch s {
	case StageClone, StageInstall, StageBuild, StageArtifact, StageActivate:
		return true
	}
	return false
}

// DeploymentStatus is the state of one activation of a build.
type DeploymentStatus string

// The deployment statuses: one being started, the one serving, one that was
// replaced, one whose activation failed, and one whose process started but
// failed its health checks.
const (
	DeploymentStarting   DeploymentStatus = "starting"
	DeploymentActive     DeploymentStatus = "active"
	DeploymentSuperseded DeploymentStatus = "superseded"
	DeploymentFailed     DeploymentStatus = "failed"
	DeploymentUnhealthy  DeploymentStatus = "unhealthy"
)

// String returns the status as stored.
func (s DeploymentStatus) String() string { return string(s) }

// Valid reports whether s is one of the deployment statuses.
func (s DeploymentStatus) Valid() bool {
	switch s {
	case DeploymentStarting, DeploymentActive, DeploymentSuperseded, DeploymentFailed, DeploymentUnhealthy:
		return true
	}
	return false
}

// User is a person who may push and manage projects.
type User struct {
	ID        int64
	Name      string
	IsAdmin   bool
	CreatedAt time.Time
	// SessionsValidAfter: sessions issued before it are refused (sign-out and
	// password changes move it).
	SessionsValidAfter time.Time
}

// SSHKey is a public key that authenticates its user over SSH.
type SSHKey struct {
	ID          int64
	UserID      int64
	UserName    string
	Name        string
	Fingerprint string // SHA256:… as printed by ssh-keygen -l
	PublicKey   string // authorized_keys form
	CreatedAt   time.Time
	LastUsedAt  *time.Time
}

// Project is one app: a git repository and its builds and deployments.
type Project struct {
	ID               int64
	Name             string
	OwnerID          *int64
	ProductionBranch string
	Framework        string
	InstallCommand   string
	BuildCommand     string
	StartCommand     string
	OutputDir        string
	HealthPath       string // GET here must answer below 500 before a server app takes traffic
	HealthTries      int    // health check attempts before the deployment is unhealthy
	HealthIntervalMS int    // time between health check attempts
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// Build is one build of one commit of a branch.
type Build struct {
	ID             int64
	ProjectID      int64
	ProjectName    string
	Slug           string // random, names the build's own URL
	Branch         string
	CommitSHA      string
	CommitMessage  string
	Status         BuildStatus
	Stage          Stage
	Error          string
	Kind           string
	SPA            bool
	StartCommand   string // the web process's shell command; empty for static builds
	ArtifactPath   string
	ArtifactSHA256 string
	ArtifactSize   int64
	CreatedBy      *int64
	CreatedAt      time.Time
	StartedAt      *time.Time
	FinishedAt     *time.Time
}

// LogLine is one line of a build's log; Seq counts from 1 per build.
type LogLine struct {
	BuildID   int64
	Seq       int
	Line      string
	CreatedAt time.Time
}

// Deployment is one activation of a build for a project.
type Deployment struct {
	ID            int64
	ProjectID     int64
	BuildID       int64
	Environment   string
	Status        DeploymentStatus
	Port          int    // the server app's port while it runs; 0 for static builds
	Error         string // why a deployment failed
	ActivatedAt   time.Time
	DeactivatedAt *time.Time
}

// RuntimeLogLine is one line a deployment's process printed; Seq counts from 1
// per deployment and keeps counting across restarts of the process.
type RuntimeLogLine struct {
	DeploymentID int64
	Seq          int64
	Line         string
	CreatedAt    time.Time
}
