package listen

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
)

// ErrNotListening is Serve's answer when Listen was not called first.
var ErrNotListening = errors.New("Listen was not called")

// HTTP is a small http.Server on a listener of its own, in the servers'
// shape: Listen opens it (so Addr is known before Serve), Serve serves
// until Shutdown. The metrics and the profiles are served by one each.
type HTTP struct {
	// Name names the server in errors and logs ("metrics", "pprof").
	Name string
	// Srv is the server: its handler and timeouts.
	Srv *http.Server
	// Log receives "<name> listening".
	Log *slog.Logger
	// Open opens the listener; Listen calls it once.
	Open func() (net.Listener, error)
	ln   Slot
}

// Listen opens the listener.
func (h *HTTP) Listen() error {
	ln, err := h.Open()
	if err == nil {
		err = h.ln.Set(ln)
	}
	if err != nil {
		return fmt.Errorf("listen %s: %w", h.Name, err)
	}
	h.Log.Info(h.Name+" listening", "addr", ln.Addr().String())
	return nil
}

// Addr returns the bound address, nil before Listen.
func (h *HTTP) Addr() net.Addr { return h.ln.Addr() }

// Serve serves on the listener Listen opened until Shutdown, which makes it
// return http.ErrServerClosed.
func (h *HTTP) Serve() error {
	ln, _ := h.ln.Get()
	if ln == nil {
		return fmt.Errorf("serve %s: %w", h.Name, ErrNotListening)
	}
	return h.Srv.Serve(ln)
}

// ListenAndServe is Listen followed by Serve.
func (h *HTTP) ListenAndServe() error {
	if err := h.Listen(); err != nil {
		return err
	}
	return h.Serve()
}

// Shutdown stops accepting requests and waits, until ctx ends, for those
// in flight.
func (h *HTTP) Shutdown(ctx context.Context) error {
	if err := errors.Join(h.Srv.Shutdown(ctx), h.ln.Close()); err != nil {
		return fmt.Errorf("shut down %s: %w", h.Name, err)
	}
	return nil
}
