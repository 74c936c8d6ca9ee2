package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

// fakePolicy answers from a set of hosts and counts its calls; gate, when
// set, holds every call until closed, and entered is closed by the first.
type fakePolicy struct {
	mu      sync.Mutex
	hosts   map[string]bool
	err     error
	calls   atomic.Int64
	gate    chan struct{}
	entered chan struct{}
	once    sync.Once
}

func (p *fakePolicy) Allowed(ctx context.Context, host string) (bool, error) {
	p.calls.Add(1)
	if p.gate != nil {
		p.once.Do(func() { close(p.entered) })
		select {
		case <-p.gate:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hosts[host], p.err
}

func (p *fakePolicy) set(host string, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hosts == nil {
		p.hosts = map[string]bool{}
	}
	p.hosts[host] = ok
}

// fakeClock is a settable clock for the decision cache and rate limit.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newTestDecider is a decider asking p, on a fake clock, with p allowing
// the hosts given.
func newTestDecider(p *fakePolicy, allowed ...string) (*decider, *fakeClock) {
	for _, h := range allowed {
		p.set(h, true)
	}
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	d := newDecider(p, slog.New(slog.DiscardHandler))
	d.now = clk.now
	return d, clk
}

func TestDecisionCachesAnswers(t *testing.T) {
	p := &fakePolicy{}
	d, clk := newTestDecider(p, "shop.example.com")
	ctx := context.Background()

	if err := d.decide(ctx, "Shop.Example.com."); err != nil {
		t.Fatalf("allowed host refused: %v", err)
	}
	if err := d.decide(ctx, "evil.example.com"); err == nil {
		t.Fatal("unknown host allowed")
	}
	for range 5 {
		d.decide(ctx, "shop.example.com")
		d.decide(ctx, "evil.example.com")
	}
	if n := p.calls.Load(); n != 2 {
		t.Fatalf("policy asked %d times, want 2 (answers cached)", n)
	}

	// A domain added after a refusal is allowed once the refusal expires.
	p.set("evil.example.com", true)
	if err := d.decide(ctx, "evil.example.com"); err == nil {
		t.Fatal("refusal forgotten too early")
	}
	clk.advance(denyTTL + time.Second)
	if err := d.decide(ctx, "evil.example.com"); err != nil {
		t.Fatalf("added domain still refused after denyTTL: %v", err)
	}
	// A removed domain is refused once the permission expires.
	p.set("shop.example.com", false)
	clk.advance(allowTTL + time.Second)
	if err := d.decide(ctx, "shop.example.com"); err == nil {
		t.Fatal("removed domain still allowed after allowTTL")
	}
}

// TestDecisionFailsClosed: a policy error denies and is not remembered.
func TestDecisionFailsClosed(t *testing.T) {
	p := &fakePolicy{err: errors.New("database is down")}
	d, _ := newTestDecider(p, "shop.example.com")
	ctx := context.Background()
	if err := d.decide(ctx, "shop.example.com"); err == nil {
		t.Fatal("a policy error allowed a certificate")
	}
	p.mu.Lock()
	p.err = nil
	p.mu.Unlock()
	if err := d.decide(ctx, "shop.example.com"); err != nil {
		t.Fatalf("after the policy recovered: %v", err)
	}
}

// TestDecisionNeverAsksForImplausibleHosts: IPs and malformed names are
// refused before the cache, the rate limit or the policy.
func TestDecisionNeverAsksForImplausibleHosts(t *testing.T) {
	p := &fakePolicy{}
	d, _ := newTestDecider(p)
	for _, h := range []string{"", "127.0.0.1", "::1", "2001:db8::1", "a..b", ".a.b", "a_b.example.com",
		"-a.example.com", "a-.example.com", "*.example.com", "exa mple.com", strings.Repeat("a.", 127) + "com",
		strings.Repeat("a", 64) + ".com", "shop.example.com:443"} {
		p.set(h, true)
		if err := d.decide(context.Background(), h); err == nil {
			t.Errorf("%q allowed", h)
		}
	}
	if n := p.calls.Load(); n != 0 {
		t.Fatalf("policy asked %d times", n)
	}
}

// TestDecisionRateLimit: a flood of unknown names reaches the policy at
// most a burst at once, then at the refill rate; cached answers are not
// limited.
func TestDecisionRateLimit(t *testing.T) {
	p := &fakePolicy{}
	d, clk := newTestDecider(p, "shop.example.com")
	ctx := context.Background()
	if err := d.decide(ctx, "shop.example.com"); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		d.decide(ctx, fmt.Sprintf("scan%d.example.net", i))
	}
	if n := p.calls.Load(); n != policyBurst {
		t.Fatalf("policy asked %d times during the flood, want the burst %d", n, policyBurst)
	}
	if err := d.decide(ctx, "shop.example.com"); err != nil {
		t.Fatalf("a cached host was refused during the flood: %v", err)
	}
	if err := d.decide(ctx, "new.example.com"); !errors.Is(err, errRateLimited) {
		t.Fatalf("over the limit: %v, want errRateLimited", err)
	}
	clk.advance(time.Second)
	for i := range 1000 {
		d.decide(ctx, fmt.Sprintf("again%d.example.net", i))
	}
	if n := p.calls.Load(); n != policyBurst+policyRate {
		t.Fatalf("policy asked %d times after one second, want %d", n, policyBurst+policyRate)
	}
}

// TestDecisionSharesConcurrentCalls: a burst of handshakes for one new host
// asks the policy once.
func TestDecisionSharesConcurrentCalls(t *testing.T) {
	p := &fakePolicy{gate: make(chan struct{}), entered: make(chan struct{})}
	d, _ := newTestDecider(p, "shop.example.com")
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() { errs <- d.decide(context.Background(), "shop.example.com") })
	}
	select {
	case <-p.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no call reached the policy")
	}
	close(p.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := p.calls.Load(); n != 1 {
		t.Fatalf("policy asked %d times, want 1", n)
	}
}

