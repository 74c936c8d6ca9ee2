package panel

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"minivercel/schema"
)

// The custom-domain routes: the API side of `minivercel domain`, with the
// same rules (schema.ValidateDomain without wildcards, one project per
// domain) and the same words in its messages.

// domainJSON is a custom domain as the API shows it.
type domainJSON struct {
	// Domain is the stored form: lowercase ASCII, IDNs as punycode.
	Domain     string            `json:"domain"`
	CertStatus schema.CertStatus `json:"cert_status"`
	// CertError is why the last certificate attempt failed; "" otherwise.
	CertError string `json:"cert_error"`
	// CertCheckedAt is when the edge last reported on the certificate; null
	// before the first HTTPS request for the domain.
	CertCheckedAt *time.Time `json:"cert_checked_at"`
	CreatedAt     time.Time  `json:"created_at"`
	URL           string     `json:"url"`
}

// addDomainRequest is the body of POST /api/projects/{name}/domains.
type addDomainRequest struct {
	Domain string `json:"domain"`
}

// domainURL is where a custom domain serves the project. The edge answers
// every host on the same listeners as the project's own host, so the scheme
// and port are those of cfg.URL.
func (s *Server) domainURL(name string) string { return s.cfg.URL(name) }

func (s *Server) toDomainJSON(d schema.Domain) domainJSON {
	return domainJSON{Domain: d.Name, CertStatus: d.CertStatus, CertError: d.CertError,
		CertCheckedAt: d.CertCheckedAt, CreatedAt: d.CreatedAt, URL: s.domainURL(d.Name)}
}

// domainInvalid turns schema.ValidateDomain's error into the message a
// caller reads: what is wrong with the name, without the sentinel's text.
func domainInvalid(err error) string {
	return strings.TrimPrefix(err.Error(), schema.ErrInvalid.Error()+": ")
}

// domainTaken is the refusal of a domain another project has, in the CLI's
// words. It never names that project: it may belong to someone else.
func domainTaken(name string) string { return name + " already belongs to another project" }

// storedDomainName turns a domain a removal names into the form it is stored
// in. It is normalised as when it was added, but without the base-domain
// check: a domain added before the base domain changed to cover it must
// still be removable. A name ValidateDomain refuses is looked up as typed
// (lowercase), which finds nothing: "not a domain of", as for any domain the
// project does not have.
func storedDomainName(name string) string {
	if norm, err := schema.ValidateDomain(name, "", false); err == nil {
		return norm
	}
	return strings.ToLower(strings.TrimSpace(name))
}

func (s *Server) apiListDomains(c *fiber.Ctx) error {
	ctx := c.UserContext()
	p, err := s.store.ProjectByName(ctx, c.Params("name"))
	if err != nil {
		return lookupErr(err, "project")
	}
	ds, err := s.store.ListDomains(ctx, p.ID)
	if err != nil {
		return fmt.Errorf("list domains of %s: %w", p.Name, err)
	}
	out := make([]domainJSON, 0, len(ds))
	for _, d := range ds {
		out = append(out, s.toDomainJSON(d))
	}
	return c.JSON(out)
}

// apiAddDomain attaches a domain: 201 when it is new, 200 when the project
// already had it (so a script may add without asking first), 409 when
// another project has it.
func (s *Server) apiAddDomain(c *fiber.Ctx) error {
	ctx := c.UserContext()
	p, err := s.store.ProjectByName(ctx, c.Params("name"))
	if err != nil {
		return lookupErr(err, "project")
	}
	var req addDomainRequest
	if err := decodeBody(c, &req, false); err != nil {
		return bodyError(c, err)
	}
	name, err := schema.ValidateDomain(req.Domain, s.cfg.BaseDomain, false)
	if err != nil {
		return sendFieldError(c, &fieldError{"domain", domainInvalid(err)})
	}
	d, created, err := s.addDomain(c, p, name)
	if errors.Is(err, schema.ErrConflict) {
		return fiber.NewError(fiber.StatusConflict, domainTaken(name))
	}
	if err != nil {
		return err
	}
	code := fiber.StatusOK
	if created {
		code = fiber.StatusCreated
	}
	return c.Status(code).JSON(s.toDomainJSON(d))
}

// addDomain stores a validated domain for the API and the page alike and
// reports whether it is new. schema.AddDomain answers an existing domain of
// the project as a success; whether it existed is read first (a concurrent
// add of the same name may make both callers say "new", which only changes
// a status code).
func (s *Server) addDomain(c *fiber.Ctx, p schema.Project, name string) (schema.Domain, bool, error) {
	ctx := c.UserContext()
	existing, err := s.store.ListDomains(ctx, p.ID)
	if err != nil {
		return schema.Domain{}, false, fmt.Errorf("list domains of %s: %w", p.Name, err)
	}
	for _, d := range existing {
		if d.Name == name {
			return d, false, nil
		}
	}
	d, err := s.store.AddDomain(ctx, p.ID, name)
	if errors.Is(err, schema.ErrConflict) {
		// A refusal, not a failure: the caller gets a clear answer.
		s.log.Debug("domain refused: another project has it", "project", p.Name, "domain", name, "user", currentUser(c).Name)
		return schema.Domain{}, false, err
	}
	if err != nil {
		return schema.Domain{}, false, fmt.Errorf("add domain %s to %s: %w", name, p.Name, err)
	}
	s.log.Info("custom domain added", "project", p.Name, "domain", name, "user", currentUser(c).Name)
	return d, true, nil
}

// removeDomain detaches a domain for the API and the page alike; a domain the
// project does not have wraps schema.ErrNotFound.
func (s *Server) removeDomain(c *fiber.Ctx, p schema.Project, name string) error {
	if err := s.store.RemoveDomain(c.UserContext(), p.ID, name); err != nil {
		return err
	}
	s.log.Info("custom domain removed", "project", p.Name, "domain", name, "user", currentUser(c).Name)
	return nil
}

// apiRemoveDomain detaches a domain. The edge asks the database and keeps
// the answer for a few seconds, so the domain stops serving shortly after.
func (s *Server) apiRemoveDomain(c *fiber.Ctx) error {
	p, err := s.store.ProjectByName(c.UserContext(), c.Params("name"))
	if err != nil {
		return lookupErr(err, "project")
	}
	// The path segment arrives percent-encoded when it holds an IDN typed in
	// Unicode.
	raw, err := url.PathUnescape(c.Params("domain"))
	if err != nil {
		return notFound("domain")
	}
	name := storedDomainName(raw)
	if err := s.removeDomain(c, p, name); err != nil {
		if errors.Is(err, schema.ErrNotFound) {
			return fiber.NewError(fiber.StatusNotFound, fmt.Sprintf("%s is not a domain of %s", name, p.Name))
		}
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
