package panel

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"

	"minivercel/schema"
	"minivercel/secret"
)

// The environment-variable routes. A value goes in through POST and PUT and
// comes out only through the reveal route, to an administrator; every other
// answer carries secret.MaskValue's form, so a listing, a log line or a
// screenshot of the panel never holds a usable secret.

// envVarJSON is a variable as the API shows it: never its value, only the
// masked form.
type envVarJSON struct {
	Key    string `json:"key"`
	Target string `json:"target"`
	// Value is secret.MaskValue of the value: a few leading characters of a
	// long value, bullets for the rest.
	Value     string `json:"value"`
	UpdatedAt string `json:"updated_at"`
}

func toEnvVarJSON(v secret.Var) envVarJSON {
	return envVarJSON{Key: v.Name, Target: v.Target, Value: v.Masked, UpdatedAt: v.UpdatedAt}
}

// createEnvRequest is the body of POST /api/projects/{name}/env. Value is a
// pointer so a forgotten value is an error rather than an empty variable.
type createEnvRequest struct {
	Key    string  `json:"key"`
	Value  *string `json:"value"`
	Target string  `json:"target"`
}

// putEnvRequest is the body of PUT /api/projects/{name}/env/{key}.
type putEnvRequest struct {
	Value  *string `json:"value"`
	Target string  `json:"target"`
}

// revealResponse answers GET /api/projects/{name}/env/{key}/value.
type revealResponse struct {
	Value string `json:"value"`
}

// envInvalid turns schema.ValidateEnvVar's error into the message a caller
// reads; it names the variable, never the value.
func envInvalid(err error) string {
	return strings.TrimPrefix(err.Error(), schema.ErrInvalid.Error()+": ")
}

// validateEnv checks a variable part by part, so the error names the field
// at fault (schema.ValidateEnvVar checks all three at once). An empty target
// means "all".
func validateEnv(key, target, value string) *fieldError {
	if target == "" {
		target = schema.TargetAll
	}
	if err := schema.ValidateEnvVar(key, schema.TargetAll, ""); err != nil {
		return &fieldError{"key", envInvalid(err)}
	}
	if err := schema.ValidateEnvVar(key, target, ""); err != nil {
		return &fieldError{"target", envInvalid(err)}
	}
	if err := schema.ValidateEnvVar(key, target, value); err != nil {
		return &fieldError{"value", envInvalid(err)}
	}
	return nil
}

// targetQuery reads ?target= for the routes that name one variable; empty
// gives def.
func targetQuery(c *fiber.Ctx, def string) (string, *fieldError) {
	t := strings.TrimSpace(c.Query("target"))
	if t == "" {
		return def, nil
	}
	if t != schema.TargetAll && t != schema.TargetProduction && t != schema.TargetPreview {
		return "", &fieldError{"target", fmt.Sprintf("target %q: want production, preview or all", t)}
	}
	return t, nil
}

// maskedVar reads back one variable as listed, for the answer to a change.
func (s *Server) maskedVar(ctx context.Context, projectID int64, key, target string) (envVarJSON, error) {
	vars, err := s.vars.List(ctx, projectID)
	if err != nil {
		return envVarJSON{}, fmt.Errorf("list variables: %w", err)
	}
	for _, v := range vars {
		if v.Name == key && v.Target == target {
			return toEnvVarJSON(v), nil
		}
	}
	// Deleted between the write and this read: as unknown as a missing one.
	return envVarJSON{}, notFound("variable " + key)
}

func (s *Server) apiListEnv(c *fiber.Ctx) error {
	ctx := c.UserContext()
	p, err := s.store.ProjectByName(ctx, c.Params("name"))
	if err != nil {
		return lookupErr(err, "project")
	}
	vars, err := s.vars.List(ctx, p.ID)
	if err != nil {
		return fmt.Errorf("list variables of %s: %w", p.Name, err)
	}
	out := make([]envVarJSON, 0, len(vars))
	for _, v := range vars {
		out = append(out, toEnvVarJSON(v))
	}
	return c.JSON(out)
}

func (s *Server) apiCreateEnv(c *fiber.Ctx) error {
	p, err := s.store.ProjectByName(c.UserContext(), c.Params("name"))
	if err != nil {
		return lookupErr(err, "project")
	}
	var req createEnvRequest
	if err := decodeBody(c, &req, false); err != nil {
		return bodyError(c, err)
	}
	return s.setEnv(c, p, strings.TrimSpace(req.Key), req.Target, req.Value)
}

// apiPutEnv sets the variable the path names: it creates it or replaces its
// value (201 or 200), so a script may PUT without first asking whether the
// variable exists.
func (s *Server) apiPutEnv(c *fiber.Ctx) error {
	p, err := s.store.ProjectByName(c.UserContext(), c.Params("name"))
	if err != nil {
		return lookupErr(err, "project")
	}
	var req putEnvRequest
	if err := decodeBody(c, &req, false); err != nil {
		return bodyError(c, err)
	}
	return s.setEnv(c, p, strings.Clone(c.Params("key")), req.Target, req.Value)
}

