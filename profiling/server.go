// Package profiling serves Go's runtime profiles (net/http/pprof) on a
// listener of its own, for an operator or a benchmark to see where the
// server spends its time. It is off unless `serve --pprof-addr` names a
// unix socket in a private directory.
package profiling

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"minivercel/listen"
)

// Config configures the profiling Server.
type Config struct {
	// Addr is where /debug/pprof/ is served: "unix:/path", a unix socket
	// (mode 0600) whose directory only the server's user may enter, such
	// as unix:<data-dir>/run/pprof.sock. Required; see CheckAddr.
	Addr string
	// Logger receives the server's logs, tagged component=pprof. Zero:
	// slog.Default().
	Logger *slog.Logger
}

// Server serves the runtime profiles at /debug/pprof/ on a listener of its
// own.
type Server struct {
	listen.HTTP
}

// MaxSeconds caps the seconds of /debug/pprof/profile and /trace: a longer
// request is answered with a profile of MaxSeconds.
const MaxSeconds = 60

// CheckAddr reports whether addr is a valid Config.Addr: "unix:" and an
// absolute path.
//
// Security: a profile shows the heap and the goroutines' stacks (paths,
// project names, fragments of requests), /debug/pprof/cmdline shows the
// command line (--database-url with its password), and /debug/pprof/profile
// keeps a CPU busy, with no login. Builds and apps share the host's network
// namespace, so a loopback TCP port is open to them: only a unix socket in a
// directory they cannot enter is private. An operator reaches it with
// curl --unix-socket or through an SSH tunnel to the socket.
func CheckAddr(addr string) error {
	if addr == "" {
		return ErrNoAddr
	}
	p, ok := strings.CutPrefix(addr, "unix:")
	if !ok || !filepath.IsAbs(p) {
		return ErrNotUnix
	}
	return nil
}

// New returns a Server for cfg; it does not listen yet. It refuses an
// address CheckAddr refuses.
func New(cfg Config) (*Server, error) {
	if err := CheckAddr(cfg.Addr); err != nil {
		return nil, fmt.Errorf("new pprof server %q: %w", cfg.Addr, err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	log := cfg.Logger.With("component", "pprof")
	// A mux of its own: the handlers net/http/pprof registers on
	// http.DefaultServeMux are served by nothing.
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.Handle("/debug/pprof/profile", capSeconds(http.HandlerFunc(pprof.Profile)))
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.Handle("/debug/pprof/trace", capSeconds(http.HandlerFunc(pprof.Trace)))
	path := strings.TrimPrefix(cfg.Addr, "unix:")
	return &Server{listen.HTTP{Name: "pprof", Log: log, Open: func() (net.Listener, error) {
		// The directory is checked before the socket is made in it.
		if err := privateDir(filepath.Dir(path)); err != nil {
			return nil, err
		}
		return listen.Unix(path)
	}, Srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		// A CPU profile or a trace answers after its seconds, at most
		// MaxSeconds; pprof refuses seconds past the WriteTimeout.
		WriteTimeout:   (MaxSeconds + 30) * time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}}}, nil
}

// capSeconds lowers a "seconds" query parameter above MaxSeconds to it.
func capSeconds(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if sec, err := strconv.ParseFloat(q.Get("seconds"), 64); err == nil && sec > MaxSeconds {
			q.Set("seconds", strconv.Itoa(MaxSeconds))
			r.URL.RawQuery = q.Encode()
			r.Form = nil
		}
		h.ServeHTTP(w, r)
	})
}

// privateDir checks that dir is a directory of this process's user that no
// one else may enter (no group or other permission bits).
func privateDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("check socket directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 || (ok && int(st.Uid) != os.Geteuid()) {
		return fmt.Errorf("socket directory %s (mode %v): %w", dir, fi.Mode().Perm(), ErrDirNotPrivate)
	}
	return nil
}
