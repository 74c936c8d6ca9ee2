package schema

import (
	"context"

	"minivercel/hosts"
)

// LatestBuildForBranchSlug returns the newest succeeded build of a project
// whose branch has the given slug, or ErrNotFound.
func (s *Store) LatestBuildForBranchSlug(ctx context.Context, project, slug string) (Build, error) {
	builds, err := many[Build](ctx, s.db, `SELECT `+buildCols+` FROM builds b JOIN projects p ON p.id = b.project_id
		WHERE p.name = $1 AND b.status = 'succeeded' AND b.artifact_path <> '' ORDER BY b.id DESC LIMIT 500`, project)
	if err != nil {
		return Build{}, err
	}
	for _, b := range builds {
		if hosts.BranchSlug(b.Branch) == slug {
			return b, nil
		}
	}
	return Build{}, ErrNotFound
}
