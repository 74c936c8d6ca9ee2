package schema

import (
	"context"
	"strings"
)

// MaxBranchSlug bounds a branch slug, so a branch host stays within DNS's
// 63-character label with room for the project name.
const MaxBranchSlug = 40

// BranchSlug is how a branch appears in its preview host
// <project>--git-<slug>.<base-domain>: lowercase, every run of characters other
// than a-z and 0-9 turned into one "-", trimmed of "-", at most MaxBranchSlug
// characters. Two branches with the same slug share the URL (the latest build
// wins).
func BranchSlug(branch string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(branch) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	s := strings.TrimRight(b.String(), "-")
	if len(s) > MaxBranchSlug {
		s = strings.TrimRight(s[:MaxBranchSlug], "-")
	}
	return s
}

// LatestBuildForBranchSlug returns the newest succeeded build of a project
// whose branch has the given slug, or ErrNotFound.
func (s *Store) LatestBuildForBranchSlug(ctx context.Context, project, slug string) (Build, error) {
	builds, err := many[Build](ctx, s.db, `SELECT `+buildCols+` FROM builds b JOIN projects p ON p.id = b.project_id
		WHERE p.name = $1 AND b.status = 'succeeded' AND b.artifact_path <> '' ORDER BY b.id DESC LIMIT 500`, project)
	if err != nil {
		return Build{}, err
	}
	for _, b := range builds {
		if BranchSlug(b.Branch) == slug {
			return b, nil
		}
	}
	return Build{}, ErrNotFound
}
