package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"minivercel/hosts"
	"minivercel/listen"
	"minivercel/schema"
)

const (
	defaultTLSAddr = ":443"
	// allowTTL is how long a "yes" of the DomainPolicy is remembered. It
	// bounds how long a removed domain can still start a new certificate
	// order on this node.
	allowTTL = time.Minute
	// denyTTL is how long a "no" is remembered: long enough to absorb a
	// scanner's burst, short enough that a domain added right after a miss
	// gets its certificate within seconds.
	denyTTL = 10 * time.Second
	// decisionMax bounds the remembered answers; beyond it the cache is
	// cleared, so random SNI names cannot grow memory.
	decisionMax = 4096
	// policyRate and policyBurst bound DomainPolicy calls (cache misses):
	// every TLS handshake with an unknown SNI would otherwise reach the
	// database, and scanners send random names by the thousand.
	policyRate  = 10 // per second
	policyBurst = 20
	// policyTimeout bounds one DomainPolicy call; it is detached from the
	// handshake because concurrent handshakes share the call.
	policyTimeout = 5 * time.Second
	// reportTimeout bounds one CertReporter call.
	reportTimeout = 5 * time.Second
)

// TLSConfig turns on HTTPS at the edge with certificates obtained on demand
// from an ACME CA: at the first TLS handshake for a host the DomainPolicy
// allows, renewed automatically, and kept in Storage so that every edge node
// sharing it serves them and each certificate is ordered once.
type TLSConfig struct {
	// Addr is the TCP address HTTPS is served on. Zero: ":443".
	Addr string
	// RedirectPort is the port in the https:// URLs that plain-HTTP requests
	// are redirected to, for an edge behind port forwarding. Zero: the port
	// HTTPS listens on; 443 is left out of URLs.
	RedirectPort int
	// Email is the ACME account's contact address, where the CA sends
	// expiry warnings. Zero: an account without contact.
	Email string
	// CA is the ACME directory URL. Zero: Let's Encrypt production.
	CA string
	// CARoot, when set, is the only trust for the ACME server's own HTTPS
	// certificate, for a private or test CA such as pebble. Zero: the
	// system's roots.
	CARoot *x509.CertPool
	// Storage holds certificates, keys, ACME account and challenge data
	// and the cluster's locks; schema.CertStorage keeps them in
	// PostgreSQL. Required.
	Storage certmagic.Storage
	// Domains decides which hosts may get a certificate. Required.
	Domains DomainPolicy
	// Reporter, when set, learns each host's certificate outcomes, for
	// showing why a domain has no certificate. Zero: outcomes are only
	// logged.
	Reporter CertReporter
}

// DomainPolicy decides which hosts the edge obtains certificates for. Every
// certificate order starts with a yes from Allowed, so the policy is what
// stops strangers from pointing a name at the edge and spending the CA's
// rate limits (and the edge's storage) on it.
//
// Allowed is called with a lowercase ASCII host (IDNs as punycode), without
// port or trailing dot, never an IP address. It answers true for the hosts
// the edge serves: the base domain, <project>.<base> of existing projects,
// the build and branch hosts under the base that resolve to a build, and
// the custom domains in the domains table; false otherwise. An error means
// the answer is unknown (the database is down): the edge then refuses the
// certificate, so errors must never stand for "allowed".
//
// It is called concurrently, at most a few times per second (answers are
// cached for a minute, refusals for seconds), and should honour ctx.
type DomainPolicy interface {
	Allowed(ctx context.Context, host string) (bool, error)
}

// CertReporter learns what happens to certificates: CertPending when an order
// starts, CertIssued when a certificate (or its renewal) is stored,
// CertFailed with the CA's or the network's error when an order fails. Host
// is as DomainPolicy gets it; it may be a host that is no custom domain.
// Calls are synchronous on the ordering goroutine, bounded by ctx: they must
// return quickly.
type CertReporter interface {
	CertStatus(ctx context.Context, host string, status schema.CertStatus, err error)
}

// errRateLimited and errNotAllowed deny a certificate; certmagic turns them
// into a failed handshake. They never reach a caller of this package.
var (
	errNotAllowed  = errors.New("no certificate is issued for this host")
	errRateLimited = errors.New("too many certificate decisions; try again")
)

// tlsServer is the HTTPS half of the edge: certmagic with on-demand
// certificates decided by the DomainPolicy, the HTTPS listener and server,
// and the plain-HTTP handler that answers ACME challenges and redirects.
type tlsServer struct {
	cfg    TLSConfig
	log    *slog.Logger
	magic  *certmagic.Config
	cache  *certmagic.Cache
	issuer *certmagic.ACMEIssuer
	decide *decider
	srv    *http.Server
	base   string // the base domain, whose /healthz plain HTTP still serves
	ln     listen.Slot
}

