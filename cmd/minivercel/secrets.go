package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// loadSecretKey returns a 32-byte key: from fromEnv (hex) when set, else from
// file, created with mode 0600 on first use. The key never appears in a log.
func loadSecretKey(fromEnv, file string) ([]byte, error) {
	if fromEnv != "" {
		k, err := hex.DecodeString(strings.TrimSpace(fromEnv))
		if err != nil || len(k) < 32 {
			return nil, usageError{"the key in the environment must be at least 64 hex characters (32 bytes)"}
		}
		return k, nil
	}
	b, err := os.ReadFile(file)
	if err == nil {
		k, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(k) < 32 {
			return nil, fmt.Errorf("key file %s is damaged: want 64 hex characters", file)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create key file: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(hex.EncodeToString(k) + "\n"); err != nil {
		return nil, fmt.Errorf("write key file: %w", err)
	}
	return k, f.Sync()
}

// lateHandler is an http.Handler set after the edge is built: the panel and
// git over HTTP depend on parts that themselves need the edge.
type lateHandler struct {
	h atomic.Pointer[http.Handler]
}

func (l *lateHandler) set(h http.Handler) { l.h.Store(&h) }

func (l *lateHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := l.h.Load()
	if h == nil {
		http.Error(w, "503 starting", http.StatusServiceUnavailable)
		return
	}
	(*h).ServeHTTP(w, r)
}

// panelProxy forwards the base-domain host to the panel's unix socket,
// websockets included, keeping the Host the browser asked for. A request
// another edge forwarded (remotePanel) carries its client's address,
// signed with the cluster's session key: the panel then sees that client,
// not the edge (its sign-in limits are per client address).
func panelProxy(socket string, key []byte) http.Handler {
	u := &url.URL{Scheme: "http", Host: "panel"}
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.SetXForwarded()
			if ip, ok := forwardedClient(r.In.Header, key, time.Now()); ok {
				r.Out.Header.Set("X-Forwarded-For", ip)
			}
			r.Out.Header.Del(clientHeader)
			r.Out.Header.Del(clientSigHeader)
			r.Out.Host = r.In.Host
		},
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", socket)
			},
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
		},
	}
}
