package deploy

import (
	"context"
	"errors"
	"fmt"

	"minivercel/schema"
)

// ProjectBuild returns one of a project's builds; a build of another project
// is as unknown as a missing one.
func (s *Service) ProjectBuild(ctx context.Context, project string, id int64) (schema.Build, error) {
	p, err := s.Project(ctx, project)
	if err != nil {
		return schema.Build{}, err
	}
	return s.projectBuild(ctx, p, id)
}

// LogDeployment is the deployment whose runtime log a project's "logs" shows:
// the live one, else the newest (a stopped app's last words are what its
// owner wants to read). A project never deployed is ErrConflict.
func (s *Service) LogDeployment(ctx context.Context, project string) (schema.Deployment, error) {
	p, err := s.Project(ctx, project)
	if err != nil {
		return schema.Deployment{}, err
	}
	d, err := s.store.RuntimeLogDeployment(ctx, p.ID)
	if errors.Is(err, schema.ErrNotFound) {
		return schema.Deployment{}, conflict("project %s has no deployment yet", p.Name)
	}
	if err != nil {
		return schema.Deployment{}, fmt.Errorf("find the deployment of %s: %w", p.Name, err)
	}
	return d, nil
}
