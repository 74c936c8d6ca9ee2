package panel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"minivercel/creds"
	"minivercel/deploy"
	"minivercel/schema"
)

// Templates and assets are embedded so the panel ships inside the one binary
// with no build step.
var (
	//go:embed templates/*.html
	templateFS embed.FS
	//go:embed static
	staticFS embed.FS
)

// contentSecurityPolicy allows only the panel's own files: no inline script
// or style, so an escaping bug cannot become script execution. connect-src
// lists ws: and wss: because 'self' does not cover websockets in every browser.
const contentSecurityPolicy = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'"

// flashCookie carries a one-line message across the redirect after a POST.
const flashCookie = "mv_flash"

// pageRoutes mounts the HTML pages. Every page but /login needs a session;
// every POST passes sameOrigin first, the CSRF check.
func (s *Server) pageRoutes(app *fiber.App) {
	app.Get("/static/:file", serveStatic)
	app.Get("/favicon.ico", func(c *fiber.Ctx) error { return c.Redirect(assetURL("logo.svg"), fiber.StatusMovedPermanently) })

	// The page login has its own failure budget, like the API's: a guesser
	// cannot spend one to avoid the other's limit for longer than a window.
	lim := newLoginLimiter(loginFailuresAllowed, loginWindow)
	app.Get("/login", s.loginPage)
	app.Post("/login", sameOrigin, s.loginSubmit(lim))
	app.Post("/logout", sameOrigin, s.logout)

	auth := func(h fiber.Handler) []fiber.Handler {
		return []fiber.Handler{sameOrigin, s.requireSession, h}
	}
	app.Get("/", auth(s.dashboardPage)...)
	app.Get("/projects/:name", auth(s.projectPage)...)
	app.Post("/projects/:name/activate", auth(s.activateSubmit)...)
	app.Post("/projects/:name/redeploy", auth(s.redeploySubmit)...)
	app.Get("/projects/:name/traffic", auth(s.trafficPage)...)
	app.Get("/projects/:name/logs", auth(s.logsPage)...)
	app.Get("/projects/:name/settings", auth(s.settingsPage)...)
	app.Post("/projects/:name/settings", auth(s.settingsSubmit)...)
	app.Post("/projects/:name/env", auth(s.envSubmit)...)
	app.Post("/projects/:name/env/delete", auth(s.envDeleteSubmit)...)
	app.Post("/projects/:name/env/redeploy", auth(s.envRedeploySubmit)...)
	app.Post("/projects/:name/domains", auth(s.domainSubmit)...)
	app.Post("/projects/:name/domains/delete", auth(s.domainDeleteSubmit)...)
	app.Post("/projects/:name/delete", auth(s.deleteSubmit)...)
	app.Get("/builds/:id", auth(s.buildPage)...)
	app.Post("/builds/:id/cancel", auth(s.cancelSubmit)...)
	app.Get("/keys", auth(s.keysPage)...)
	app.Post("/keys", auth(s.keysSubmit)...)
	app.Post("/keys/:id/delete", auth(s.keyDeleteSubmit)...)
	app.Get("/nodes", auth(s.nodesPage)...)
}

// errorPage renders an error for a browser.
func (s *Server) errorPage(c *fiber.Ctx, code int, msg string) error {
	title := "Something went wrong"
	switch code {
	case fiber.StatusNotFound:
		title = "Page not found"
		if strings.HasPrefix(msg, "Cannot ") { // fiber's text for an unmatched route
			msg = "There is nothing at this address."
		}
	case fiber.StatusForbidden:
		title = "Not allowed"
	case fiber.StatusUnauthorized:
		title = "Sign in required"
	case fiber.StatusBadRequest:
		title = "Bad request"
	case fiber.StatusTooManyRequests:
		title = "Too many requests"
	}
	if code >= 500 {
		msg = "The server could not complete this request. The details are in the server log."
	}
	return s.render(c, code, "error", title, errorView{Code: code, Title: title, Message: msg})
}

type errorView struct {
	Code    int
	Title   string
	Message string
}

// --- rendering ---

// view is what every page template gets: the layout's needs plus the page's
// own Data.
type view struct {
	Title string
	Nav   string // which top-level section to highlight
	User  schema.User
	Flash *flash
	Data  any
}

