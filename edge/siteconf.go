package edge

// A site's routing configuration (vercel.json, _redirects, _headers) reaches
// the edge compiled by the build into .minivercel/site.json (package
// siteconf). It is loaded and compiled once, when a build's handler is
// prepared, and applied in front of the site: redirects, rewrites and
// headers for static builds and server apps alike.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"syscall"

	"minivercel/siteconf"
)

const (
	// reservedDir is the platform's own directory inside every artifact
	// (compiled rules, functions): never served.
	reservedDir = ".minivercel"
	// siteConfFile holds a build's compiled routing rules, when it has any.
	siteConfFile = reservedDir + "/site.json"
)

// loadSiteConf reads and compiles the routing rules of the build whose tree
// root confines; nil when the build has none. Reading through the os.Root
// keeps a site.json swapped for a symlink (an app may write its own tree)
// from reaching outside the tree.
//
// An app may write its tree, site.json included: O_NONBLOCK keeps a FIFO
// put there from hanging the edge on open (it is then refused as not a
// regular file), and siteconf's limits bound what a hostile one costs.
func loadSiteConf(root *os.Root) (*siteconf.Site, error) {
	f, err := root.OpenFile(siteConfFile, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", siteConfFile, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("open %s: not a regular file", siteConfFile)
	}
	data, err := io.ReadAll(io.LimitReader(f, siteconf.MaxJSONBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", siteConfFile, err)
	}
	site, err := siteconf.Load(data)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", siteConfFile, err)
	}
	return site, nil
}

// loadSiteConfDir is loadSiteConf for the build extracted at dir.
func loadSiteConfDir(dir string) (*siteconf.Site, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open build tree: %w", err)
	}
	defer root.Close()
	return loadSiteConf(root)
}

// reservedPath reports a path a static site never serves, whatever its
// files: the platform's directory and the routing files themselves, which
// are configuration, not content (old artifacts carry them too).
func reservedPath(p string) bool {
	c := path.Clean(p)
	switch c {
	case "/vercel.json", "/_redirects", "/_headers", "/" + reservedDir:
		return true
	}
	return strings.HasPrefix(c, "/"+reservedDir+"/")
}

// siteHandler applies a build's routing rules in front of next, the handler
// of its files or of its app (and whatever else the deployment serves behind
// it, such as functions): a rewrite changes the request's path and calls
// next, so it reaches whatever next serves at the new path. files is the
// static build whose files shadow rules that are not forced and whose 404
// page answers reserved paths; nil for a server app.
type siteHandler struct {
	site   *siteconf.Site // nil: no rules, only reserved paths
	next   http.Handler
	files  *Static
	exists func(string) bool // files.hasFile, bound once; nil for apps
}

func newSiteHandler(site *siteconf.Site, next http.Handler, files *Static) *siteHandler {
	h := &siteHandler{site: site, next: next, files: files}
	if files != nil {
		h.exists = files.hasFile
	}
	return h
}

func (h *siteHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	if h.site == nil {
		if h.files != nil && reservedPath(p) {
			h.files.notFound(w, r)
			return
		}
		h.next.ServeHTTP(w, r)
		return
	}
	// Rules match the path that will be served: "//admin", "/./admin" or
	// "/x/../admin" would slip past a rule for "/admin/*" and then be
	// served as /admin by the file handler (or the app). They are sent to
	// the clean path first.
	if c := canonicalPath(p); c != p {
		u := url.URL{Path: c, RawQuery: r.URL.RawQuery}
		w.Header().Set("Location", u.RequestURI())
		w.WriteHeader(http.StatusPermanentRedirect)
		return
	}
	var sw *siteWriter
	// Headers follow the path the visitor asked for, as on Vercel and
	// Netlify, not the path a rewrite serves.
	if hs := h.site.Headers(p); hs != nil {
		sw = &siteWriter{ResponseWriter: w, headers: hs}
		w = sw
	}
	a := h.site.Route(p, r.URL.RawQuery, h.exists)
	switch a.Kind {
	case siteconf.Redirect:
		w.Header().Set("Location", a.Location)
		w.WriteHeader(a.Status)
		return
	case siteconf.Rewrite:
		r = withPath(r, a.Path, a.RawQuery)
		p = a.Path
		if a.Status != 0 {
			if sw == nil {
				sw = &siteWriter{ResponseWriter: w}
				w = sw
			}
			sw.status = a.Status
			// The status replaces the file's 200: a conditional or range
			// request must not turn it into 304 or 206.
			r.Header = r.Header.Clone()
			for _, k := range []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range", "Range"} {
				r.Header.Del(k)
			}
		}
	}
	if h.files != nil {
		if reservedPath(p) {
			h.files.notFound(w, r)
			return
		}
		if slash, set := h.site.TrailingSlash(); set {
			if alias := h.files.slashAlias(p, slash); alias != p {
				r = withPath(r, alias, r.URL.RawQuery)
			}
		}
	}
	h.next.ServeHTTP(w, r)
}

