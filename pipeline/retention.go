package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"minivercel/schema"
)

// DefaultKeepBuilds is how many of a project's newest succeeded builds keep
// their artifact and extracted files when Config.KeepBuilds is zero.
const DefaultKeepBuilds = 20

// collectTimeout bounds one project's collection: database reads and
// removing files.
const collectTimeout = 5 * time.Minute

// keepBuilds is the retention count in effect.
func (q *Queue) keepBuilds() int {
	if q.cfg.KeepBuilds > 0 {
		return q.cfg.KeepBuilds
	}
	return DefaultKeepBuilds
}

// toCollect chooses the builds of one project whose files go. It keeps the
// build production serves (liveID, 0 for none), the newest succeeded build
// of every branch (its branch URL serves it) and the keep newest succeeded
// builds; every other finished build that still has an artifact is
// collected, newest first. A failed or canceled build's artifact can never
// serve nor be activated, so it is collected whatever its age. Builds
// still queued or running are never touched. builds are one project's, in
// any order.
func toCollect(builds []schema.Build, liveID int64, keep int) []schema.Build {
	sorted := slices.SortedFunc(slices.Values(builds), func(a, b schema.Build) int { return cmp.Compare(b.ID, a.ID) })
	kept := map[int64]bool{liveID: true}
	branchSeen := map[string]bool{}
	newest := 0
	for _, b := range sorted {
		if b.Status != schema.BuildSucceeded || b.ArtifactPath == "" {
			continue
		}
		// A branch's latest is what schema.LatestBuildForBranchSlug
		// finds, collected or not: it is never collected, so the two
		// agree.
		if !branchSeen[b.Branch] {
			branchSeen[b.Branch] = true
			kept[b.ID] = true
		}
		if b.CollectedAt == nil && newest < keep {
			newest++
			kept[b.ID] = true
		}
	}
	var out []schema.Build
	for _, b := range sorted {
		if b.Status.Done() && b.ArtifactPath != "" && b.CollectedAt == nil && !kept[b.ID] {
			out = append(out, b)
		}
	}
	return out
}

// CollectedReason is what a collected build's URL answers and why it cannot
// be activated; "" for a build that keeps its files.
func CollectedReason(b schema.Build) string {
	if b.CollectedAt == nil {
		return ""
	}
	return fmt.Sprintf("This build was removed to save space: it was one of more than %d builds kept for %s.", b.CollectedKeep, b.ProjectName)
}

// Collect applies retention to one project: the files of the builds
// toCollect chooses are removed, each build marked collected first, so a
// crash in between leaves files the start-up sweep removes, never a build
// that claims files it lacks. The choice and the marks are made under the
// project's activation lock, so no activation can make a build live while
// it is being collected (and activate reads the build again under that
// lock). Then the files go and the edge is told (Config.Sites). It returns
// how many builds were collected.
func (q *Queue) Collect(ctx context.Context, projectID int64) (int, error) {
	keep := q.keepBuilds()
	marked, err := q.markCollected(ctx, projectID, keep)
	for _, b := range marked {
		removed := q.removeBuildFiles(b.ID, b.ArtifactPath)
		if q.cfg.Blobs != nil && b.ArtifactSHA256 != "" {
			q.cfg.Blobs.Release(ctx, b.ArtifactSHA256)
		}
		if q.cfg.Sites != nil {
			q.cfg.Sites.ForgetBuild(b.ProjectName, b.Slug, b.ID)
		}
		q.rlog.Info("build collected", "project", b.ProjectName, "build", b.ID, "branch", b.Branch,
			"status", b.Status, "keep", keep, "removed", strings.Join(removed, " "))
	}
	return len(marked), err
}

