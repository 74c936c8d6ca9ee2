package gitd

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"minivercel/hooks"
	"minivercel/proc"
	"minivercel/schema"
)

// HTTPConfig configures the smart-HTTP git handler.
type HTTPConfig struct {
	// ReposDir holds the bare repositories, as in Config. Required; created
	// (0700) if missing. Give the SSH server and the handler the same one.
	ReposDir string
	// HookCommand is the absolute path of the minivercel executable, as in
	// Config. Required.
	HookCommand string
	// HookSocket is the unix socket of the hooks.Server, as in Config.
	// Required.
	HookSocket string
	// Logger receives the handler's logs. Nil means slog.Default().
	Logger *slog.Logger
	// MaxPushBytes is as in Config. Zero means DefaultMaxPushBytes.
	MaxPushBytes int64
	// MaxBodyBytes bounds the size of one request body, after gzip
	// decoding: a push's pack must fit in it. Zero means 1 GiB.
	MaxBodyBytes int64
}

// TokenAuthorizer maps an API token to a user.
//
// UserByToken is called once per HTTP request, concurrently, with the
// password of the request's basic credentials (an API token, "mvt_...").
// An unknown or revoked token returns an error wrapping schema.ErrNotFound;
// the client then gets 401 and git asks for other credentials. Any other
// error is reported as an internal error. ctx ends with the request.
type TokenAuthorizer interface {
	UserByToken(ctx context.Context, token string) (userID int64, err error)
}

// defaultMaxBody is HTTPConfig.MaxBodyBytes when it is zero.
const defaultMaxBody = 1 << 30

// httpHandler serves git's smart HTTP protocol by running git's services
// with --stateless-rpc: each request is one round of the conversation, its
// body git's stdin and git's stdout the response.
type httpHandler struct {
	cfg      HTTPConfig
	auth     TokenAuthorizer
	projects Projects
	reg      HookRegistrar
	log      *slog.Logger
	repos    repoStore
}

// NewHTTPHandler returns an http.Handler serving git fetches and pushes
// over smart HTTP at /<name>.git/info/refs, /<name>.git/git-upload-pack
// and /<name>.git/git-receive-pack; every other path is 404. Every request
// must carry basic credentials whose password is an API token (the user
// name is ignored). A push to a project that does not exist creates it,
// with the same repository and hook as a first push over SSH.
//
// The handler streams: it needs a ResponseWriter that can flush, and it
// reads the request body while writing the response (full duplex).
func NewHTTPHandler(cfg HTTPConfig, auth TokenAuthorizer, projects Projects, reg HookRegistrar) (http.Handler, error) {
	switch {
	case cfg.MaxBodyBytes < 0:
		return nil, errors.New("new git http handler: MaxBodyBytes is negative")
	case auth == nil || projects == nil || reg == nil:
		return nil, errors.New("new git http handler: TokenAuthorizer, Projects and HookRegistrar are required")
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = defaultMaxBody
	}
	repos, err := newRepoStore(cfg.ReposDir, cfg.HookCommand, cfg.HookSocket, cfg.MaxPushBytes)
	if err != nil {
		return nil, fmt.Errorf("new git http handler: %w", err)
	}
	return &httpHandler{
		cfg:      cfg,
		auth:     auth,
		projects: projects,
		reg:      reg,
		log:      componentLog(cfg.Logger, "transport", "http"),
		repos:    repos,
	}, nil
}

// pastDeadline is a read deadline that has passed: setting it ends a
// blocked read of the request body.
var pastDeadline = time.Unix(1, 0)

// httpRoute is one request, parsed from its path.
type httpRoute struct {
	name      string  // project name, validated
	svc       service // the git service the request is for
	advertise bool    // GET info/refs: the ref advertisement
}

// errNoRoute means the path is not one this handler serves.
var errNoRoute = errors.New("no such route")