// newTLSServer prepares HTTPS: certmagic's cache and config and an HTTPS
// server serving handler with the settings of plain, the edge's HTTP server.
// It does not listen yet.
func newTLSServer(c TLSConfig, handler http.Handler, plain *http.Server, base string, log *slog.Logger) (*tlsServer, error) {
	if c.Storage == nil || c.Domains == nil {
		return nil, errors.New("new edge: TLS needs Storage and Domains")
	}
	if c.Addr == "" {
		c.Addr = defaultTLSAddr
	}
	if c.CA == "" {
		c.CA = certmagic.LetsEncryptProductionCA
	}
	t := &tlsServer{cfg: c, log: log, base: base}
	t.decide = newDecider(c.Domains, log)
	t.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return t.magic, nil },
		Logger:           zap.NewNop(),
	})
	t.magic = certmagic.New(t.cache, certmagic.Config{
		Storage:  c.Storage,
		OnDemand: &certmagic.OnDemandConfig{DecisionFunc: t.decide.decide},
		OnEvent:  t.onEvent,
		// Outcomes reach the log through onEvent; certmagic's own chatter
		// (zap) would bypass slog's levels and handlers.
		Logger: zap.NewNop(),
	})
	t.issuer = certmagic.NewACMEIssuer(t.magic, certmagic.ACMEIssuer{
		CA:           c.CA,
		Email:        c.Email,
		Agreed:       true,
		TrustedRoots: c.CARoot,
		Logger:       zap.NewNop(),
	})
	t.magic.Issuers = []certmagic.Issuer{t.issuer}

	tc := t.magic.TLSConfig()
	// acme-tls/1 stays for TLS-ALPN-01 challenges, which arrive on this
	// very listener.
	tc.NextProtos = append([]string{"h2", "http/1.1"}, tc.NextProtos...)
	tc.MinVersion = tls.VersionTLS12
	t.srv = &http.Server{
		Handler:           handler,
		TLSConfig:         tc,
		ReadHeaderTimeout: plain.ReadHeaderTimeout,
		IdleTimeout:       plain.IdleTimeout,
		MaxHeaderBytes:    plain.MaxHeaderBytes,
		ErrorLog:          plain.ErrorLog,
	}
	t.srv.Protocols = new(http.Protocols)
	t.srv.Protocols.SetHTTP1(true)
	t.srv.Protocols.SetHTTP2(true)
	return t, nil
}

// listen opens the HTTPS listener; httpAddr is the address plain HTTP
// listens on.
func (t *tlsServer) listen(httpAddr net.Addr) error {
	ln, err := net.Listen("tcp", t.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen edge https: %w", err)
	}
	if err := t.ln.Set(ln); err != nil {
		return fmt.Errorf("listen edge https: %w", err)
	}
	// Challenges are always answered by the edge's own listeners: HTTP-01
	// by plainHTTP, TLS-ALPN-01 by the HTTPS listener. Pointing certmagic
	// at those ports makes its solvers find them taken and rely on us,
	// instead of opening listeners of their own on :80 and :443.
	host, port := splitPort(httpAddr)
	t.issuer.ListenHost, t.issuer.AltHTTPPort = host, port
	_, t.issuer.AltTLSALPNPort = splitPort(ln.Addr())
	return nil
}

func splitPort(a net.Addr) (string, int) {
	if a == nil {
		return "", 0
	}
	host, p, _ := net.SplitHostPort(a.String())
	port, _ := strconv.Atoi(p)
	return host, port
}

// addr returns the HTTPS listening address, or nil before listen.
func (t *tlsServer) addr() net.Addr { return t.ln.Addr() }

// serve serves HTTPS on the listener listen opened until shutdown.
func (t *tlsServer) serve() error {
	ln, _ := t.ln.Get()
	return t.srv.ServeTLS(ln, "", "")
}

// shutdown stops HTTPS and certmagic's maintenance.
func (t *tlsServer) shutdown(ctx context.Context) error {
	err := t.srv.Shutdown(ctx)
	t.cache.Stop()
	return err
}

