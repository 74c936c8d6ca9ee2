package schema

import "context"

// Queries the panel's domains and previews views need beyond domains.go and
// previews.go.

// LatestBranchBuilds returns, for each branch of a project other than its
// production branch, the newest succeeded build that has an artifact, newest
// first: the builds the branch preview URLs serve. The conditions are
// LatestBuildForBranchSlug's, so the panel lists a branch preview exactly
// when the edge can serve it (two branches with one slug are listed apart,
// though their shared URL serves the newer build of either).
func (s *Store) LatestBranchBuilds(ctx context.Context, projectID int64) ([]Build, error) {
	return many[Build](ctx, s.db, `SELECT * FROM (
		SELECT DISTINCT ON (b.branch) `+buildCols+` FROM builds b JOIN projects p ON p.id = b.project_id
		WHERE b.project_id = $1 AND b.status = 'succeeded' AND b.artifact_path <> '' AND b.branch <> p.production_branch
		ORDER BY b.branch, b.id DESC) latest ORDER BY id DESC`, projectID)
}
