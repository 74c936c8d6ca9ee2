package sshcmd

import (
	"encoding/json"
	"time"

	"minivercel/schema"
)

// The --json shapes: the API's field names (panel/api_types.go), so a
// script reads the same fields whichever way it asked. A project's health
// is the edge's to tell and is left out here: a git node may run no edge.

type projectJSON struct {
	Name             string              `json:"name"`
	ProductionBranch string              `json:"production_branch"`
	URL              string              `json:"url"`
	Status           *schema.BuildStatus `json:"status"`
	LatestBuildID    *int64              `json:"latest_build_id"`
	ActiveBuildID    *int64              `json:"active_build_id"`
	LastDeployAt     *time.Time          `json:"last_deploy_at"`
	CreatedAt        time.Time           `json:"created_at"`
	UpdatedAt        time.Time           `json:"updated_at"`
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
	URL           string             `json:"url"`
	Active        bool               `json:"active"`
}

type deploymentJSON struct {
	ID          int64                   `json:"id"`
	BuildID     int64                   `json:"build_id"`
	Environment string                  `json:"environment"`
	Status      schema.DeploymentStatus `json:"status"`
	ActivatedAt time.Time               `json:"activated_at"`
}

// activatedJSON answers rollback and redeploy, as the API's activate does.
type activatedJSON struct {
	Build      buildJSON       `json:"build"`
	Deployment *deploymentJSON `json:"deployment"`
}

type domainJSON struct {
	Domain        string            `json:"domain"`
	CertStatus    schema.CertStatus `json:"cert_status"`
	CertError     string            `json:"cert_error"`
	CertCheckedAt *time.Time        `json:"cert_checked_at"`
	CreatedAt     time.Time         `json:"created_at"`
	URL           string            `json:"url"`
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

type tokenJSON struct {
	ID         int64      `json:"id"`
	User       string     `json:"user"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	// Token is the secret itself, in the answer to create only.
	Token string `json:"token,omitempty"`
}

// varResultJSON is one variable env set, import or unset acted on.
type varResultJSON struct {
	Key     string `json:"key"`
	Target  string `json:"target"`
	Created bool   `json:"created"`
}

// logLineJSON is one line of a log; `logs --json` prints one per line.
type logLineJSON struct {
	Seq       int64      `json:"seq"`
	Line      string     `json:"line"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	// Status and Done end a followed build log.
	Status schema.BuildStatus `json:"status,omitempty"`
	Done   bool               `json:"done,omitempty"`
}

func (c *Commands) toBuildJSON(b schema.Build, active bool) buildJSON {
	return buildJSON{
		ID: b.ID, Project: b.ProjectName, Status: b.Status, Stage: b.Stage, Branch: b.Branch,
		CommitSHA: b.CommitSHA, CommitMessage: b.CommitMessage, Error: b.Error, Kind: b.Kind,
		CreatedAt: b.CreatedAt, StartedAt: b.StartedAt, FinishedAt: b.FinishedAt,
		URL: c.cfg.URL(c.hosts.Build(b.ProjectName, b.Slug)), Active: active,
	}
}

func toKeyJSON(k schema.SSHKey) keyJSON {
	return keyJSON{ID: k.ID, Name: k.Name, User: k.UserName, Fingerprint: k.Fingerprint,
		PublicKey: k.PublicKey, CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt}
}

func toTokenJSON(t schema.APIToken) tokenJSON {
	return tokenJSON{ID: t.ID, User: t.UserName, Name: t.Name, CreatedAt: t.CreatedAt, LastUsedAt: t.LastUsedAt, RevokedAt: t.RevokedAt}
}

func (c *Commands) toDomainJSON(d schema.Domain) domainJSON {
	return domainJSON{Domain: d.Name, CertStatus: d.CertStatus, CertError: d.CertError,
		CertCheckedAt: d.CertCheckedAt, CreatedAt: d.CreatedAt, URL: c.cfg.URL(d.Name)}
}

// writeJSON prints v as one line of JSON. A list is never null: an empty
// one is [].
func (r *request) writeJSON(v any) error {
	return json.NewEncoder(r.stdout).Encode(v)
}

// jsonList converts items for writeJSON.
func jsonList[T, J any](items []T, conv func(T) J) []J {
	out := make([]J, 0, len(items))
	for _, it := range items {
		out = append(out, conv(it))
	}
	return out
}