// flash is a message shown once, after a redirect.
type flash struct {
	Error bool
	Text  string
}

var pages = parsePages()

// parsePages parses each page with the shared layout. Templates are embedded,
// so a parse error is a programming error and panics at start (a test parses
// them too).
func parsePages() map[string]*template.Template {
	base := template.Must(template.New("layout.html").Funcs(templateFuncs).ParseFS(templateFS, "templates/layout.html"))
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(path.Base(n), ".html")
		if name == "layout" {
			continue
		}
		out[name] = template.Must(template.Must(base.Clone()).ParseFS(templateFS, n))
	}
	return out
}

// render writes a page. It renders into a buffer first so a template error
// becomes a clean 500, never half a page.
func (s *Server) render(c *fiber.Ctx, code int, page, title string, data any) error {
	t, ok := pages[page]
	if !ok {
		return fmt.Errorf("render: no page %q", page)
	}
	v := view{Title: title, User: currentUser(c), Flash: takeFlash(c), Data: data}
	switch {
	case page == "dashboard" || strings.HasPrefix(page, "project") || page == "build" || page == "settings":
		v.Nav = "projects"
	case page == "keys":
		v.Nav = "keys"
	case page == "nodes":
		v.Nav = "nodes"
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		s.log.Error("render page", "page", page, "err", err)
		if page == "error" {
			return c.Status(fiber.StatusInternalServerError).SendString("internal error")
		}
		return s.errorPage(c, fiber.StatusInternalServerError, "")
	}
	setPageHeaders(c)
	c.Type("html", "utf-8")
	return c.Status(code).Send(buf.Bytes())
}

func setPageHeaders(c *fiber.Ctx) {
	c.Set("Content-Security-Policy", contentSecurityPolicy)
	// Pages show per-user data: never let a shared cache keep them.
	c.Set(fiber.HeaderCacheControl, "no-store")
}

// setFlash stores a message for the next page the browser loads.
func setFlash(c *fiber.Ctx, isError bool, text string) {
	kind := "ok"
	if isError {
		kind = "err"
	}
	c.Cookie(&fiber.Cookie{Name: flashCookie, Value: url.QueryEscape(kind + "|" + text), Path: "/",
		HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode, MaxAge: 60})
}

// takeFlash returns the pending message, if any, and clears it so a reload
// does not show it again.
func takeFlash(c *fiber.Ctx) *flash {
	raw := c.Cookies(flashCookie)
	if raw == "" {
		return nil
	}
	c.Cookie(&fiber.Cookie{Name: flashCookie, Value: "", Path: "/", HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode,
		Expires: time.Unix(0, 0), MaxAge: -1})
	v, err := url.QueryUnescape(raw)
	if err != nil {
		return nil
	}
	kind, text, ok := strings.Cut(v, "|")
	if !ok || text == "" {
		return nil
	}
	return &flash{Error: kind == "err", Text: text}
}

// redirectWith sets a flash message and sends the browser to location with a
// 303, so a reload after a POST never repeats it.
func redirectWith(c *fiber.Ctx, location string, isError bool, text string) error {
	if text != "" {
		setFlash(c, isError, text)
	}
	return c.Redirect(location, fiber.StatusSeeOther)
}

// --- static assets ---

type asset struct {
	body  []byte
	ctype string
	hash  string
}

var assets = loadAssets()

func loadAssets() map[string]asset {
	out := map[string]asset{}
	entries, err := fs.ReadDir(staticFS, "static")
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		b, err := staticFS.ReadFile("static/" + e.Name())
		if err != nil {
			panic(err)
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(e.Name()))
		if ct == "" {
			ct = "application/octet-stream"
		}
		out[e.Name()] = asset{body: b, ctype: ct, hash: hex.EncodeToString(sum[:6])}
	}
	return out
}

// assetURL names an asset with its content hash, so browsers may cache it
// forever and still see a new version after an upgrade.
func assetURL(name string) string {
	a, ok := assets[name]
	if !ok {
		panic("panel: no asset " + name)
	}
	return "/static/" + name + "?v=" + a.hash
}