// parseHTTPPath turns a request path into a route. Only the two-part
// layout git uses is accepted: /<name>.git/info/refs (the service then
// comes from the query) and /<name>.git/git-<service>.
//
// Security: like parseCommand, the path is never cleaned and kept: the
// name between the first '/' and ".git/" must pass
// schema.ValidateProjectName, whose alphabet has no '/', '.' or '%', so
// "/../x.git", "/%2e%2e/x.git" (decoded before it gets here) and
// "/a/b.git" are refused, not resolved.
func parseHTTPPath(path, query string) (httpRoute, error) {
	rest, ok := strings.CutPrefix(path, "/")
	if !ok {
		return httpRoute{}, errNoRoute
	}
	repo, action, ok := strings.Cut(rest, "/")
	if !ok {
		return httpRoute{}, errNoRoute
	}
	name, ok := strings.CutSuffix(repo, ".git")
	if !ok {
		return httpRoute{}, errNoRoute
	}
	var rt httpRoute
	svcName := action
	if action == "info/refs" {
		// The service comes from the query; with none, the client speaks
		// the dumb protocol, and only smart HTTP is served.
		rt.advertise = true
		svcName = query
	}
	switch svcName {
	case "git-upload-pack":
		rt.svc = uploadPack
	case "git-receive-pack":
		rt.svc = receivePack
	default:
		return httpRoute{}, errNoRoute
	}
	if err := schema.ValidateProjectName(name); err != nil {
		return httpRoute{}, err
	}
	rt.name = name
	return rt, nil
}

// ServeHTTP authenticates the request, prepares the repository and runs
// git for it.
func (h *httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := h.log.With("remote", r.RemoteAddr)
	rt, err := parseHTTPPath(r.URL.Path, r.URL.Query().Get("service"))
	if err != nil {
		log.Debug("git http request refused", "path", r.URL.Path, "err", err)
		msg := "error: not found"
		if errors.Is(err, schema.ErrInvalidName) {
			msg = "error: " + err.Error()
		}
		deny(w, http.StatusNotFound, msg)
		return
	}
	wantMethod := http.MethodPost
	if rt.advertise {
		wantMethod = http.MethodGet
	}
	if r.Method != wantMethod {
		w.Header().Set("Allow", wantMethod)
		deny(w, http.StatusMethodNotAllowed, "error: method not allowed")
		return
	}

	// Security: every request is authenticated, fetches too, like over
	// SSH; the token is the password and the user name is ignored, so any
	// credential helper entry works.
	_, token, ok := r.BasicAuth()
	if !ok || token == "" {
		log.Debug("git http request refused", "reason", "no credentials")
		unauthorized(w, "error: authentication required: use an API token (mvt_...) as the password")
		return
	}
	userID, err := h.auth.UserByToken(r.Context(), token)
	if errors.Is(err, schema.ErrNotFound) {
		log.Debug("git http request refused", "reason", "unknown token")
		unauthorized(w, "error: this API token is unknown or revoked")
		return
	}
	if err != nil {
		log.Error("look up api token", "err", err)
		deny(w, http.StatusInternalServerError, "error: internal error while checking your token; please try again later")
		return
	}
	log = log.With("user_id", userID, "project", rt.name, "service", string(rt.svc))

	switch rt.svc {
	case receivePack:
		h.receivePack(w, r, log, rt, userID)
	case uploadPack:
		h.uploadPack(w, r, log, rt)
	}
}

// receivePack prepares the project and its repository, as the SSH side
// does, and runs receive-pack. info/refs does it too: git asks for the
// advertisement of a repository that must exist by then, and a first push
// starts there.
func (h *httpHandler) receivePack(w http.ResponseWriter, r *http.Request, log *slog.Logger, rt httpRoute, userID int64) {
	created, err := h.projects.EnsureProject(r.Context(), rt.name, userID)
	if err != nil {
		log.Error("ensure project", "err", err)
		deny(w, http.StatusInternalServerError, "error: internal error while preparing the project; please try again later")
		return
	}
	if created {
		log.Info("project created")
	}
	dir, err := h.repos.ensureRepo(rt.name)
	if err != nil {
		log.Error("ensure repository", "err", err)
		deny(w, http.StatusInternalServerError, "error: internal error while preparing the repository; please try again later")
		return
	}
	if rt.advertise {
		h.serveGit(w, r, log, rt, dir, gitEnv(h.cfg.ReposDir, ""), nil)
		return
	}
	token, release := h.reg.Register(hooks.Push{Project: rt.name, UserID: userID})
	defer release()
	env := gitEnv(h.cfg.ReposDir, "",
		hooks.EnvHookSocket+"="+h.cfg.HookSocket,
		hooks.EnvPushToken+"="+token,
	)
	h.serveGit(w, r, log, rt, dir, env, release)
}

