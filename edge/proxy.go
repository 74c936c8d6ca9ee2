package edge

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// backend proxies a project's requests to its app's port and counts what is in
// flight, so a switch can drain it: requests finish, websockets get a grace
// period, and only then is the process stopped.
type backend struct {
	app       *app
	log       *slog.Logger
	proxy     *httputil.ReverseProxy
	transport *http.Transport
	maxBody   int64
	inflight  atomic.Int64

	wsMu sync.Mutex
	ws   map[net.Conn]struct{}
}

// internalPrefixHeader marks, inside the edge, a request whose
// X-Forwarded-Prefix the edge set itself (the path form of previews); it never
// leaves the edge.
const internalPrefixHeader = "X-Minivercel-Internal-Prefix"

// appIdleTimeout is how long an idle connection to an app is kept. Node closes
// idle keep-alive sockets after 5 s; closing ours first means the edge never
// sends a request on a socket Node is closing.
const appIdleTimeout = 4 * time.Second

func newBackend(a *app, log *slog.Logger) *backend {
	target := &url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(a.port)}
	t := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   512, // the default 2 halves throughput under load
		IdleConnTimeout:       appIdleTimeout,
		ResponseHeaderTimeout: a.cfg.ResponseHeaderTimeout,
		DisableCompression:    true, // pass the app's encoding through untouched
	}
	b := &backend{app: a, log: log, transport: t, maxBody: a.cfg.MaxBodyBytes, ws: map[net.Conn]struct{}{}}
	b.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			// Forwarding headers a client sent itself are not the edge's
			// word: drop the ones SetXForwarded does not rewrite. (The path
			// form of previews sets its own X-Forwarded-Prefix after this.)
			for _, h := range []string{"X-Real-Ip", "X-Forwarded-Port", "X-Forwarded-Server"} {
				pr.Out.Header.Del(h)
			}
			if pr.In.Header.Get(internalPrefixHeader) == "" {
				pr.Out.Header.Del("X-Forwarded-Prefix")
			}
			pr.Out.Header.Del(internalPrefixHeader)
			// Apps build absolute URLs and cookies from the host they were asked for.
			pr.Out.Host = pr.In.Host
		},
		Transport: t,
		// FlushInterval stays 0: ReverseProxy already flushes every write of a
		// streaming response (text/event-stream, or no Content-Length), so
		// server-sent events and chunked streams reach the client at once,
		// while ordinary responses are not flushed write by write.
		BufferPool:   bufferPool{},
		ErrorHandler: b.proxyError,
	}
	return b
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.inflight.Add(1)
	defer b.inflight.Add(-1)
	if !b.app.serving.Load() && !b.app.stopping.Load() {
		// The process died and its restart has not passed its health check:
		// whatever answers on the port now is not this app.
		b.proxyError(w, r, errors.New("app restarting"))
		return
	}
	if r.ContentLength > b.maxBody {
		http.Error(w, "413 request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, b.maxBody)
	}
	if r.Header.Get("Upgrade") != "" {
		w = &hijackTracker{ResponseWriter: w, b: b}
	}
	b.proxy.ServeHTTP(w, r)
}

func (b *backend) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		http.Error(w, "413 request body too large", http.StatusRequestEntityTooLarge)
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads an answer.
		w.WriteHeader(499)
	default:
		b.log.Debug("proxy to app", "project", b.app.site.Project, "port", b.app.port, "err", err)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprintf(w, "<!doctype html><title>502 Bad Gateway</title><h1>502 Bad Gateway</h1><p>The app is not answering right now.</p>\n")
	}
}

func (b *backend) port() int     { return b.app.port }
func (b *backend) healthy() bool { return b.app.healthy.Load() }
func (b *backend) stop()         { b.app.stop() }

// bufferPool reuses the 32 KiB copy buffers of the proxy.
type bufferPool struct{}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *copyBuffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { copyBuffers.Put(&b) }

// drain waits for the requests in flight to finish (closing websockets after
// the grace period) and then stops the app.
func (b *backend) drain() {
	cfg := b.app.cfg
	b.transport.CloseIdleConnections()
	start := time.Now()
	wsClosed := false
	for b.inflight.Load() > 0 && time.Since(start) < cfg.DrainTimeout {
		if !wsClosed && time.Since(start) >= cfg.WebsocketGrace {
			b.closeWebsockets()
			wsClosed = true
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := b.inflight.Load(); n > 0 {
		b.app.system(fmt.Sprintf("stopping with %d requests still in flight after %s", n, cfg.DrainTimeout))
	}
	b.closeWebsockets()
	b.app.stop()
	b.transport.CloseIdleConnections()
}

func (b *backend) closeWebsockets() {
	b.wsMu.Lock()
	defer b.wsMu.Unlock()
	for c := range b.ws {
		c.Close()
	}
}

// hijackTracker records the connections a websocket upgrade takes over, so a
// drain can close them after the grace period.
type hijackTracker struct {
	http.ResponseWriter
	b *backend
}

func (h *hijackTracker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.b.wsMu.Lock()
	h.b.ws[conn] = struct{}{}
	h.b.wsMu.Unlock()
	return &trackedConn{Conn: conn, b: h.b}, rw, nil
}

func (h *hijackTracker) Unwrap() http.ResponseWriter { return h.ResponseWriter }

type trackedConn struct {
	net.Conn
	b    *backend
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.b.wsMu.Lock()
		delete(c.b.ws, c.Conn)
		c.b.wsMu.Unlock()
	})
	return c.Conn.Close()
}

var _ io.Closer = (*trackedConn)(nil)
