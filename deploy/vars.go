package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"minivercel/schema"
	"minivercel/secret"
)

// Var is one variable to set.
type Var struct {
	Key   string
	Value string
}

// SetResult says what SetVars did with one variable.
type SetResult struct {
	Key     string
	Created bool
}

// ValidateVar checks one variable part by part, so the error names the field
// at fault: "key", "target" or "value". An empty target means "all". The
// message names the variable, never its value.
func ValidateVar(key, target, value string) error {
	target = normalTarget(target)
	for _, step := range []struct {
		field         string
		target, value string
	}{
		{"key", schema.TargetAll, ""},
		{"target", target, ""},
		{"value", target, value},
	} {
		if err := schema.ValidateEnvVar(key, step.target, step.value); err != nil {
			return invalid(step.field, "%s", strings.TrimPrefix(err.Error(), schema.ErrInvalid.Error()+": "))
		}
	}
	return nil
}

// ValidateTarget checks a target a request names: production, preview, all,
// or "" (which means whatever the operation's default is).
func ValidateTarget(target string) error {
	if target != "" && target != schema.TargetAll && target != schema.TargetProduction && target != schema.TargetPreview {
		return invalid("target", "target %q: want production, preview or all", target)
	}
	return nil
}

func normalTarget(t string) string {
	if t == "" {
		return schema.TargetAll
	}
	return t
}

// Vars lists a project's variables with masked values.
func (s *Service) Vars(ctx context.Context, project string) ([]secret.Var, error) {
	return listOf(ctx, s, project, "variables", s.vars.List)
}

// SetVars sets variables for one target ("" means all), encrypted at rest.
// Every variable is checked before any is stored, so a bad one never
// half-applies. Changes reach builds from the next build and apps from the
// next deploy or Redeploy.
func (s *Service) SetVars(ctx context.Context, actor schema.User, project, target string, vars []Var) ([]SetResult, error) {
	p, err := s.Project(ctx, project)
	if err != nil {
		return nil, err
	}
	target = normalTarget(target)
	if len(vars) == 0 {
		return nil, invalid("key", "no variable given: want KEY=VALUE")
	}
	for _, v := range vars {
		if err := ValidateVar(v.Key, target, v.Value); err != nil {
			return nil, err
		}
	}
	nvs := make([]secret.NameValue, len(vars))
	for i, v := range vars {
		nvs[i] = secret.NameValue{Name: v.Key, Value: v.Value}
	}
	created, err := s.vars.SetMany(ctx, p.ID, target, nvs)
	if err != nil {
		return nil, fmt.Errorf("set variables of %s: %w", p.Name, err)
	}
	out := make([]SetResult, len(vars))
	for i, v := range vars {
		// Never the value: logs are read by more people than the variables.
		s.log.Info("environment variable set", "project", p.Name, "key", v.Key, "target", target, "created", created[i], "by", actor.Name)
		out[i] = SetResult{Key: v.Key, Created: created[i]}
	}
	return out, nil
}

// UnsetVar removes a variable: of one target, or of every target when target
// is "". A variable the project does not have is ErrNotFound.
func (s *Service) UnsetVar(ctx context.Context, actor schema.User, project, key, target string) error {
	p, err := s.Project(ctx, project)
	if err != nil {
		return err
	}
	if err := ValidateTarget(target); err != nil {
		return err
	}
	if err := s.vars.Unset(ctx, p.ID, key, target); errors.Is(err, schema.ErrNotFound) {
		return notFound("project %s has no variable %s%s", p.Name, key, targetSuffix(target))
	} else if err != nil {
		return fmt.Errorf("unset variable %s of %s: %w", key, p.Name, err)
	}
	s.log.Info("environment variable removed", "project", p.Name, "key", key, "target", target, "by", actor.Name)
	return nil
}

// RevealVar returns one variable's value, to administrators only; each reveal
// is logged (who, which variable, never the value). A non-administrator is
// refused before any lookup, so they learn nothing, not even whether the
// project or the variable exists.
func (s *Service) RevealVar(ctx context.Context, actor schema.User, project, key, target string) (string, error) {
	if !actor.IsAdmin {
		s.log.Debug("reveal refused: not an administrator", "user", actor.Name, "project", project, "key", key)
		return "", refuse(ErrForbidden, "", "only an administrator can reveal a variable's value")
	}
	if err := ValidateTarget(target); err != nil {
		return "", err
	}
	target = normalTarget(target)
	p, err := s.Project(ctx, project)
	if err != nil {
		return "", err
	}
	value, err := s.vars.Reveal(ctx, p.ID, key, target)
	if errors.Is(err, schema.ErrNotFound) {
		return "", notFound("project %s has no variable %s%s", p.Name, key, targetSuffix(target))
	}
	if err != nil {
		return "", fmt.Errorf("reveal variable %s of %s: %w", key, p.Name, err)
	}
	s.log.Info("environment variable revealed", "project", p.Name, "key", key, "target", target, "user", actor.Name)
	return value, nil
}

func targetSuffix(target string) string {
	if target == "" {
		return ""
	}
	return " (" + target + ")"
}