func serveStatic(c *fiber.Ctx) error {
	a, ok := assets[c.Params("file")]
	if !ok {
		return fiber.ErrNotFound
	}
	c.Set(fiber.HeaderContentType, a.ctype)
	c.Set("Content-Security-Policy", contentSecurityPolicy)
	if c.Query("v") == a.hash {
		c.Set(fiber.HeaderCacheControl, "public, max-age=31536000, immutable")
	} else {
		c.Set(fiber.HeaderCacheControl, "no-cache")
	}
	c.Set(fiber.HeaderETag, `"`+a.hash+`"`)
	if c.Get(fiber.HeaderIfNoneMatch) == `"`+a.hash+`"` {
		return c.SendStatus(fiber.StatusNotModified)
	}
	return c.Send(a.body)
}

// --- login ---

type loginView struct {
	Name  string
	Next  string
	Error string
}

func (s *Server) loginPage(c *fiber.Ctx) error {
	next := safeNext(c.Query("next"))
	if _, err := s.auth.Authenticate(c.UserContext(), c.Cookies(sessionCookie)); err == nil {
		return c.Redirect(next, fiber.StatusSeeOther)
	}
	return s.render(c, fiber.StatusOK, "login", "Sign in", loginView{Next: next})
}

func (s *Server) loginSubmit(lim *loginLimiter) fiber.Handler {
	return func(c *fiber.Ctx) error {
		name := strings.TrimSpace(c.FormValue("username"))
		next := safeNext(c.FormValue("next"))
		ip := strings.Clone(c.IP()) // kept by the limiter beyond this request
		if wait, ok := lim.begin(ip); !ok {
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(wait.Seconds()+1)))
			return s.render(c, fiber.StatusTooManyRequests, "login", "Sign in", loginView{Name: name, Next: next,
				Error: fmt.Sprintf("Too many failed sign-ins from your address. Try again in %d s.", int(wait.Seconds()+1))})
		}
		token, _, err := s.auth.Login(c.UserContext(), name, c.FormValue("password"))
		if errors.Is(err, creds.ErrBadCredentials) {
			s.log.Debug("login refused", "user", name, "ip", ip)
			return s.render(c, fiber.StatusUnauthorized, "login", "Sign in",
				loginView{Name: name, Next: next, Error: "Invalid username or password."})
		}
		if err != nil {
			return err
		}
		lim.succeeded(ip)
		setSessionCookie(c, token, s.auth.SessionTTL())
		return c.Redirect(next, fiber.StatusSeeOther)
	}
}

// logout ends every session of the user, not only this browser's: a JWT
// copied elsewhere stops working too.
func (s *Server) logout(c *fiber.Ctx) error {
	if u, err := s.auth.Authenticate(c.UserContext(), c.Cookies(sessionCookie)); err == nil {
		if err := s.auth.EndSessions(c.UserContext(), u.ID); err != nil {
			return err
		}
	}
	clearSessionCookie(c)
	return redirectWith(c, "/login", false, "You are signed out.")
}

// safeNext returns where to go after login: only a path on this site. "//x"
// and "/\x" are refused because browsers read them as another host, which
// would make the login page an open redirect.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") ||
		strings.ContainsAny(next, "\r\n\t") {
		return "/"
	}
	if u, err := url.Parse(next); err != nil || u.Scheme != "" || u.Host != "" {
		return "/"
	}
	return next
}

// --- helpers shared by the pages ---

// projectURL is the production URL of a project.
func (s *Server) projectURL(name string) string { return s.urls.Project(name) }

// buildURL is a build's own URL.
func (s *Server) buildURL(b schema.Build) string { return s.urls.Build(b) }

// branchURL is the preview URL that follows a branch (apijson.URLs.Branch).
func (s *Server) branchURL(project, branch, productionBranch string) string {
	return s.urls.Branch(project, branch, productionBranch)
}

// branchPreview is a branch preview URL with the build it serves.
type branchPreview struct {
	Build schema.Build
	URL   string
}