// setEnv validates and stores a variable and answers with its masked form:
// 201 when it is new, 200 when its value was replaced.
func (s *Server) setEnv(c *fiber.Ctx, p schema.Project, key, target string, value *string) error {
	if target == "" {
		target = schema.TargetAll
	}
	if fe := validateEnv(key, target, ""); fe != nil {
		return sendFieldError(c, fe)
	}
	if value == nil {
		return sendFieldError(c, &fieldError{"value", "value is required (it may be the empty string)"})
	}
	if fe := validateEnv(key, target, *value); fe != nil {
		return sendFieldError(c, fe)
	}
	ctx := c.UserContext()
	created, err := s.vars.Set(ctx, p.ID, key, target, *value)
	if err != nil {
		return fmt.Errorf("set variable %s of %s: %w", key, p.Name, err)
	}
	// Never the value: logs are read by more people than the variables.
	s.log.Info("environment variable set", "project", p.Name, "key", key, "target", target, "created", created, "by", currentUser(c).Name)
	v, err := s.maskedVar(ctx, p.ID, key, target)
	if err != nil {
		return err
	}
	code := fiber.StatusOK
	if created {
		code = fiber.StatusCreated
	}
	return c.Status(code).JSON(v)
}

// apiDeleteEnv removes a variable: one target with ?target=, else every
// target of the key (as `minivercel env unset` does).
func (s *Server) apiDeleteEnv(c *fiber.Ctx) error {
	ctx := c.UserContext()
	p, err := s.store.ProjectByName(ctx, c.Params("name"))
	if err != nil {
		return lookupErr(err, "project")
	}
	target, fe := targetQuery(c, "")
	if fe != nil {
		return sendFieldError(c, fe)
	}
	key := strings.Clone(c.Params("key"))
	if err := s.vars.Unset(ctx, p.ID, key, target); err != nil {
		return lookupErr(err, "variable "+key)
	}
	s.log.Info("environment variable removed", "project", p.Name, "key", key, "target", target, "by", currentUser(c).Name)
	return c.SendStatus(fiber.StatusNoContent)
}

// apiRevealEnv answers one variable's value, to administrators only: it backs
// the panel's Reveal button. The answer must not be cached anywhere, and the
// log records who looked at which variable, never what they saw.
func (s *Server) apiRevealEnv(c *fiber.Ctx) error {
	u := currentUser(c)
	// Refused before any lookup, so a non-administrator learns nothing,
	// not even whether the project or variable exists.
	if !u.IsAdmin {
		s.log.Debug("reveal refused: not an administrator", "user", u.Name, "path", c.Path())
		return fiber.NewError(fiber.StatusForbidden, "only an administrator can reveal a variable's value")
	}
	ctx := c.UserContext()
	target, fe := targetQuery(c, schema.TargetAll)
	if fe != nil {
		return sendFieldError(c, fe)
	}
	p, err := s.store.ProjectByName(ctx, c.Params("name"))
	if err != nil {
		return lookupErr(err, "project")
	}
	key := strings.Clone(c.Params("key"))
	value, err := s.vars.Reveal(ctx, p.ID, key, target)
	if err != nil {
		return lookupErr(err, fmt.Sprintf("variable %s (%s)", key, target))
	}
	s.log.Info("environment variable revealed", "project", p.Name, "key", key, "target", target, "user", u.Name)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(revealResponse{Value: value})
}

// apiRedeploy activates the live build again: a server app restarts with the
// current variables, without a rebuild. A static build is switched to itself,
// which changes nothing a visitor sees.
func (s *Server) apiRedeploy(c *fiber.Ctx) error {
	ctx := c.UserContext()
	p, err := s.store.ProjectByName(ctx, c.Params("name"))
	if err != nil {
		return lookupErr(err, "project")
	}
	// No body is needed; a body with any field is refused like elsewhere.
	var req struct{}
	if err := decodeBody(c, &req, true); err != nil {
		return bodyError(c, err)
	}
	b, err := s.store.ActiveBuild(ctx, p.ID)
	if errors.Is(err, schema.ErrNotFound) {
		return fiber.NewError(fiber.StatusConflict, fmt.Sprintf("project %s has nothing live to redeploy: push or activate a build first", p.Name))
	}
	if err != nil {
		return fmt.Errorf("read active build of %s: %w", p.Name, err)
	}
	s.log.Info("redeploy requested", "project", p.Name, "build", b.ID, "by", currentUser(c).Name)
	return s.activateBuild(c, p, b)
}
