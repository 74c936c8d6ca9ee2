package panel

import (
	"net/url"

	"github.com/gofiber/fiber/v2"

	"minivercel/apijson"
	"minivercel/schema"
)

// The custom-domain routes: the API side of `minivercel domain`, through the
// same service methods.

// domainJSON is a custom domain as the API shows it.
type domainJSON = apijson.Domain

// addDomainRequest is the body of POST /api/projects/{name}/domains.
type addDomainRequest struct {
	Domain string `json:"domain"`
}

func (s *Server) toDomainJSON(d schema.Domain) domainJSON { return apijson.NewDomain(d, s.urls) }

func (s *Server) apiListDomains(c *fiber.Ctx) error {
	ds, err := s.svc.Domains(c.UserContext(), c.Params("name"))
	return listJSON(c, ds, err, s.toDomainJSON)
}

// apiAddDomain attaches a domain: 201 when it is new, 200 when the project
// already had it (so a script may add without asking first), 409 when
// another project has it.
func (s *Server) apiAddDomain(c *fiber.Ctx) error {
	var req addDomainRequest
	if err := decodeBody(c, &req, false); err != nil {
		return err
	}
	d, created, err := s.svc.AddDomain(c.UserContext(), currentUser(c), c.Params("name"), req.Domain)
	if err != nil {
		return err
	}
	code := fiber.StatusOK
	if created {
		code = fiber.StatusCreated
	}
	return c.Status(code).JSON(s.toDomainJSON(d))
}

// apiRemoveDomain detaches a domain. The edge asks the database and keeps
// the answer for a few seconds, so the domain stops serving shortly after.
func (s *Server) apiRemoveDomain(c *fiber.Ctx) error {
	// The path segment arrives percent-encoded when it holds an IDN typed in
	// Unicode.
	raw, err := url.PathUnescape(c.Params("domain"))
	if err != nil {
		return notFound("domain")
	}
	if _, err := s.svc.RemoveDomain(c.UserContext(), currentUser(c), c.Params("name"), raw); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