// branchPreviews lists a project's branch previews, newest first: one per
// branch other than production with a succeeded build, its latest. The
// project page and GET /api/projects/{name} share it.
func (s *Server) branchPreviews(ctx context.Context, p schema.Project) ([]branchPreview, error) {
	builds, err := s.store.LatestBranchBuilds(ctx, p.ID)
	if err != nil {
		return nil, fmt.Errorf("list branch previews of %s: %w", p.Name, err)
	}
	out := make([]branchPreview, 0, len(builds))
	for _, b := range builds {
		if u := s.branchURL(p.Name, b.Branch, p.ProductionBranch); u != "" {
			out = append(out, branchPreview{Build: b, URL: u})
		}
	}
	return out, nil
}

// requestHost is the host name the browser used, without a port: the best
// guess of the name users reach the server by, for the SSH snippets.
func requestHost(c *fiber.Ctx) string {
	h := c.Hostname()
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return h
}

var templateFuncs = template.FuncMap{
	"asset":    assetURL,
	"ago":      ago,
	"agoPtr":   func(t *time.Time) string { return agoPtr(t) },
	"duration": buildDuration,
	"short":    shortSHA,
	"when":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"whenPtr": func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"iso":      func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"lineKind": lineKind,
	"clean":    stripANSI,
	"title":    func(s fmt.Stringer) string { return capitalize(s.String()) },
	"initial":  initial,
	"host":     hostOf,
	"snippet":  func(host, name string) snippetView { return snippetView{Host: host, Name: name} },
	"field": func(name, label, value, err, hint, placeholder string) fieldView {
		return fieldView{Name: name, Label: label, Value: value, Error: err, Hint: hint, Placeholder: placeholder}
	},
	"firstLine": func(s string) string {
		line, _, _ := strings.Cut(s, "\n")
		return line
	},
}

// snippetView fills the "git remote add" snippet.
type snippetView struct{ Host, Name string }

// fieldView is one text field of a form with its message.
type fieldView struct{ Name, Label, Value, Error, Hint, Placeholder string }

// initial is the first letter of a name, upper case, for avatars.
func initial(name string) string {
	for _, r := range name {
		return strings.ToUpper(string(r))
	}
	return "?"
}

// hostOf shows a URL the way people read it: without scheme and final slash.
func hostOf(u string) string {
	u = strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
	return strings.TrimSuffix(u, "/")
}

// sentence turns a service message into a sentence for a page: a first word
// of plain lowercase letters is capitalised (never a name such as
// www.example.com or a quoted value), and it ends with a full stop.
func sentence(msg string) string {
	first, _, _ := strings.Cut(msg, " ")
	if first != "" && strings.Trim(first, "abcdefghijklmnopqrstuvwxyz") == "" {
		msg = capitalize(msg)
	}
	if !strings.HasSuffix(msg, ".") {
		msg += "."
	}
	return msg
}

// refusedTo answers a form the service refused by going back with its reason;
// any other error is a failure for the error handler.
func refusedTo(c *fiber.Ctx, back string, err error) error {
	if e := deploy.AsError(err); e != nil {
		return redirectWith(c, back, true, sentence(e.Msg))
	}
	return err
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// ago says how long ago t was, the way people say it.
func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < 10*time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%d s ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	case d < 60*24*time.Hour:
		return fmt.Sprintf("%d d ago", int(d.Hours()/24))
	}
	return t.UTC().Format("2 Jan 2006")
}

func agoPtr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return ago(*t)
}

// buildDuration is how long a build ran (so far, while it runs).
func buildDuration(b schema.Build) string {
	if b.StartedAt == nil {
		return "—"
	}
	end := time.Now()
	if b.FinishedAt != nil {
		end = *b.FinishedAt
	}
	return humanDuration(end.Sub(*b.StartedAt))
}

func humanDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm %02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh %02dm", int(d.Hours()), int(d.Minutes())%60)
}

func shortSHA(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]`)

// stripANSI removes terminal colour codes, which tools print even into logs.
func stripANSI(s string) string { return ansiEscape.ReplaceAllString(s, "") }

// lineKind classifies a log line for styling: the push output's stage
// headings, and error lines. app.js applies the same rule to live lines.
func lineKind(line string) string {
	switch {
	case strings.HasPrefix(line, "----->"):
		return "ln ln-head"
	case strings.HasPrefix(line, "error:") || strings.HasPrefix(line, "ERROR") || strings.HasPrefix(line, "npm ERR!"):
		return "ln ln-err"
	}
	return "ln"
}
