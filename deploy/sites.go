package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"minivercel/edge"
	"minivercel/hosts"
	"minivercel/pipeline"
	"minivercel/schema"
	"minivercel/secret"
)

// Lookup finds the builds behind preview hosts for the edge
// (edge.BuildLookup) and the projects behind custom domains
// (edge.CustomDomains). Only a succeeded build with an artifact is ever a
// site: a failed or canceled build is as unknown as a missing one. A server
// app's preview, and a static build's functions, run with the project's
// preview variables.
type Lookup struct {
	store *schema.Store
	vars  *secret.Vars
}

// NewLookup returns a Lookup; vars may be nil (previews then get no
// variables).
func NewLookup(store *schema.Store, vars *secret.Vars) Lookup {
	return Lookup{store: store, vars: vars}
}

// SiteBySlug finds the build of a build host.
func (l Lookup) SiteBySlug(ctx context.Context, project, slug string) (edge.Site, error) {
	b, err := l.store.BuildBySlug(ctx, project, slug)
	return l.site(ctx, b, err, fmt.Sprintf("build %s of %s", slug, project))
}

// SiteByBranch finds the latest succeeded build of a branch host.
func (l Lookup) SiteByBranch(ctx context.Context, project, branchSlug string) (edge.Site, error) {
	b, err := l.store.LatestBuildForBranchSlug(ctx, project, branchSlug)
	return l.site(ctx, b, err, fmt.Sprintf("branch %s of %s", branchSlug, project))
}

// SiteByBuildID finds the build of a /preview/<id>/ path.
func (l Lookup) SiteByBuildID(ctx context.Context, id int64) (edge.Site, error) {
	b, err := l.store.BuildByID(ctx, id)
	return l.site(ctx, b, err, fmt.Sprintf("build %d", id))
}

func (l Lookup) site(ctx context.Context, b schema.Build, err error, what string) (edge.Site, error) {
	if errors.Is(err, schema.ErrNotFound) || (err == nil && (b.ArtifactPath == "" || b.Status != schema.BuildSucceeded)) {
		return edge.Site{}, fmt.Errorf("%s: %w", what, edge.ErrUnknownSite)
	}
	if err != nil {
		return edge.Site{}, err
	}
	if reason := pipeline.CollectedReason(b); reason != "" {
		return edge.Site{Project: b.ProjectName, ProjectID: b.ProjectID, BuildID: b.ID, Slug: b.Slug, Removed: reason}, nil
	}
	p, err := l.store.ProjectByID(ctx, b.ProjectID)
	if err != nil {
		return edge.Site{}, err
	}
	var env []string
	// Static builds get them too, for their api/ functions; without them
	// their files still serve.
	if l.vars != nil {
		if env, err = l.vars.Resolve(ctx, p.ID, schema.TargetPreview); err != nil && b.StartCommand != "" {
			return edge.Site{}, err
		}
	}
	return SiteOf(b, p, 0, env), nil
}

// ProjectForHost routes a custom domain to its project.
func (l Lookup) ProjectForHost(ctx context.Context, host string) (string, bool, error) {
	p, err := l.store.DomainProject(ctx, host)
	if errors.Is(err, schema.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return p, true, nil
}

// CertPolicy allows a certificate only for hosts the database knows: the base
// domain, its projects' production, build and branch hosts, and custom
// domains (edge.DomainPolicy). Anything else, such as a scanner's random
// name, is refused before an order is placed.
type CertPolicy struct {
	store *schema.Store
	hosts hosts.Scheme
}

// NewCertPolicy returns the policy for a base domain.
func NewCertPolicy(store *schema.Store, baseDomain string) CertPolicy {
	return CertPolicy{store: store, hosts: hosts.New(baseDomain)}
}

// Allowed reports whether host may get a certificate.
func (c CertPolicy) Allowed(ctx context.Context, host string) (bool, error) {
	var err error
	switch h := c.hosts.Parse(host); h.Kind {
	case hosts.Base:
		return true, nil
	case hosts.Custom:
		return c.store.DomainKnown(ctx, h.Name)
	case hosts.Production:
		_, err = c.store.ProjectByName(ctx, h.Project)
	case hosts.Build:
		var b schema.Build
		if b, err = c.store.BuildBySlug(ctx, h.Project, h.Slug); err == nil && b.Status != schema.BuildSucceeded {
			err = schema.ErrNotFound
		}
	case hosts.Branch:
		_, err = c.store.LatestBuildForBranchSlug(ctx, h.Project, h.Slug)
	default:
		return false, nil
	}
	if errors.Is(err, schema.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// CertReporter records why a custom domain has (or lacks) a certificate, for
// the panel (edge.CertReporter).
type CertReporter struct {
	store *schema.Store
	log   *slog.Logger
}

// NewCertReporter returns a CertReporter.
func NewCertReporter(store *schema.Store, log *slog.Logger) CertReporter {
	return CertReporter{store: store, log: log}
}

// CertStatus records a certificate event.
func (r CertReporter) CertStatus(ctx context.Context, host string, status schema.CertStatus, err error) {
	if err != nil {
		r.log.Warn("certificate", "host", host, "status", status, "err", err)
	}
	if serr := r.store.SetDomainCertStatus(ctx, host, status, err); serr != nil {
		r.log.Error("record certificate status", "host", host, "err", serr)
	}
}
