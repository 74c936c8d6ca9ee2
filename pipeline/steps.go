package pipeline

import (
	"context"
	"fmt"

	"minivercel/schema"
)

// step is one stage of a build and the work it does.
type step struct {
	stage schema.Stage
	run   func(ctx context.Context) error
}

// runSteps runs steps in order, calling enter before each, and stops at the first
// failure, which it returns with the stage it happened in.
func runSteps(ctx context.Context, steps []step, enter func(schema.Stage)) (schema.Stage, error) {
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return s.stage, err
		}
		enter(s.stage)
		if err := s.run(ctx); err != nil {
			return s.stage, fmt.Errorf("%s: %w", s.stage, err)
		}
	}
	return "", nil
}
