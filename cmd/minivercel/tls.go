package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"minivercel/edge"
	"minivercel/hosts"
	"minivercel/schema"
)

// tlsConfig builds the edge's TLS settings from the flags; nil when
// --https-addr is not set.
func tlsConfig(f *serveFlags, store *schema.Store, log *slog.Logger) (*edge.TLSConfig, error) {
	if f.httpsAddr == "" {
		return nil, nil
	}
	cfg := &edge.TLSConfig{
		Addr: f.httpsAddr, Email: f.acmeEmail, CA: f.acmeCA,
		Storage:  schema.NewCertStorage(store.Pool()),
		Domains:  certPolicy{store: store, base: strings.ToLower(f.baseDomain)},
		Reporter: certReporter{store: store, log: log.With("component", "tls")},
	}
	if f.acmeCARoot != "" {
		pem, err := os.ReadFile(f.acmeCARoot)
		if err != nil {
			return nil, fmt.Errorf("read --acme-ca-root: %w", err)
		}
		cfg.CARoot = x509.NewCertPool()
		if !cfg.CARoot.AppendCertsFromPEM(pem) {
			return nil, usageError{"--acme-ca-root holds no PEM certificate"}
		}
	}
	return cfg, nil
}

// certPolicy allows a certificate only for hosts the database knows: the base
// domain, its project, build and branch hosts, and custom domains. Anything
// else (scanners trying random names) is refused before an order is placed.
type certPolicy struct {
	store *schema.Store
	base  string
}

func (c certPolicy) Allowed(ctx context.Context, host string) (bool, error) {
	var err error
	switch h := hosts.New(c.base).Parse(host); h.Kind {
	case hosts.Base:
		return true, nil
	case hosts.Custom:
		return c.store.DomainKnown(ctx, h.Name)
	case hosts.Production:
		_, err = c.store.ProjectByName(ctx, h.Project)
	case hosts.Build:
		_, err = c.store.BuildBySlug(ctx, h.Project, h.Slug)
	case hosts.Branch:
		_, err = c.store.LatestBuildForBranchSlug(ctx, h.Project, h.Slug)
	default:
		return false, nil
	}
	if errors.Is(err, schema.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// certReporter records why a custom domain has (or lacks) a certificate, for
// the panel.
type certReporter struct {
	store *schema.Store
	log   *slog.Logger
}

func (r certReporter) CertStatus(ctx context.Context, host string, status schema.CertStatus, err error) {
	if err != nil {
		r.log.Warn("certificate", "host", host, "status", status, "err", err)
	}
	if serr := r.store.SetDomainCertStatus(ctx, host, status, err); serr != nil {
		r.log.Error("record certificate status", "host", host, "err", serr)
	}
}

// domainLookup routes custom domains from the domains table.
type domainLookup struct{ store *schema.Store }

func (d domainLookup) ProjectForHost(ctx context.Context, host string) (string, bool, error) {
	p, err := d.store.DomainProject(ctx, host)
	if errors.Is(err, schema.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return p, true, nil
}
