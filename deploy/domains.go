package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"minivercel/schema"
)

// ValidateDomain normalises a custom domain as typed (IDNA to punycode,
// lowercase, no trailing dot) and refuses IPs, wildcards and the server's
// own hosts.
func (s *Service) ValidateDomain(name string) (string, error) {
	norm, err := schema.ValidateDomain(name, s.hosts.Base(), false)
	if err != nil {
		return "", invalid("domain", "%s", strings.TrimPrefix(err.Error(), schema.ErrInvalid.Error()+": "))
	}
	return norm, nil
}

// Domains lists a project's custom domains with their certificate status.
func (s *Service) Domains(ctx context.Context, project string) ([]schema.Domain, error) {
	return listOf(ctx, s, project, "domains", s.store.ListDomains)
}

// AddDomain makes a domain serve a project's production and reports whether
// it is new (adding a domain the project has is a success). A domain belongs
// to one project: another project's is ErrConflict, without naming that
// project, which may belong to someone else.
func (s *Service) AddDomain(ctx context.Context, actor schema.User, project, domain string) (schema.Domain, bool, error) {
	p, err := s.Project(ctx, project)
	if err != nil {
		return schema.Domain{}, false, err
	}
	name, err := s.ValidateDomain(domain)
	if err != nil {
		return schema.Domain{}, false, err
	}
	// Whether it existed is read first; a concurrent add of the same name
	// may make both callers say "new", which only changes a status code.
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
		s.log.Debug("domain refused: another project has it", "project", p.Name, "domain", name, "by", actor.Name)
		return schema.Domain{}, false, conflict("%s already belongs to another project", name)
	}
	if err != nil {
		return schema.Domain{}, false, fmt.Errorf("add domain %s to %s: %w", name, p.Name, err)
	}
	s.log.Info("custom domain added", "project", p.Name, "domain", name, "by", actor.Name)
	s.announce(ctx, p.Name)
	return d, true, nil
}

// RemoveDomain detaches a custom domain; the edge stops serving it within
// seconds (it remembers answers briefly). The name is normalised as when it
// was added but without the base-domain check, so a domain added before the
// base domain changed to cover it can still be removed. It returns the
// name as stored.
func (s *Service) RemoveDomain(ctx context.Context, actor schema.User, project, domain string) (string, error) {
	p, err := s.Project(ctx, project)
	if err != nil {
		return "", err
	}
	name := strings.ToLower(strings.TrimSpace(domain))
	if norm, err := schema.ValidateDomain(domain, "", false); err == nil {
		name = norm
	}
	if err := s.store.RemoveDomain(ctx, p.ID, name); errors.Is(err, schema.ErrNotFound) {
		return name, notFound("%s is not a domain of %s", name, p.Name)
	} else if err != nil {
		return name, fmt.Errorf("remove domain %s from %s: %w", name, p.Name, err)
	}
	s.log.Info("custom domain removed", "project", p.Name, "domain", name, "by", actor.Name)
	s.announce(ctx, p.Name)
	return name, nil
}
