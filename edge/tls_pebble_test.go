package edge

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"

	"minivercel/schema"
	"minivercel/schema/schematest"
)

// childEdgeEnv makes the test binary run one TLS edge instead of the tests:
// the second node of TestTLSTwoEdgeProcessesOrderOnce. Its value is
// "dsn|ACME directory URL|file with the ACME server's certificate|allowed host".
const childEdgeEnv = "MINIVERCEL_TEST_TLS_EDGE"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(childEdgeEnv); cfg != "" {
		os.Exit(runChildEdge(cfg))
	}
	schematest.Main(m)
}

// acmeCA is pebble, in-process, behind an httptest TLS server. Its server
// starts first (newCA), so that its URL can go into an edge's config;
// pebble itself starts once the edge's ports are known (start).
type acmeCA struct {
	dir       string         // ACME directory URL
	serverPEM []byte         // the ACME server's own certificate
	apiRoots  *x509.CertPool // trust for the ACME API
	roots     *x509.CertPool // trust for the certificates it issues
	orders    atomic.Int64   // new-order requests
	db        *db.MemoryStore
	h         atomic.Pointer[http.Handler]
}

func newCA(t *testing.T) *acmeCA {
	t.Helper()
	c := &acmeCA{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := c.h.Load()
		if h == nil {
			http.Error(w, "ca not started", http.StatusServiceUnavailable)
			return
		}
		if r.Method == http.MethodPost && r.URL.Path == "/order-plz" {
			c.orders.Add(1)
		}
		(*h).ServeHTTP(w, r)
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c.dir = srv.URL + wfe.DirectoryPath
	c.serverPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	c.apiRoots = x509.NewCertPool()
	c.apiRoots.AddCert(srv.Certificate())
	return c
}

// start runs pebble, whose validator checks challenges at 127.0.0.1 on
// httpPort (HTTP-01) and tlsPort (TLS-ALPN-01), resolving every name
// through a DNS server that answers 127.0.0.1. Validation is real: no
// PEBBLE_VA_ALWAYS_VALID.
func (c *acmeCA) start(t *testing.T, httpPort, tlsPort int) {
	t.Helper()
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	logger := log.New(io.Discard, "", 0)
	store := db.NewMemoryStore()
	c.db = store
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "default"}})
	validator := va.New(logger, httpPort, tlsPort, false, startDNS(t), store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	c.roots = x509.NewCertPool()
	c.roots.AddCert(authority.GetRootCert(0).Cert)
	h := front.Handler()
	c.h.Store(&h)
}

// startDNS serves, over UDP and TCP on one loopback port, an A record of
// 127.0.0.1 for every name and nothing else.
func startDNS(t *testing.T) string {
	t.Helper()
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		for _, q := range r.Question {
			if q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		w.WriteMsg(m)
	})
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close() // the TCP port is taken: try another
			continue
		}
		udp := &dns.Server{PacketConn: pc, Handler: handler}
		tcp := &dns.Server{Listener: ln, Handler: handler}
		go udp.ActivateAndServe()
		go tcp.ActivateAndServe()
		t.Cleanup(func() { udp.Shutdown(); tcp.Shutdown() })
		return pc.LocalAddr().String()
	}
	t.Fatal("no loopback port free for both UDP and TCP")
	return ""
}

// statusLog records CertReporter calls.
type statusLog struct {
	mu      sync.Mutex
	events  []string
	changed chan struct{} // closed and replaced at every call
}

func (l *statusLog) CertStatus(_ context.Context, host string, status schema.CertStatus, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := host + " " + status.String()
	if err != nil {
		e += ": " + err.Error()
	}
	l.events = append(l.events, e)
	if l.changed != nil {
		close(l.changed)
	}
	l.changed = make(chan struct{})
}

// waitFor waits until a reported status contains substr and returns all.
func (l *statusLog) waitFor(t *testing.T, substr string) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		l.mu.Lock()
		if l.changed == nil {
			l.changed = make(chan struct{})
		}
		all, changed := strings.Join(l.events, "; "), l.changed
		l.mu.Unlock()
		if strings.Contains(all, substr) {
			return all
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no status %q reported; got %s", substr, all)
		}
	}
}