// markCollected chooses a project's builds to collect and marks them, under
// the project's activation lock; it returns those it marked.
func (q *Queue) markCollected(ctx context.Context, projectID int64, keep int) ([]schema.Build, error) {
	unlock, err := q.lockProject(ctx, projectID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	builds, err := q.store.ListBuilds(ctx, projectID)
	if err != nil {
		return nil, fmt.Errorf("list builds of project %d: %w", projectID, err)
	}
	live, err := q.store.ActiveBuild(ctx, projectID)
	if err != nil && !errors.Is(err, schema.ErrNotFound) {
		return nil, fmt.Errorf("read live build of project %d: %w", projectID, err)
	}
	var marked []schema.Build
	for _, b := range toCollect(builds, live.ID, keep) {
		if err := q.store.MarkBuildCollected(ctx, b.ID, keep); err != nil {
			return marked, fmt.Errorf("mark build %d collected: %w", b.ID, err)
		}
		marked = append(marked, b)
	}
	return marked, nil
}

// CollectAll applies retention to every project, as at start: builds that
// finished while the server was down, or a --keep-builds lowered since.
func (q *Queue) CollectAll(ctx context.Context) error {
	projects, err := q.store.ListProjects(ctx)
	if err != nil {
		return fmt.Errorf("list projects to collect: %w", err)
	}
	var errs []error
	total := 0
	for _, p := range projects {
		n, err := q.Collect(ctx, p.ID)
		total += n
		if err != nil {
			errs = append(errs, fmt.Errorf("collect builds of %s: %w", p.Name, err))
		}
	}
	q.sweepBlobs(ctx)
	q.rlog.Info("retention pass done", "projects", len(projects), "collected", total, "keep", q.keepBuilds())
	return errors.Join(errs...)
}

// collectAfter applies retention to a project after one of its builds
// finished; a failure is logged, never the build's.
func (q *Queue) collectAfter(ctx context.Context, projectID int64) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), collectTimeout)
	defer cancel()
	if _, err := q.Collect(ctx, projectID); err != nil {
		q.rlog.Warn("collect builds", "project", projectID, "err", err)
	}
}

// ForgetBuild removes this node's files of a build another node
// collected: its artifact, if this node built it, its extracted tree and
// its copy of the artifact blob.
func (q *Queue) ForgetBuild(ctx context.Context, buildID int64) {
	b, err := q.store.BuildByID(ctx, buildID)
	if err != nil || b.CollectedAt == nil {
		return
	}
	q.removeBuildFiles(b.ID, b.ArtifactPath)
	if q.cfg.Blobs != nil && b.ArtifactSHA256 != "" {
		q.cfg.Blobs.Forget(b.ArtifactSHA256)
	}
}

// removeBuildFiles deletes a build's artifact (only inside ArtifactsDir:
// the recorded path is never trusted further) and its extracted tree, and
// returns what it removed.
func (q *Queue) removeBuildFiles(buildID int64, artifact string) []string {
	var paths []string
	if rel, err := filepath.Rel(q.cfg.ArtifactsDir, artifact); err == nil && artifact != "" && filepath.IsLocal(rel) {
		paths = append(paths, artifact)
	}
	if q.cfg.DeploymentsDir != "" {
		paths = append(paths, extractedDirs(q.cfg.DeploymentsDir, buildID)...)
	}
	var removed []string
	for _, p := range paths {
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			q.rlog.Warn("remove files of a collected build", "build", buildID, "path", p, "err", err)
			continue
		}
		removed = append(removed, p)
	}
	return removed
}

// precompressedSuffix names the sidecar the edge writes beside an extracted
// build, <id>.precompressed (edge/precompress.go; the edge's tests import
// this package, so the name cannot come from there).
const precompressedSuffix = ".precompressed"

// extractedDirs are what the edge makes of a build under deploymentsDir: its
// extracted tree and the sidecar of its precompressed files.
func extractedDirs(deploymentsDir string, buildID int64) []string {
	tree := filepath.Join(deploymentsDir, strconv.FormatInt(buildID, 10))
	return []string{tree, tree + precompressedSuffix}
}
