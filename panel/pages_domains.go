package panel

import (
	"context"
	"strings"

	"github.com/gofiber/fiber/v2"

	"minivercel/deploy"
	"minivercel/schema"
)

// The settings page's custom domains: the page side of the domain routes,
// through the same service methods.

// loadDomains reads the custom-domain rows of the settings page.
func (s *Server) loadDomains(ctx context.Context, p schema.Project) ([]domainRow, error) {
	ds, err := s.svc.Domains(ctx, p.Name)
	if err != nil {
		return nil, err
	}
	rows := make([]domainRow, 0, len(ds))
	for _, d := range ds {
		rows = append(rows, domainRow{Host: d.Name, URL: s.urls.URL(d.Name), Kind: "Custom",
			Cert: d.CertStatus, CertError: d.CertError, CheckedAt: d.CertCheckedAt, AddedAt: d.CreatedAt})
	}
	return rows, nil
}

// domainSubmit adds a custom domain. A refused name (invalid, or another
// project's) re-renders the page with the message next to the field and the
// name as typed.
func (s *Server) domainSubmit(c *fiber.Ctx) error {
	p, err := s.projectByParam(c)
	if err != nil {
		return err
	}
	typed := strings.TrimSpace(c.FormValue("domain"))
	d, created, err := s.svc.AddDomain(c.UserContext(), currentUser(c), p.Name, typed)
	if e := deploy.AsError(err); e != nil {
		v := s.settingsView(p, formFromSettings(p.Settings()), nil)
		v.Domains.Form = domainForm{Domain: typed, Error: sentence(e.Msg)}
		return s.renderSettings(c, fiber.StatusUnprocessableEntity, v)
	}
	if err != nil {
		return err
	}
	if !created {
		return redirectWith(c, settingsAt(p, "domains"), false, d.Name+" already serves "+p.Name+".")
	}
	return redirectWith(c, settingsAt(p, "domains"), false, d.Name+" now serves "+p.Name+". Point its DNS at this server.")
}

// domainDeleteSubmit removes a custom domain after the page's confirmation.
func (s *Server) domainDeleteSubmit(c *fiber.Ctx) error {
	p, err := s.projectByParam(c)
	if err != nil {
		return err
	}
	name, err := s.svc.RemoveDomain(c.UserContext(), currentUser(c), p.Name, c.FormValue("domain"))
	if err != nil {
		return refusedTo(c, settingsAt(p, "domains"), err)
	}
	return redirectWith(c, settingsAt(p, "domains"), false, "Removed "+name+" from "+p.Name+".")
}
