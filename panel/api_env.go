package panel

import (
	"strings"

	"github.com/gofiber/fiber/v2"

	"minivercel/deploy"
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

func (s *Server) apiListEnv(c *fiber.Ctx) error {
	vars, err := s.svc.Vars(c.UserContext(), c.Params("name"))
	return listJSON(c, vars, err, toEnvVarJSON)
}

func (s *Server) apiCreateEnv(c *fiber.Ctx) error {
	var req createEnvRequest
	if err := decodeBody(c, &req, false); err != nil {
		return err
	}
	return s.setEnv(c, strings.TrimSpace(req.Key), req.Target, req.Value)
}

// apiPutEnv sets the variable the path names: it creates it or replaces its
// value (201 or 200), so a script may PUT without first asking whether the
// variable exists.
func (s *Server) apiPutEnv(c *fiber.Ctx) error {
	var req putEnvRequest
	if err := decodeBody(c, &req, false); err != nil {
		return err
	}
	return s.setEnv(c, strings.Clone(c.Params("key")), req.Target, req.Value)
}

// setEnv stores a variable and answers with its masked form: 201 when it is
// new, 200 when its value was replaced.
func (s *Server) setEnv(c *fiber.Ctx, key, target string, value *string) error {
	ctx := c.UserContext()
	project := c.Params("name")
	if value == nil {
		// Checked after the key and target, so those errors come first as
		// they do everywhere else.
		if err := deploy.ValidateVar(key, target, ""); err != nil {
			return err
		}
		return deploy.Invalid("value", "value is required (it may be the empty string)")
	}
	res, err := s.svc.SetVars(ctx, currentUser(c), project, target, []deploy.Var{{Key: key, Value: *value}})
	if err != nil {
		return err
	}
	if target == "" {
		target = schema.TargetAll
	}
	vars, err := s.svc.Vars(ctx, project)
	if err != nil {
		return err
	}
	for _, v := range vars {
		if v.Name == key && v.Target == target {
			code := fiber.StatusOK
			if res[0].Created {
				code = fiber.StatusCreated
			}
			return c.Status(code).JSON(toEnvVarJSON(v))
		}
	}
	// Deleted between the write and this read: as unknown as a missing one.
	return notFound("variable " + key)
}

// apiDeleteEnv removes a variable: one target with ?target=, else every
// target of the key (as `minivercel env unset` does).
func (s *Server) apiDeleteEnv(c *fiber.Ctx) error {
	key := strings.Clone(c.Params("key"))
	if err := s.svc.UnsetVar(c.UserContext(), currentUser(c), c.Params("name"), key, strings.TrimSpace(c.Query("target"))); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// apiRevealEnv answers one variable's value, to administrators only: it backs
// the panel's Reveal button. The answer must not be cached anywhere.
func (s *Server) apiRevealEnv(c *fiber.Ctx) error {
	value, err := s.svc.RevealVar(c.UserContext(), currentUser(c), c.Params("name"), strings.Clone(c.Params("key")),
		strings.TrimSpace(c.Query("target")))
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(revealResponse{Value: value})
}

// apiRedeploy activates the live build again: a server app restarts with the
// current variables, without a rebuild. A static build is switched to itself,
// which changes nothing a visitor sees.
func (s *Server) apiRedeploy(c *fiber.Ctx) error {
	// No body is needed; a body with any field is refused like elsewhere.
	var req struct{}
	if err := decodeBody(c, &req, true); err != nil {
		return err
	}
	b, err := s.svc.Redeploy(c.UserContext(), currentUser(c), c.Params("name"))
	if err != nil {
		return err
	}
	return s.activated(c, b)
}
