package panel

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"

	"minivercel/schema"
)

// The settings page's custom domains: the page side of the domain routes,
// with the same validation and the CLI's words in its messages.

// loadDomains reads the custom-domain rows of the settings page.
func (s *Server) loadDomains(ctx context.Context, p schema.Project) ([]domainRow, error) {
	ds, err := s.store.ListDomains(ctx, p.ID)
	if err != nil {
		return nil, fmt.Errorf("list domains of %s: %w", p.Name, err)
	}
	rows := make([]domainRow, 0, len(ds))
	for _, d := range ds {
		rows = append(rows, domainRow{Host: d.Name, URL: s.domainURL(d.Name), Kind: "Custom",
			Cert: d.CertStatus, CertError: d.CertError, CheckedAt: d.CertCheckedAt, AddedAt: d.CreatedAt})
	}
	return rows, nil
}

// domainsBack is where the domain forms return to: the settings page, at the
// section.
func domainsBack(p schema.Project) string { return "/projects/" + p.Name + "/settings#domains" }

// domainSubmit adds a custom domain. A refused name (invalid, or another
// project's) re-renders the page with the message next to the field and the
// name as typed.
func (s *Server) domainSubmit(c *fiber.Ctx) error {
	p, err := s.projectByParam(c)
	if err != nil {
		return err
	}
	typed := strings.TrimSpace(c.FormValue("domain"))
	refuse := func(msg string) error {
		v := s.settingsView(p, formFromSettings(p.Settings()), nil)
		v.Domains.Form = domainForm{Domain: typed, Error: msg}
		return s.renderSettings(c, fiber.StatusUnprocessableEntity, v)
	}
	name, err := schema.ValidateDomain(typed, s.cfg.BaseDomain, false)
	if err != nil {
		return refuse(capitalize(domainInvalid(err)) + ".")
	}
	_, created, err := s.addDomain(c, p, name)
	if errors.Is(err, schema.ErrConflict) {
		return refuse(domainTaken(name) + ".")
	}
	if err != nil {
		return err
	}
	if !created {
		return redirectWith(c, domainsBack(p), false, name+" already serves "+p.Name+".")
	}
	return redirectWith(c, domainsBack(p), false, name+" now serves "+p.Name+". Point its DNS at this server.")
}

// domainDeleteSubmit removes a custom domain after the page's confirmation.
func (s *Server) domainDeleteSubmit(c *fiber.Ctx) error {
	p, err := s.projectByParam(c)
	if err != nil {
		return err
	}
	name := storedDomainName(c.FormValue("domain"))
	if err := s.removeDomain(c, p, name); err != nil {
		if errors.Is(err, schema.ErrNotFound) {
			return redirectWith(c, domainsBack(p), true, name+" is not a domain of "+p.Name+".")
		}
		return err
	}
	return redirectWith(c, domainsBack(p), false, "Removed "+name+" from "+p.Name+".")
}