func (l *statusLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.events, "; ")
}

// tlsEdge is an edge with TLS on, its policy and its reported statuses.
type tlsEdge struct {
	*Server
	policy *fakePolicy
	status *statusLog
}

// newTLSEdge starts an edge on loopback ports with certificates from caURL
// kept in the database of pool, allowing hosts.
func newTLSEdge(pool *pgxpool.Pool, deployments, caURL string, caRoot *x509.CertPool, hosts ...string) (*tlsEdge, error) {
	p := &fakePolicy{}
	for _, h := range hosts {
		p.set(h, true)
	}
	st := &statusLog{}
	srv, err := New(Config{
		Addr:           "127.0.0.1:0",
		BaseDomain:     "example.com",
		DeploymentsDir: deployments,
		Logger:         slog.New(slog.DiscardHandler),
		TLS: &TLSConfig{
			Addr: "127.0.0.1:0", CA: caURL, CARoot: caRoot, Email: "ops@example.com",
			Storage: schema.NewCertStorage(pool), Domains: p, Reporter: st,
		},
	}, &fakeLookup{})
	if err != nil {
		return nil, err
	}
	if err := srv.Listen(); err != nil {
		return nil, err
	}
	srv.SetReady(true)
	return &tlsEdge{Server: srv, policy: p, status: st}, nil
}

