package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"minivercel/blobs"
	"minivercel/edge"
	"minivercel/nodes"
	"minivercel/schema"
)

// blobStore is where builds keep what other nodes fetch: the blobs in
// PostgreSQL, and this node's copies of them (pipeline.Blobs and
// edge.ArtifactSource).
type blobStore struct {
	db    *schema.Store
	store blobs.Store
	cache *blobs.Cache
}

// Put stores a file a build wrote, whose digest the build made as it
// wrote it (the store checks it while it reads: a blob stored already is
// not read again), and keeps it as this node's copy.
func (b blobStore) Put(ctx context.Context, path, sha string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := b.store.Put(ctx, sha, size, f); err != nil {
		return fmt.Errorf("store %s: %w", filepath.Base(path), err)
	}
	if err := b.cache.Adopt(path, sha); err != nil {
		return fmt.Errorf("keep a copy of %s: %w", filepath.Base(path), err)
	}
	return nil
}

// Fetch returns this node's copy of a blob, fetching it first.
func (b blobStore) Fetch(ctx context.Context, sha string) (string, error) {
	return b.cache.Fetch(ctx, sha)
}

// Extract unpacks a fetched archive with the edge's rules.
func (b blobStore) Extract(archive, sha, dst string) error { return edge.Extract(archive, sha, dst) }

// Release deletes a blob no build needs, and this node's copy.
func (b blobStore) Release(ctx context.Context, sha string) {
	if ok, err := b.db.ReleaseBlob(ctx, sha); err == nil && ok {
		b.Forget(sha)
	}
}

// Forget removes this node's copy of a blob.
func (b blobStore) Forget(sha string) {
	if sha != "" {
		_ = b.cache.Remove(sha)
	}
}

// remotePanel forwards the base domain to a live node with the panel role,
// for an edge node that has none itself.
type remotePanel struct {
	view nodes.View
	self string
	key  []byte // signs the client's address for the panel node
	log  *slog.Logger

	mu      sync.Mutex
	target  string
	checked time.Time
	proxy   *httputil.ReverseProxy
}

func newRemotePanel(view nodes.View, self string, key []byte, log *slog.Logger) *remotePanel {
	p := &remotePanel{view: view, self: self, key: key, log: log.With("component", "edge")}
	p.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			target, _ := r.In.Context().Value(panelTarget{}).(string)
			r.SetURL(&url.URL{Scheme: "http", Host: target})
			r.SetXForwarded()
			if ip, _, err := net.SplitHostPort(r.In.RemoteAddr); err == nil {
				signClient(r.Out.Header, ip, p.key, time.Now())
			}
			r.Out.Host = r.In.Host
		},
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.log.Warn("reach the panel node", "err", err)
			p.mu.Lock()
			p.checked = time.Time{} // look for another at the next request
			p.mu.Unlock()
			http.Error(w, "502 the panel is not reachable from this node", http.StatusBadGateway)
		},
	}
	return p
}

type panelTarget struct{}

// panelRecheck is how long a chosen panel node is used before the list of
// live nodes is read again.
const panelRecheck = 5 * time.Second

func (p *remotePanel) pick(ctx context.Context) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.target != "" && time.Since(p.checked) < panelRecheck {
		return p.target, nil
	}
	list, err := p.view.Store.LiveNodes(ctx, string(nodes.Panel), nodes.DeadAfter)
	if err != nil {
		return "", err
	}
	p.target = ""
	for _, n := range list {
		if n.ID != p.self && n.Address != "" {
			p.target = n.Address
			break
		}
	}
	p.checked = time.Now()
	if p.target == "" {
		return "", errors.New("no node with the panel role is alive")
	}
	return p.target, nil
}

func (p *remotePanel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target, err := p.pick(r.Context())
	if err != nil {
		http.Error(w, "503 "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	p.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), panelTarget{}, target)))
}

// nodeAddress is where other nodes reach this node's HTTP listener: the
// --node-addr given, or the loopback address with the port of addr (right
// for nodes on one machine; set --node-addr on several machines).
func nodeAddress(given, addr string) string {
	if given != "" {
		return given
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// extractedRemover removes a collected build's extracted tree on this
// node, and its cached artifact.
func extractedRemover(deployments string, b blobStore) func(int64, string) {
	return func(id int64, sha string) {
		tree := filepath.Join(deployments, strconv.FormatInt(id, 10))
		_ = os.RemoveAll(tree)
		_ = os.RemoveAll(tree + ".precompressed") // the edge's sidecar of compressed files
		b.Forget(sha)
	}
}

// The headers an edge forwarding the base domain to a panel node sets:
// its client's address, and an HMAC of it with the time, under the
// cluster's session key (MINIVERCEL_JWT_KEY, the same on every node). A
// client cannot forge them without the key; a signature is good for a
// minute.
const (
	clientHeader    = edge.ClientHeader
	clientSigHeader = edge.ClientSigHeader
	clientSigMaxAge = time.Minute
)

// signClient sets the client headers on h.
func signClient(h http.Header, ip string, key []byte, now time.Time) {
	ts := strconv.FormatInt(now.Unix(), 10)
	h.Set(clientHeader, ip+" "+ts)
	h.Set(clientSigHeader, clientMAC(key, ip+" "+ts))
}

// forwardedClient returns the client address in h when its signature is
// good and recent.
func forwardedClient(h http.Header, key []byte, now time.Time) (string, bool) {
	v, sig := h.Get(clientHeader), h.Get(clientSigHeader)
	if v == "" || sig == "" || !hmac.Equal([]byte(sig), []byte(clientMAC(key, v))) {
		return "", false
	}
	ip, ts, _ := strings.Cut(v, " ")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || net.ParseIP(ip) == nil {
		return "", false
	}
	if age := now.Sub(time.Unix(sec, 0)); age > clientSigMaxAge || age < -clientSigMaxAge {
		return "", false
	}
	return ip, true
}

func clientMAC(key []byte, v string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("minivercel-client\x00" + v))
	return hex.EncodeToString(m.Sum(nil))
}