func (h *httpHandler) uploadPack(w http.ResponseWriter, r *http.Request, log *slog.Logger, rt httpRoute) {
	exists, err := h.projects.ProjectExists(r.Context(), rt.name)
	if err != nil {
		log.Error("check project", "err", err)
		deny(w, http.StatusInternalServerError, "error: internal error while looking up the project; please try again later")
		return
	}
	dir := h.repos.repoDir(rt.name)
	if !exists || !repoExists(dir) {
		log.Debug("fetch refused", "reason", "no such project")
		deny(w, http.StatusNotFound, fmt.Sprintf("error: project %q does not exist; push to it first", rt.name))
		return
	}
	h.serveGit(w, r, log, rt, dir, gitEnv(h.cfg.ReposDir, r.Header.Get("Git-Protocol")), nil)
}

// serveGit runs "git <svc> --stateless-rpc [--advertise-refs] <dir>" with
// the request body (for POST) as stdin and streams its stdout into the
// response, flushing after every read so that progress and the build log
// reach the pusher as they happen. stderr goes to the log only: anything
// in the response body is protocol.
//
// hookExit, when not nil, returns the post-receive hook's exit code once
// receive-pack has exited; see hookFailure for what becomes of it.
func (h *httpHandler) serveGit(w http.ResponseWriter, r *http.Request, log *slog.Logger, rt httpRoute, dir string, env []string, hookExit func() int) {
	rc := http.NewResponseController(w)
	out := &gitResponse{w: w, rc: rc, log: log, contentType: "application/x-git-" + string(rt.svc) + "-result"}
	var stdin io.Reader
	var sniff *capSniffer
	if rt.advertise {
		out.contentType = "application/x-git-" + string(rt.svc) + "-advertisement"
		// git http-backend's framing: a service header, except in protocol
		// v2 where the client expects "version 2" first. receive-pack has
		// no v2 and always answers in v0, so it always gets the header.
		if rt.svc == receivePack || !protocolV2(r.Header.Get("Git-Protocol")) {
			out.prefix = append(pktLine("# service=git-"+string(rt.svc)+"\n"), flushPkt...)
		}
	} else {
		if ct := r.Header.Get("Content-Type"); ct != "application/x-git-"+string(rt.svc)+"-request" {
			// Also keeps browsers out: a cross-site form cannot send this
			// content type without a CORS preflight, which we never allow.
			log.Debug("git http request refused", "reason", "content type", "content_type", ct)
			deny(w, http.StatusUnsupportedMediaType, "error: unsupported content type")
			return
		}
		if r.ContentLength > h.cfg.MaxBodyBytes {
			log.Info("git http request refused", "reason", "body too large", "content_length", r.ContentLength)
			deny(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("error: the request is larger than the server's limit of %d bytes", h.cfg.MaxBodyBytes))
			return
		}
		body, err := h.requestBody(w, r)
		if err != nil {
			log.Debug("git http request refused", "err", err)
			deny(w, http.StatusUnsupportedMediaType, "error: "+err.Error())
			return
		}
		defer body.Close()
		stdin = body
		if hookExit != nil {
			sniff = &capSniffer{r: body}
			stdin = sniff
		}
	}

	if stdin != nil {
		// git may write before it has read the whole body (progress,
		// sideband): without full duplex, net/http's HTTP/1.1 server would
		// cut the body off at the first flush. HTTP/2 is always duplex and
		// reports ErrNotSupported.
		_ = rc.EnableFullDuplex()
	}
	if hookExit != nil {
		out.tail = &pktTail{}
	}
	args := []string{"--stateless-rpc"}
	if rt.advertise {
		args = append(args, "--advertise-refs")
	}
	stderr := stderrLog(log)
	code, err := runGit(r.Context(), h.repos.git, log, gitRun{
		svc: rt.svc, args: append(args, dir), dir: dir, env: env,
		stdin: stdin,
		// A read deadline in the past ends a read of a stalled client's
		// body, so the body is not touched after the handler returns.
		unblockStdin: func() { _ = rc.SetReadDeadline(pastDeadline) },
		stdout:       out, stderr: stderr,
	})
	stderr.Flush()
	if err != nil {
		deny(w, http.StatusInternalServerError, "error: internal error while starting git")
		return
	}
	if out.tail != nil {
		var extra []byte
		if hc := hookExit(); code == 0 && hc != 0 && sniff.sideband() {
			log.Info("build failed; telling the pusher", "hook_exit", hc)
			extra = hookFailure()
		}
		out.write(out.tail.finish(extra))
	}
	if !out.started {
		if code != 0 {
			deny(w, http.StatusInternalServerError, "error: git failed; see the server log")
			return
		}
		out.write(nil) // an empty but successful answer still gets its headers
	}
}