// plainHTTP is the HTTP handler while HTTPS is on: ACME HTTP-01 challenges
// are answered, /healthz on the base domain is served as before (probes
// and load balancers speak plain HTTP), and everything else is redirected
// to https.
func (t *tlsServer) plainHTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if t.issuer.HandleHTTPChallenge(w, r) {
			return
		}
		if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
			// A token no order of this cluster knows: redirecting would
			// only send the CA one hop further to the same answer.
			http.NotFound(w, r)
			return
		}
		host := hosts.Normalize(r.Host)
		if host == t.base && r.URL.Path == "/healthz" {
			next.ServeHTTP(w, r)
			return
		}
		// The host goes into a Location header: only plain host names
		// are echoed, so no request can make the edge redirect elsewhere.
		if !plausibleHost(host) {
			http.Error(w, "400 bad request: this address is served over https with a host name", http.StatusBadRequest)
			return
		}
		port := t.cfg.RedirectPort
		if port == 0 {
			_, port = splitPort(t.addr()) // set by listen, before serving
		}
		target := "https://" + host
		if port != 443 && port != 0 {
			target += ":" + strconv.Itoa(port)
		}
		target += r.URL.RequestURI()
		code := http.StatusPermanentRedirect // 308 keeps the method and body
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			code = http.StatusMovedPermanently
		}
		http.Redirect(w, r, target, code)
	})
}

// onEvent turns certmagic's events into log lines and CertReporter calls.
func (t *tlsServer) onEvent(ctx context.Context, event string, data map[string]any) error {
	host, _ := data["identifier"].(string)
	renewal, _ := data["renewal"].(bool)
	var (
		status schema.CertStatus
		cause  error
	)
	switch event {
	case "cert_obtaining":
		t.log.Info("ordering certificate", "host", host, "renewal", renewal)
		if renewal {
			// The current certificate still serves: the domain is not
			// pending. A failed renewal is reported below.
			return nil
		}
		status = schema.CertPending
	case "cert_obtained":
		status = schema.CertIssued
		t.log.Info("certificate obtained", "host", host, "renewal", renewal)
	case "cert_failed":
		status = schema.CertFailed
		cause, _ = data["error"].(error)
		if cause == nil {
			cause = errors.New("certificate order failed")
		}
		t.log.Warn("certificate order failed", "host", host, "renewal", renewal, "err", cause)
	default:
		return nil
	}
	if t.cfg.Reporter != nil && host != "" {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reportTimeout)
		defer cancel()
		t.cfg.Reporter.CertStatus(rctx, host, status, cause)
	}
	return nil
}

// decider is certmagic's DecisionFunc: DomainPolicy behind a shape check, a
// cache of answers and a rate limit on the calls that miss the cache.
type decider struct {
	policy  DomainPolicy
	log     *slog.Logger
	now     func() time.Time
	limiter *rate.Limiter
	sf      singleflight.Group
	answers *ttlCache[bool] // host → allowed
}

func newDecider(p DomainPolicy, log *slog.Logger) *decider {
	return &decider{
		policy:  p,
		log:     log,
		now:     time.Now,
		limiter: rate.NewLimiter(policyRate, policyBurst),
		answers: newTTLCache[bool](decisionMax),
	}
}

// decide allows a certificate for name or returns why not. It fails closed:
// a policy error, a timeout or the rate limit all deny. Denials are normal
// (scanners) and logged at debug only.
func (d *decider) decide(ctx context.Context, name string) error {
	host := strings.TrimSuffix(strings.ToLower(name), ".")
	if !plausibleHost(host) {
		return errNotAllowed
	}
	if allowed, ok := d.answers.get(host, d.now()); ok {
		if allowed {
			return nil
		}
		return errNotAllowed
	}
	// Concurrent handshakes for one host share one policy call and one
	// token of the rate limit.
	v, err, _ := d.sf.Do(host, func() (any, error) {
		if !d.limiter.AllowN(d.now(), 1) {
			return false, errRateLimited
		}
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), policyTimeout)
		defer cancel()
		allowed, err := d.policy.Allowed(pctx, host)
		if err != nil {
			// Not remembered: the next handshake asks again.
			return false, fmt.Errorf("ask certificate policy for %s: %w", host, err)
		}
		d.remember(host, allowed)
		return allowed, nil
	})
	switch {
	case errors.Is(err, errRateLimited):
		d.log.Debug("certificate decision rate-limited", "host", host)
		return err
	case err != nil:
		d.log.Warn("certificate policy failed; refusing", "host", host, "err", err)
		return errNotAllowed
	case !v.(bool):
		d.log.Debug("certificate refused", "host", host)
		return errNotAllowed
	}
	return nil
}

func (d *decider) remember(host string, allowed bool) {
	ttl := denyTTL
	if allowed {
		ttl = allowTTL
	}
	d.answers.put(host, allowed, d.now(), ttl)
}

// plausibleHost reports a host name that could have a public certificate:
// at most 253 bytes of dot-separated LDH labels of 1-63 bytes (underscores
// are refused too), and no IP address. Cheap enough to run on every SNI
// before anything is cached or asked.
func plausibleHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return false
	}
	for l := range strings.SplitSeq(h, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
