package sshcmd

import (
	"encoding/json"
	"time"

	"minivercel/apijson"
	"minivercel/schema"
)

// The --json shapes. Projects, builds, deployments, domains and keys are
// the API's own (package apijson), so a script reads the same fields
// whichever way it asked; a project's health is the edge's to tell and is
// left out here: a git node may run no edge.
type (
	projectJSON    = apijson.Project
	buildJSON      = apijson.Build
	deploymentJSON = apijson.Deployment
	domainJSON     = apijson.Domain
	keyJSON        = apijson.Key
)

// activatedJSON answers rollback and redeploy, as the API's activate does.
type activatedJSON struct {
	Build      buildJSON       `json:"build"`
	Deployment *deploymentJSON `json:"deployment"`
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

// toBuildJSON shapes a build of a project whose production branch is
// productionBranch.
func (c *Commands) toBuildJSON(b schema.Build, active bool, productionBranch string) buildJSON {
	return apijson.NewBuild(b, active, productionBranch, c.urls, time.Now())
}

func toKeyJSON(k schema.SSHKey) keyJSON { return apijson.NewKey(k) }

func toTokenJSON(t schema.APIToken) tokenJSON {
	return tokenJSON{ID: t.ID, User: t.UserName, Name: t.Name, CreatedAt: t.CreatedAt, LastUsedAt: t.LastUsedAt, RevokedAt: t.RevokedAt}
}

func (c *Commands) toDomainJSON(d schema.Domain) domainJSON { return apijson.NewDomain(d, c.urls) }

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