// requestBody returns the request body, gzip-decoded when git sent it so
// (it does for large fetch negotiations), limited to MaxBodyBytes before
// and after decoding so that a small gzip bomb cannot fill the disk.
func (h *httpHandler) requestBody(w http.ResponseWriter, r *http.Request) (io.ReadCloser, error) {
	body := http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes)
	switch enc := r.Header.Get("Content-Encoding"); enc {
	case "", "identity":
		return body, nil
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, fmt.Errorf("decode gzip request body: %w", err)
		}
		return http.MaxBytesReader(w, zr, h.cfg.MaxBodyBytes), nil
	default:
		return nil, fmt.Errorf("unsupported content encoding %q", enc)
	}
}

// gitResponse writes git's output into the response, headers first,
// flushing every write. When the client is gone it keeps accepting (and
// dropping) output, so git never blocks on a full pipe before the request's
// end signals it.
type gitResponse struct {
	w           http.ResponseWriter
	rc          *http.ResponseController
	log         *slog.Logger
	contentType string
	prefix      []byte   // written right after the headers
	tail        *pktTail // when not nil, git's stdout passes through it
	started     bool
	gone        bool
}

// Write takes git's stdout (through tail when set). It never fails: when
// the client is gone the output is dropped, so git does not block on a
// full pipe before the request's end signals it.
func (g *gitResponse) Write(p []byte) (int, error) {
	chunk := p
	if g.tail != nil {
		chunk = g.tail.feed(p)
	}
	g.write(chunk)
	return len(p), nil
}

func (g *gitResponse) write(p []byte) {
	if !g.started {
		g.started = true
		hdr := g.w.Header()
		hdr.Set("Content-Type", g.contentType)
		// What git http-backend sends: proxies must never serve an old
		// advertisement or result.
		hdr.Set("Cache-Control", "no-cache, max-age=0, must-revalidate")
		hdr.Set("Pragma", "no-cache")
		hdr.Set("Expires", "Fri, 01 Jan 1980 00:00:00 GMT")
		g.w.WriteHeader(http.StatusOK)
		p = append(g.prefix, p...)
	}
	if g.gone || len(p) == 0 {
		return
	}
	_, err := g.w.Write(p)
	if err == nil {
		if err = g.rc.Flush(); errors.Is(err, http.ErrNotSupported) {
			err = nil
		}
	}
	if err != nil {
		g.gone = true
		g.log.Debug("write git response", "err", err)
	}
}

// stderrLog sends git's stderr to the log, a line per record, at most
// maxLogged bytes in all so that a chatty git cannot flood the log. None of
// it goes into the response: anything there is protocol.
func stderrLog(log *slog.Logger) *proc.LineWriter {
	logged := 0 // guarded by the LineWriter's lock, under which emit runs
	return proc.NewLineWriter(4096, func(line string) {
		if line == "" || logged > maxLogged {
			return
		}
		logged += len(line)
		log.Info("git stderr", "line", line)
	})
}

const maxLogged = 64 << 10

// deny answers with a status and a one-line text/plain message. git shows
// a text/plain error body to the user as "remote: ..." lines.
func deny(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg+"\n")
}

