package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"minivercel/edge"
	"minivercel/schema"
)

// authorizer answers gitd's key checks from the ssh_keys table.
type authorizer struct{ store *schema.Store }

func (a authorizer) UserByKeyFingerprint(ctx context.Context, fingerprint string) (int64, error) {
	u, err := a.store.UserByKeyFingerprint(ctx, fingerprint)
	if err != nil {
		return 0, err
	}
	return u.ID, nil
}

// projects answers gitd's project questions from the projects table. Every
// authenticated user may push to every project: minivercel has one team per
// server for now.
type projects struct{ store *schema.Store }

func (p projects) EnsureProject(ctx context.Context, name string, ownerID int64) (bool, error) {
	_, created, err := p.store.EnsureProject(ctx, name, ownerID)
	return created, err
}

func (p projects) ProjectExists(ctx context.Context, name string) (bool, error) {
	_, err := p.store.ProjectByName(ctx, name)
	if errors.Is(err, schema.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// buildLookup finds builds for their own URLs.
type buildLookup struct{ store *schema.Store }

func (l buildLookup) SiteBySlug(ctx context.Context, project, slug string) (edge.Site, error) {
	b, err := l.store.BuildBySlug(ctx, project, slug)
	if errors.Is(err, schema.ErrNotFound) || (err == nil && b.ArtifactPath == "") {
		return edge.Site{}, fmt.Errorf("build %s of %s: %w", slug, project, edge.ErrUnknownSite)
	}
	if err != nil {
		return edge.Site{}, err
	}
	return siteOf(b), nil
}

func siteOf(b schema.Build) edge.Site {
	return edge.Site{
		Project: b.ProjectName, BuildID: b.ID, Slug: b.Slug,
		ArtifactPath: b.ArtifactPath, SHA256: b.ArtifactSHA256, SPA: b.SPA,
	}
}

// activator switches production to a build: the edge extracts and swaps the
// route, then the deployment is recorded. If recording fails the previous route
// is put back, so what is served and what the database says never disagree.
type activator struct {
	edge  *edge.Server
	store *schema.Store
	log   *slog.Logger
}

func (a activator) Activate(ctx context.Context, b schema.Build) error {
	prev, hadPrev := a.edge.Active(b.ProjectName)
	if err := a.edge.Activate(ctx, siteOf(b)); err != nil {
		if _, rerr := a.store.RecordFailedActivation(context.WithoutCancel(ctx), b.ProjectID, b.ID, schema.DeploymentFailed); rerr != nil {
			a.log.Error("record failed activation", "build", b.ID, "err", rerr)
		}
		return fmt.Errorf("activate build %d: %w", b.ID, err)
	}
	if _, err := a.store.RecordActivation(context.WithoutCancel(ctx), b.ProjectID, b.ID); err != nil {
		if hadPrev {
			if pb, perr := a.store.BuildByID(context.WithoutCancel(ctx), prev); perr == nil {
				_ = a.edge.Activate(context.WithoutCancel(ctx), siteOf(pb))
			}
		} else {
			a.edge.Deactivate(b.ProjectName)
		}
		return fmt.Errorf("record activation of build %d: %w", b.ID, err)
	}
	return nil
}