// canonicalPath is p with empty, "." and ".." segments resolved, keeping
// a trailing slash.
func canonicalPath(p string) string {
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

// withPath returns a shallow copy of r for the decoded path p.
func withPath(r *http.Request, p, rawQuery string) *http.Request {
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	u.Path, u.RawPath, u.RawQuery = p, "", rawQuery
	r2.URL = &u
	return r2
}

// siteWriter sets a site's configured headers on the response when its
// status is written, over what the file handler or the app set, and
// replaces a 200 with a rewrite's status.
type siteWriter struct {
	http.ResponseWriter
	headers []siteconf.Header
	status  int // 0: keep the status
	wrote   bool
}

func (w *siteWriter) WriteHeader(code int) {
	// Informational responses (103 Early Hints) come before the real one;
	// 101 is the last a websocket gets.
	if !w.wrote && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.wrote = true
		h := w.ResponseWriter.Header()
		for _, x := range w.headers {
			if x.Name == "Content-Security-Policy" {
				// Added, never replacing: browsers enforce every policy, so
				// a site can tighten the sandbox the path form of previews
				// puts it in (it shares the panel's origin), never lift it.
				h.Add(x.Name, x.Value)
				continue
			}
			h.Set(x.Name, x.Value)
		}
		if w.status != 0 && code == http.StatusOK {
			code = w.status
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *siteWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer (flushes,
// websocket hijacks).
func (w *siteWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// siteHandler returns the handler of a static build: its routing rules, if
// any, in front of its files.
func (s *Static) siteHandler() (http.Handler, error) {
	site, err := loadSiteConf(s.root)
	if err != nil {
		return nil, err
	}
	return newSiteHandler(site, http.HandlerFunc(s.serveFiles), s), nil
}

// hasFile reports whether serveFiles would answer the decoded path upath
// with a file of the site (not the SPA fallback nor a 404). Rules that are
// not forced do not apply to such paths.
func (s *Static) hasFile(upath string) bool {
	if reservedPath(upath) {
		return false
	}
	name, _, trailing := fileName(upath)
	m, err := s.lookup(name)
	switch {
	case err == nil && m.dir:
		im, err := s.lookup(path.Join(name, "index.html"))
		return err == nil && !im.dir
	case err == nil:
		return !trailing
	case !trailing:
		hm, err := s.lookup(name + ".html")
		return err == nil && !hm.dir
	}
	return false
}

// slashAlias is the path serveFiles must serve for upath under a
// trailingSlash setting: with it, /about/ is about.html when there is no
// about/ directory; without it, /docs is the docs/ directory's index
// (serveFiles would otherwise redirect /docs to /docs/, and the rules back).
func (s *Static) slashAlias(upath string, slash bool) string {
	clean := path.Clean(upath)
	if clean == "/" {
		return upath
	}
	name := clean[1:]
	m, err := s.lookup(name)
	isDir := err == nil && m.dir
	switch {
	case slash && strings.HasSuffix(upath, "/") && !isDir:
		if hm, err := s.lookup(name + ".html"); err == nil && !hm.dir {
			return clean + ".html"
		}
	case !slash && !strings.HasSuffix(upath, "/") && isDir:
		return clean + "/"
	}
	return upath
}

// siteApp is a server app with its build's routing rules in front.
type siteApp struct {
	runningApp
	h http.Handler
}

func (a *siteApp) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.h.ServeHTTP(w, r) }

// withSiteConf puts site's rules in front of a running app; without rules
// the app is returned as it is.
func withSiteConf(app runningApp, site *siteconf.Site) runningApp {
	if site == nil {
		return app
	}
	return &siteApp{runningApp: app, h: newSiteHandler(site, app, nil)}
}