func startTLSEdge(t *testing.T, pool *pgxpool.Pool, c *acmeCA, hosts ...string) *tlsEdge {
	t.Helper()
	e, err := newTLSEdge(pool, t.TempDir(), c.dir, c.apiRoots, hosts...)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- e.Serve() }()
	t.Cleanup(func() {
		e.Shutdown(context.Background())
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return e
}

// handshake connects to addr with SNI host, trusting only roots, and
// returns the verified leaf certificate.
func handshake(addr, host string, roots *x509.CertPool) (*x509.Certificate, error) {
	return handshakeWithin(30*time.Second, addr, host, roots)
}

func handshakeWithin(timeout time.Duration, addr, host string, roots *x509.CertPool) (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: timeout}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: host, RootCAs: roots, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// httpsClient sends every request to the edge at addr, verifying the
// certificate against roots for the URL's host.
func httpsClient(addr string, roots *x509.CertPool) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func certKeys(t *testing.T, pool *pgxpool.Pool, host string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM certmagic_data
		WHERE key LIKE 'certificates/%/' || $1 || '/%'`, host).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func testPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := schema.Open(context.Background(), schematest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// TestTLSOnDemandWithPebble: a real ACME exchange with pebble, which
// validates each challenge type through the edge's own listeners.
func TestTLSOnDemandWithPebble(t *testing.T) {
	pool := testPool(t)
	c := newCA(t)
	e := startTLSEdge(t, pool, c, "blog.example.com", "shop.test")
	_, httpPort := splitPort(e.Addr())
	_, tlsPort := splitPort(e.TLSAddr())
	c.start(t, httpPort, tlsPort)
	site := newTestEdge(t).site("blog", 1, map[string]string{"index.html": "<h1>blog over https</h1>"})
	if err := e.Activate(context.Background(), site, nil); err != nil {
		t.Fatal(err)
	}
	tlsAddr := e.TLSAddr().String()

	t.Run("TLS-ALPN-01: the first handshake obtains a certificate", func(t *testing.T) {
		e.tls.issuer.DisableHTTPChallenge = true
		defer func() { e.tls.issuer.DisableHTTPChallenge = false }()
		start := time.Now()
		leaf, err := handshake(tlsAddr, "blog.example.com", c.roots)
		if err != nil {
			t.Fatalf("handshake: %v (statuses: %s)", err, e.status)
		}
		t.Logf("first handshake, with issuance, took %v", time.Since(start))
		if err := leaf.VerifyHostname("blog.example.com"); err != nil {
			t.Fatal(err)
		}
		if n := c.orders.Load(); n != 1 {
			t.Fatalf("%d orders at the CA, want 1", n)
		}
		if got := e.status.String(); got != "blog.example.com pending; blog.example.com issued" {
			t.Fatalf("reported statuses: %s", got)
		}
		if certKeys(t, pool, "blog.example.com") == 0 {
			t.Fatal("certificate not in PostgreSQL storage")
		}
	})

	t.Run("the site is served over HTTPS with HTTP/2", func(t *testing.T) {
		start := time.Now()
		resp, err := httpsClient(tlsAddr, c.roots).Get("https://blog.example.com/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		t.Logf("a request on the cached certificate took %v", time.Since(start))
		if resp.StatusCode != 200 || !strings.Contains(string(body), "blog over https") || resp.ProtoMajor != 2 {
			t.Fatalf("%s %d: %s", resp.Proto, resp.StatusCode, body)
		}
		if n := c.orders.Load(); n != 1 {
			t.Fatalf("%d orders after a second connection, want 1", n)
		}
	})

	t.Run("HTTP-01: the challenge is answered on plain HTTP, not redirected", func(t *testing.T) {
		e.tls.issuer.DisableTLSALPNChallenge = true
		defer func() { e.tls.issuer.DisableTLSALPNChallenge = false }()
		leaf, err := handshake(tlsAddr, "shop.test", c.roots)
		if err != nil {
			t.Fatalf("handshake: %v (statuses: %s)", err, e.status)
		}
		if err := leaf.VerifyHostname("shop.test"); err != nil {
			t.Fatal(err)
		}
		if n := c.orders.Load(); n != 2 {
			t.Fatalf("%d orders, want 2", n)
		}
	})

	t.Run("an unregistered host is refused and never ordered", func(t *testing.T) {
		before := c.orders.Load()
		asked := e.policy.calls.Load()
		for _, host := range []string{"evil.example.net", "random.example.com"} {
			if _, err := handshake(tlsAddr, host, c.roots); err == nil {
				t.Fatalf("handshake for %s succeeded", host)
			}
		}
		if n := e.policy.calls.Load() - asked; n != 2 {
			t.Fatalf("the policy was asked %d times, want 2", n)
		}
		if n := c.orders.Load(); n != before {
			t.Fatalf("%d orders, want still %d", n, before)
		}
		if strings.Contains(e.status.String(), "evil") {
			t.Fatalf("a refusal was reported as a certificate failure: %s", e.status)
		}
	})

	t.Run("plain HTTP redirects to HTTPS", func(t *testing.T) {
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		for method, code := range map[string]int{"GET": 301, "POST": 308} {
			req, _ := http.NewRequest(method, "http://"+e.Addr().String()+"/docs?page=2", nil)
			req.Host = "blog.example.com"
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			want := fmt.Sprintf("https://blog.example.com:%d/docs?page=2", tlsPort)
			if resp.StatusCode != code || resp.Header.Get("Location") != want {
				t.Fatalf("%s: %d %q, want %d %q", method, resp.StatusCode, resp.Header.Get("Location"), code, want)
			}
		}
	})

	// Last: certmagic goes on retrying this order in the background.
	t.Run("a CA refusal is reported with its reason", func(t *testing.T) {
		// A name of its own per run: certmagic remembers failed names for the
		// whole process, so a second run (-count=2) must not reuse one.
		blocked := fmt.Sprintf("blocked%d.test", time.Now().UnixNano())
		if err := c.db.AddBlockedDomain(blocked); err != nil {
			t.Fatal(err)
		}
		e.policy.set(blocked, true)
		// certmagic keeps retrying a failed order while the client waits:
		// this client gives up after a second, the report comes at once.
		go handshakeWithin(time.Second, tlsAddr, blocked, c.roots)
		got := e.status.waitFor(t, blocked+" failed: ")
		if !strings.Contains(got, "rejectedIdentifier") {
			t.Fatalf("reported statuses: %s", got)
		}
	})
}

// runChildEdge runs one TLS edge for a parent test in another process: it
// prints "ready <https address>", serves until its stdin closes, then
// prints what it reported and exits.
func runChildEdge(cfg string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "child edge:", err)
		return 1
	}
	parts := strings.Split(cfg, "|")
	if len(parts) != 4 {
		return fail(fmt.Errorf("%s needs 4 fields, got %q", childEdgeEnv, cfg))
	}
	dsn, caURL, rootFile, host := parts[0], parts[1], parts[2], parts[3]
	rootPEM, err := os.ReadFile(rootFile)
	if err != nil {
		return fail(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	ctx := context.Background()
	pool, err := schema.Open(ctx, dsn)
	if err != nil {
		return fail(err)
	}
	defer pool.Close()
	dir, err := os.MkdirTemp("", "tls-edge-child")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	e, err := newTLSEdge(pool, dir, caURL, roots, host)
	if err != nil {
		return fail(err)
	}
	served := make(chan error, 1)
	go func() { served <- e.Serve() }()
	fmt.Printf("ready %s\n", e.TLSAddr())
	io.Copy(io.Discard, os.Stdin)
	if err := errors.Join(e.Shutdown(ctx), <-served); err != nil {
		return fail(err)
	}
	fmt.Printf("status %s\n", e.status)
	return 0
}

// TestTLSTwoEdgeProcessesOrderOnce: two edge nodes in two processes, sharing
// only the PostgreSQL storage, get their first handshake for one host at
// the same moment. The CA sees one order, and both serve the same
// certificate. The CA validates at the first node only, so when the second
// node wins the lock, the first answers the challenge from storage.
func TestTLSTwoEdgeProcessesOrderOnce(t *testing.T) {
	const host = "shared.example.com"
	dsn := schematest.DSN(t)
	pool, err := schema.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	c := newCA(t)
	a := startTLSEdge(t, pool, c, host)
	_, httpPort := splitPort(a.Addr())
	_, tlsPort := splitPort(a.TLSAddr())
	c.start(t, httpPort, tlsPort)

	rootFile := filepath.Join(t.TempDir(), "acme-server.pem")
	if err := os.WriteFile(rootFile, c.serverPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = []string{
		childEdgeEnv + "=" + strings.Join([]string{dsn, c.dir, rootFile, host}, "|"),
		"PATH=" + os.Getenv("PATH"),
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.WaitDelay = 10 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	stopped := false
	stop := func() string {
		if stopped {
			return ""
		}
		stopped = true
		stdin.Close()
		var last string
		for l := range lines {
			last = l
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("child edge: %v\n%s", err, stderr.String())
		}
		return last
	}
	t.Cleanup(func() { stop() })
	var childAddr string
	select {
	case l, ok := <-lines:
		if !ok || !strings.HasPrefix(l, "ready ") {
			t.Fatalf("child edge said %q\n%s", l, stderr.String())
		}
		childAddr = strings.TrimPrefix(l, "ready ")
	case <-time.After(30 * time.Second):
		t.Fatalf("child edge not ready\n%s", stderr.String())
	}

	start := time.Now()
	var (
		wg    sync.WaitGroup
		leafs [2]*x509.Certificate
		errs  [2]error
	)
	for i, addr := range []string{a.TLSAddr().String(), childAddr} {
		wg.Go(func() { leafs[i], errs[i] = handshake(addr, host, c.roots) })
	}
	wg.Wait()
	t.Logf("two nodes' first handshakes took %v", time.Since(start))
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: handshake: %v\nparent reported: %s\nchild stderr: %s", i, err, a.status, stderr.String())
		}
	}
	if n := c.orders.Load(); n != 1 {
		t.Fatalf("%d orders at the CA, want 1", n)
	}
	if leafs[0].SerialNumber.Cmp(leafs[1].SerialNumber) != 0 {
		t.Fatalf("the nodes serve different certificates: %v and %v", leafs[0].SerialNumber, leafs[1].SerialNumber)
	}
	childStatus := stop()
	t.Logf("parent reported %q; child %q", a.status, childStatus)
	if got := a.status.String() + " " + childStatus; strings.Count(got, host+" issued") != 1 {
		t.Fatalf("want exactly one node to report the issue: parent %q, child %q", a.status, childStatus)
	}
}