// unauthorized asks for basic credentials; git then tries its credential
// helpers or prompts for a user name and password.
func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Basic realm="minivercel"`)
	deny(w, http.StatusUnauthorized, msg)
}

// protocolV2 reports whether a Git-Protocol header asks for version 2.
func protocolV2(header string) bool {
	if !gitProtocolRe.MatchString(header) {
		return false
	}
	for _, kv := range strings.Split(header, ":") {
		if kv == "version=2" {
			return true
		}
	}
	return false
}

var flushPkt = []byte("0000")

// pktLine frames s as one pkt-line.
func pktLine(s string) []byte {
	return fmt.Appendf(nil, "%04x%s", len(s)+4, s)
}

// hookFailure is the sideband packet that makes `git push` over HTTP exit
// non-zero when the build failed, as the SSH exit status does over SSH.
//
// Over HTTP there is no exit status, and receive-pack sends its
// report-status ("ok refs/heads/main") before post-receive runs, so git
// would print success. What is left is the sideband's error channel (band
// 3): the client prints the message as a "remote:" line and its sideband
// demultiplexer fails, so send-pack, and with it `git push`, exits
// non-zero. The refs stay updated, which the message says: that is what
// happened. git also prints "error: error in sideband demultiplexer", which
// we cannot avoid. A client that asked for no sideband (git always asks)
// gets no such packet, and its push exits 0 whatever the build did.
func hookFailure() []byte {
	return pktLine("\x03error: the push was stored, but its build failed (see above)\n")
}

// pktTail passes a pkt-line stream through but holds back a flush-pkt
// until it knows whether more follows: receive-pack ends its sideband
// stream with one, and the client stops reading there, so a hookFailure
// packet has to go before it. Only the flush is held; every other byte
// goes out at once, so streaming is not delayed.
type pktTail struct {
	hdr  []byte // header bytes of the next packet seen so far
	left int    // payload bytes of the current packet still to pass
	held bool   // a flush-pkt is held back
	raw  bool   // not a pkt-line stream after all: pass everything
}

// feed returns the part of p to write now.
func (t *pktTail) feed(p []byte) []byte {
	out := make([]byte, 0, len(p)+4)
	for len(p) > 0 {
		if t.raw {
			return append(out, p...)
		}
		if t.left > 0 {
			n := min(t.left, len(p))
			out = append(out, p[:n]...)
			t.left -= n
			p = p[n:]
			continue
		}
		t.hdr = append(t.hdr, p[0])
		p = p[1:]
		if len(t.hdr) < 4 {
			continue
		}
		if t.held {
			out = append(out, flushPkt...)
			t.held = false
		}
		n, err := strconv.ParseUint(string(t.hdr), 16, 16)
		switch {
		case err != nil:
			t.raw = true
			out = append(out, t.hdr...)
		case n == 0:
			t.held = true
		case n >= 4:
			t.left = int(n) - 4
			out = append(out, t.hdr...)
		default: // delim-pkt and response-end-pkt have no payload
			out = append(out, t.hdr...)
		}
		t.hdr = t.hdr[:0]
	}
	return out
}

// finish returns what is left to write at the end of the stream, with
// extra put before a held final flush-pkt. extra is dropped unless the
// stream ended cleanly with a flush at a packet boundary.
func (t *pktTail) finish(extra []byte) []byte {
	out := append([]byte(nil), t.hdr...)
	if !t.held {
		return out
	}
	if !t.raw && t.left == 0 && len(t.hdr) == 0 {
		out = append(out, extra...)
	}
	return append(out, flushPkt...)
}

// capSniffer passes a receive-pack request through and keeps its first
// pkt-line, which carries the capabilities the client asked for.
type capSniffer struct {
	r     io.Reader
	first []byte
}

func (c *capSniffer) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if room := 4 + 0xffff - len(c.first); room > 0 {
		c.first = append(c.first, p[:min(n, room)]...)
	}
	return n, err
}

// sideband reports whether the client asked for a sideband: only then
// may a band-3 packet be added to the response.
func (c *capSniffer) sideband() bool {
	if c == nil || len(c.first) < 4 {
		return false
	}
	n, err := strconv.ParseUint(string(c.first[:4]), 16, 16)
	if err != nil || n < 4 || int(n) > len(c.first) {
		return false
	}
	_, caps, ok := bytes.Cut(c.first[4:n], []byte{0})
	if !ok {
		return false
	}
	for _, c := range strings.Fields(string(caps)) {
		if c == "side-band-64k" || c == "side-band" {
			return true
		}
	}
	return false
}
