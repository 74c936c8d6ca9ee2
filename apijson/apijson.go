// Package apijson is the JSON the API and the commands over SSH answer
// with: one shape per thing, so that a script reads the same fields
// whichever way it asked. The shapes are separate from the schema's row
// types so that a column added to a table never appears by accident
// (artifact paths and password hashes stay inside).
package apijson

import (
	"time"

	"minivercel/hosts"
	"minivercel/schema"
)

// URLs builds the public URLs the shapes carry: Hosts names the hosts,
// URL makes a URL of a host (scheme and port included).
type URLs struct {
	Hosts hosts.Scheme
	URL   func(host string) string
}

// Project is a project's production URL.
func (u URLs) Project(name string) string { return u.URL(u.Hosts.Production(name)) }

// Build is a build's own URL.
func (u URLs) Build(b schema.Build) string { return u.URL(u.Hosts.Build(b.ProjectName, b.Slug)) }

// Branch is the preview URL that follows a branch, as the push output
// prints it: "" for the production branch, whose URL is the project's
// own, and for a branch without a letter or digit, which has no host.
func (u URLs) Branch(project, branch, productionBranch string) string {
	host := u.Hosts.Branch(project, branch)
	if branch == productionBranch || host == "" {
		return ""
	}
	return u.URL(host)
}

// Project is a project as listed.
type Project struct {
	Name             string `json:"name"`
	ProductionBranch string `json:"production_branch"`
	URL              string `json:"url"`
	// Status is the latest build's status; null before the first build.
	Status        *schema.BuildStatus `json:"status"`
	LatestBuildID *int64              `json:"latest_build_id"`
	ActiveBuildID *int64              `json:"active_build_id"`
	LastDeployAt  *time.Time          `json:"last_deploy_at"`
	// Health is "healthy", "unhealthy", or "none" when nothing serves;
	// left out where no edge can tell (a git node over SSH).
	Health    string    `json:"health,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// NewProject shapes a listed project; health is what the edge says of
// it, "" when no edge can tell.
func NewProject(p schema.ProjectSummary, u URLs, health string) Project {
	return Project{
		Name: p.Name, ProductionBranch: p.ProductionBranch, URL: u.Project(p.Name),
		Status: p.LatestStatus, LatestBuildID: p.LatestBuildID, ActiveBuildID: p.ActiveBuildID,
		LastDeployAt: p.LastDeployAt, Health: health, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
}

// Build is one build.
type Build struct {
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

// NewBuild shapes a build; productionBranch is its project's, which
// decides whether the build has a branch URL; now ends a running build's
// duration.
func NewBuild(b schema.Build, active bool, productionBranch string, u URLs, now time.Time) Build {
	j := Build{
		ID: b.ID, Project: b.ProjectName, Status: b.Status, Stage: b.Stage, Branch: b.Branch,
		CommitSHA: b.CommitSHA, CommitMessage: b.CommitMessage, Error: b.Error, Kind: b.Kind,
		CreatedAt: b.CreatedAt, StartedAt: b.StartedAt, FinishedAt: b.FinishedAt,
		URL: u.Build(b), Active: active,
	}
	if branch := u.Branch(b.ProjectName, b.Branch, productionBranch); branch != "" {
		j.BranchURL = &branch
	}
	if b.StartedAt != nil {
		end := now
		if b.FinishedAt != nil {
			end = *b.FinishedAt
		}
		ms := end.Sub(*b.StartedAt).Milliseconds()
		j.DurationMS = &ms
	}
	return j
}

// Deployment is one activation of a build.
type Deployment struct {
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

// NewDeployment shapes a deployment.
func NewDeployment(d schema.Deployment) Deployment {
	return Deployment{
		ID: d.ID, BuildID: d.BuildID, Environment: d.Environment, Status: d.Status, Port: d.Port,
		Error: d.Error, ActivatedAt: d.ActivatedAt, DeactivatedAt: d.DeactivatedAt,
		Active: d.Status == schema.DeploymentActive,
	}
}

// Key is an SSH key.
type Key struct {
	ID          int64      `json:"id"`
	Name        string     `json:"name"`
	User        string     `json:"user"`
	Fingerprint string     `json:"fingerprint"`
	PublicKey   string     `json:"public_key"`
	CreatedAt   time.Time  `json:"created_at"`
	LastUsedAt  *time.Time `json:"last_used_at"`
}

// NewKey shapes an SSH key.
func NewKey(k schema.SSHKey) Key {
	return Key{ID: k.ID, Name: k.Name, User: k.UserName, Fingerprint: k.Fingerprint,
		PublicKey: k.PublicKey, CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt}
}

// Domain is a custom domain.
type Domain struct {
	// Domain is the stored form: lowercase ASCII, IDNs as punycode.
	Domain     string            `json:"domain"`
	CertStatus schema.CertStatus `json:"cert_status"`
	// CertError is why the last certificate attempt failed; "" otherwise.
	CertError string `json:"cert_error"`
	// CertCheckedAt is when the edge last reported on the certificate; null
	// before the first HTTPS request for the domain.
	CertCheckedAt *time.Time `json:"cert_checked_at"`
	CreatedAt     time.Time  `json:"created_at"`
	// URL is where the domain serves the project: the edge answers every
	// host on the same listeners, so the scheme and port are the site URLs'.
	URL string `json:"url"`
}

// NewDomain shapes a custom domain.
func NewDomain(d schema.Domain, u URLs) Domain {
	return Domain{Domain: d.Name, CertStatus: d.CertStatus, CertError: d.CertError,
		CertCheckedAt: d.CertCheckedAt, CreatedAt: d.CreatedAt, URL: u.URL(d.Name)}
}