// newRedirectEdge is an edge with TLS configured but never listening: the
// redirect logic needs only the configured HTTPS port.
func newRedirectEdge(t *testing.T, redirectPort int) *Server {
	t.Helper()
	srv, err := New(Config{
		Addr:           "127.0.0.1:0",
		BaseDomain:     "apps.test",
		DeploymentsDir: t.TempDir(),
		Logger:         slog.New(slog.DiscardHandler),
		PanelHandler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "panel")
		}),
		TLS: &TLSConfig{
			Addr: "127.0.0.1:0", RedirectPort: redirectPort,
			Storage: &certmagic.FileStorage{Path: t.TempDir()}, Domains: &fakePolicy{},
		},
	}, &fakeLookup{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return srv
}

func TestPlainHTTPRedirects(t *testing.T) {
	srv := newRedirectEdge(t, 443)
	srv.SetReady(true)
	h := srv.srv.Handler
	cases := []struct {
		name, method, host, target string
		code                       int
		location                   string
	}{
		{"get", "GET", "blog.apps.test", "/a/b?x=1&y=%20", 301, "https://blog.apps.test/a/b?x=1&y=%20"},
		{"head", "HEAD", "shop.example.com:80", "/", 301, "https://shop.example.com/"},
		{"post keeps method", "POST", "shop.example.com", "/api/login", 308, "https://shop.example.com/api/login"},
		{"put", "PUT", "shop.example.com", "/x", 308, "https://shop.example.com/x"},
		{"host lowercased", "GET", "Shop.Example.COM.", "/", 301, "https://shop.example.com/"},
		{"healthz on the base domain is served", "GET", "apps.test", "/healthz", 200, ""},
		{"healthz elsewhere redirects", "GET", "blog.apps.test", "/healthz", 301, "https://blog.apps.test/healthz"},
		{"unknown challenge token is not redirected", "GET", "shop.example.com", "/.well-known/acme-challenge/nope", 404, ""},
		{"ip host", "GET", "127.0.0.1:8080", "/", 400, ""},
		{"host with junk", "GET", "evil.com/@x", "/", 400, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(c.method, "http://placeholder"+c.target, nil)
			r.Host = c.host
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != c.code || w.Header().Get("Location") != c.location {
				t.Fatalf("%s %s%s = %d %q, want %d %q", c.method, c.host, c.target, w.Code,
					w.Header().Get("Location"), c.code, c.location)
			}
		})
	}
	t.Run("https port is in the URL when it is not 443", func(t *testing.T) {
		srv := newRedirectEdge(t, 0)
		r := httptest.NewRequest("GET", "http://shop.example.com/p", nil)
		w := httptest.NewRecorder()
		srv.srv.Handler.ServeHTTP(w, r)
		_, port := splitPort(srv.TLSAddr())
		if want := fmt.Sprintf("https://shop.example.com:%d/p", port); w.Code != 301 || w.Header().Get("Location") != want {
			t.Fatalf("got %d %q, want 301 %q", w.Code, w.Header().Get("Location"), want)
		}
	})
}

func TestNoTLSNoChange(t *testing.T) {
	e := newTestEdge(t)
	if e.srv.tls != nil || e.srv.TLSAddr() != nil {
		t.Fatal("TLS state without Config.TLS")
	}
	r := httptest.NewRequest("GET", "http://nothing.localhost/", nil)
	w := httptest.NewRecorder()
	e.srv.srv.Handler.ServeHTTP(w, r)
	if w.Code != http.StatusNotFound {
		t.Fatalf("plain HTTP without TLS answered %d, want the usual 404", w.Code)
	}
}
