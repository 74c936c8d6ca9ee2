package main

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"

	"minivercel/deploy"
	"minivercel/edge"
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
		Domains:  deploy.NewCertPolicy(store, f.baseDomain),
		Reporter: deploy.NewCertReporter(store, log.With("component", "tls")),
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
