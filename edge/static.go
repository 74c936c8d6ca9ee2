package edge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// inlineMax is the largest file kept in memory whole: small pages and
	// assets are most requests, and serving them from memory skips three
	// syscalls per request.
	inlineMax = 128 << 10
	// defaultStaticCacheBytes bounds the memory of a Static made by
	// NewStatic; a Server shares one budget across all its sites instead.
	defaultStaticCacheBytes = 64 << 20

	cacheImmutable   = "public, max-age=31536000, immutable"
	cacheRevalidate  = "public, max-age=0, must-revalidate"
	default404Page   = "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>404 Not Found</title></head>\n<body><h1>404 Not Found</h1><p>There is no page at this address.</p></body></html>\n"
	default404Length = len(default404Page)
)

// Header values are shared, never mutated slices: setting them by map
// assignment avoids an allocation per header per request.
var (
	hdrNosniff     = []string{"nosniff"}
	hdrImmutable   = []string{cacheImmutable}
	hdrRevalidate  = []string{cacheRevalidate}
	hdrVary        = []string{"Accept-Encoding"}
	hdrBytes       = []string{"bytes"}
	hdrAllow       = []string{"GET, HEAD"}
	hdrHTML        = []string{"text/html; charset=utf-8"}
	hdrDefault404N = []string{strconv.Itoa(default404Length)}
)

// memBudget bounds the bytes that cached file contents and their compressed
// variants may hold, across every Static that shares it.
type memBudget struct {
	limit int64
	used  atomic.Int64
}

func (b *memBudget) reserve(n int64) bool {
	if b.used.Add(n) > b.limit {
		b.used.Add(-n)
		return false
	}
	return true
}

// Static is an http.Handler serving one extracted deployment root. The root
// must not change while it is served: metadata, ETags and small files are
// cached for the life of the Static. It is safe for concurrent use.
type Static struct {
	root *os.Root
	pre  *os.Root // the build's precompressed sidecar; nil: none
	spa  bool
	// handler applies the build's routing rules, then serveFiles
	// (siteconf.go).
	handler http.Handler

	budget   *memBudget
	mu       sync.Mutex // guards reserved and released
	reserved int64
	released bool

	// files caches metadata of paths that exist. Misses are not cached,
	// so random request paths cannot grow it beyond the root's own size.
	files sync.Map // string (root-relative name) → *fileMeta
}

// NewStatic returns a handler for the deployment extracted at dir. With spa
// set, unknown paths without a file extension are answered with
// /index.html (client-side routing); without it they get the site's
// 404.html or a default 404 page. Its text files are first compressed into
// the sidecar directory dir+".precompressed" (see precompress.go), which
// must be writable; problems there are logged to slog.Default and the site
// is then served uncompressed.
func NewStatic(dir string, spa bool) (*Static, error) {
	side := precompress(context.Background(), dir, defaultPrecompress, slog.Default().With("component", "edge"))
	return newStatic(dir, side, spa, &memBudget{limit: defaultStaticCacheBytes})
}

// newStatic serves the tree at dir with the precompressed variants in the
// sidecar directory side ("": none).
func newStatic(dir, side string, spa bool, budget *memBudget) (*Static, error) {
	// os.Root confines every open to dir, symlinks included: extraction
	// already keeps links inside, this makes the edge safe on its own.
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open site root: %w", err)
	}
	s := &Static{root: root, spa: spa, budget: budget}
	if side != "" {
		if s.pre, err = os.OpenRoot(side); err != nil {
			root.Close()
			return nil, fmt.Errorf("open precompressed files: %w", err)
		}
	}
	if s.handler, err = s.siteHandler(); err != nil {
		root.Close()
		if s.pre != nil {
			s.pre.Close()
		}
		return nil, err
	}
	return s, nil
}

// reserve takes n bytes of cache budget for this site, refusing once the site
// was released, so that a handler still finishing old requests cannot grow
// the shared cache.
func (s *Static) reserve(n int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.released || !s.budget.reserve(n) {
		return false
	}
	s.reserved += n
	return true
}

// release gives this site's cache budget back. The memory itself is freed
// when the last in-flight request lets go of the Static.
func (s *Static) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.released {
		s.released = true
		s.budget.used.Add(-s.reserved)
	}
}

type fileMeta struct {
	name    string
	dir     bool
	size    int64
	modTime time.Time
	etag    []string // one strong ETag, ready for the header map
	ctype   []string
	cache   []string
	data    []byte   // the whole file when small enough and budget allowed
	br, gz  *variant // compressed variants; nil: none
	// clen and lastMod are the Content-Length and Last-Modified values,
	// made once for the fast path of serveFile.
	clen, lastMod []string
}

// variant is a compressed form of a file: the build's own x.js.br, or the
// sidecar's.
type variant struct {
	root *os.Root // where name is
	name string
	data []byte // the whole variant when small enough and budget allowed
	// etag is the variant's own strong ETag, distinct from the file's:
	// caches must not mix representations up.
	etag []string
	clen []string
	enc  []string // Content-Encoding
}

func (s *Static) lookup(name string) (*fileMeta, error) {
	if v, ok := s.files.Load(name); ok {
		return v.(*fileMeta), nil
	}
	fi, err := s.root.Stat(name)
	if err != nil {
		return nil, err
	}
	m := &fileMeta{name: name, modTime: fi.ModTime()}
	switch {
	case fi.IsDir():
		m.dir = true
	case fi.Mode().IsRegular():
		if err := s.fill(m, fi.Size()); err != nil {
			return nil, err
		}
	default:
		return nil, fs.ErrNotExist
	}
	v, _ := s.files.LoadOrStore(name, m)
	return v.(*fileMeta), nil
}

// fill hashes the file once for its ETag (the root never changes), keeps
// small files in memory, and finds its compressed variants.
func (s *Static) fill(m *fileMeta, size int64) error {
	data, head, etag, err := s.load(s.root, m.name, size)
	if err != nil {
		return err
	}
	m.size, m.data = size, data
	m.etag = []string{`"` + etag + `"`}
	m.clen = []string{strconv.FormatInt(size, 10)}
	m.lastMod = []string{m.modTime.UTC().Format(http.TimeFormat)}
	ct := contentType(m.name, head)
	m.ctype = []string{ct}
	m.cache = hdrRevalidate
	if immutable(m.name, ct) {
		m.cache = hdrImmutable
	}
	if compressible(ct) {
		m.br = s.variant(m.name, encBrotli)
		m.gz = s.variant(m.name, encGzip)
	}
	return nil
}

// load reads the file name of root once: its hash for an ETag, its first
// bytes for sniffing, and all of it (data) when small enough and the budget
// allows.
func (s *Static) load(root *os.Root, name string, size int64) (data, head []byte, etag string, err error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, nil, "", err
	}
	defer f.Close()
	h := sha256.New()
	if size <= inlineMax && s.reserve(size) {
		data = make([]byte, size)
		if _, err := io.ReadFull(f, data); err != nil {
			return nil, nil, "", fmt.Errorf("read %s: %w", name, err)
		}
		h.Write(data)
		head = data
	} else {
		buf := make([]byte, 512)
		n, _ := io.ReadFull(f, buf)
		head = buf[:n]
		h.Write(head)
		if _, err := io.Copy(h, f); err != nil {
			return nil, nil, "", fmt.Errorf("hash %s: %w", name, err)
		}
	}
	return data, head, hex.EncodeToString(h.Sum(nil)[:16]), nil
}

// variant returns the enc variant of the file name: the build's own
// name+".br" (or ".gz") first, then the sidecar's; nil when neither exists.
func (s *Static) variant(name string, enc *encoding) *variant {
	for _, root := range [2]*os.Root{s.root, s.pre} {
		if root == nil {
			continue
		}
		vname := name + enc.ext
		fi, err := root.Stat(vname)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		data, _, etag, err := s.load(root, vname, fi.Size())
		if err != nil {
			continue
		}
		return &variant{
			root: root, name: vname, data: data, enc: enc.name,
			etag: []string{`"` + etag + enc.tag + `"`},
			clen: []string{strconv.FormatInt(fi.Size(), 10)},
		}
	}
	return nil
}

// ServeHTTP serves the site: its routing rules (vercel.json, _redirects,
// _headers), then its files.
func (s *Static) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

// fileName is the root-relative name ("." for the root) a request path
// names, its cleaned form, and whether it asked for a directory with a
// trailing slash. Clean resolves every ".." against "/" first, so no name
// can climb out of the root; os.Root would refuse it anyway.
func fileName(upath string) (name, clean string, trailing bool) {
	clean = path.Clean(upath)
	trailing = clean != "/" && strings.HasSuffix(upath, "/")
	name = "."
	if clean != "/" {
		name = clean[1:]
	}
	return name, clean, trailing
}

// serveFiles answers GET and HEAD from the root: /dir/ serves dir/index.html,
// /dir redirects to /dir/, /about falls back to about.html, then the SPA
// fallback or the 404 page applies.
func (s *Static) serveFiles(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h["Allow"] = hdrAllow
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h["X-Content-Type-Options"] = hdrNosniff
	upath := r.URL.Path
	if !strings.HasPrefix(upath, "/") {
		upath = "/" + upath
	}
	name, clean, trailing := fileName(upath)

	m, err := s.lookup(name)
	switch {
	case err == nil && m.dir:
		if !trailing && name != "." {
			// Built from the cleaned path's last element: "//evil.com"
			// cleans to "/evil.com", so the redirect stays on this host.
			target := path.Base(clean) + "/"
			if r.URL.RawQuery != "" {
				target += "?" + r.URL.RawQuery
			}
			h["Cache-Control"] = hdrRevalidate
			http.Redirect(w, r, target, http.StatusMovedPermanently)
			return
		}
		if im, err := s.lookup(path.Join(name, "index.html")); err == nil && !im.dir {
			s.serveFile(w, r, im)
			return
		}
	case err == nil && !trailing:
		s.serveFile(w, r, m)
		return
	case err != nil && !trailing:
		// Clean URLs: /about is about.html.
		if hm, err := s.lookup(name + ".html"); err == nil && !hm.dir {
			s.serveFile(w, r, hm)
			return
		}
	}
	if s.spa && path.Ext(clean) == "" {
		if im, err := s.lookup("index.html"); err == nil && !im.dir {
			s.serveFile(w, r, im)
			return
		}
	}
	s.notFound(w, r)
}

func (s *Static) serveFile(w http.ResponseWriter, r *http.Request, m *fileMeta) {
	h := w.Header()
	h["Content-Type"] = m.ctype
	h["Cache-Control"] = m.cache
	if m.br != nil || m.gz != nil {
		h["Vary"] = hdrVary
		// Range requests are answered uncompressed, with the file's own
		// ETag: byte ranges of a compressed stream are useless to players
		// and resumable downloads, which want the file's bytes.
		if r.Header.Get("Range") == "" {
			if v := m.negotiate(r.Header.Get("Accept-Encoding")); v != nil && serveVariant(w, r, v) {
				return
			}
		}
	}
	h["Etag"] = m.etag
	if m.data != nil && plainGet(r) {
		serveWhole(w, r, m)
		return
	}
	if m.data != nil {
		http.ServeContent(w, r, "", m.modTime, bytes.NewReader(m.data))
		return
	}
	f, err := s.root.Open(m.name)
	if err != nil {
		http.Error(w, "500 internal server error", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	http.ServeContent(w, r, "", m.modTime, f)
}

// plainGet reports a request that wants the whole file, asking at most
// whether its copy is current: no range, no precondition but
// If-None-Match and If-Modified-Since. Most requests are such; they are
// answered without http.ServeContent's general machinery.
func plainGet(r *http.Request) bool {
	h := r.Header
	return h.Get("Range") == "" && h.Get("If-Match") == "" && h.Get("If-Unmodified-Since") == "" && h.Get("If-Range") == ""
}

// serveWhole answers a plain GET or HEAD of a file held in memory, as
// http.ServeContent would: 304 when the client's copy is current (by ETag,
// else by date), else the whole body in one write. Headers are set by map
// assignment from values made once.
func serveWhole(w http.ResponseWriter, r *http.Request, m *fileMeta) {
	h := w.Header()
	if notModified(r, m) {
		// As ServeContent: a 304 carries the ETag (set by the caller) but
		// neither Last-Modified nor Accept-Ranges.
		delete(h, "Content-Type")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h["Last-Modified"] = m.lastMod
	h["Accept-Ranges"] = hdrBytes
	h["Content-Length"] = m.clen
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(m.data)
	}
}

// notModified is ServeContent's answer to If-None-Match (weak comparison,
// for GET and HEAD) and, without it, If-Modified-Since (to the second).
func notModified(r *http.Request, m *fileMeta) bool {
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		return etagMatches(inm, m.etag[0])
	}
	ims := r.Header.Get("If-Modified-Since")
	if ims == "" || m.modTime.IsZero() || m.modTime.Unix() == 0 {
		return false
	}
	t, err := http.ParseTime(ims)
	return err == nil && !m.modTime.Truncate(time.Second).After(t)
}

// serveVariant answers r with the compressed variant v, false when v could
// not be opened (nothing was written then).
func serveVariant(w http.ResponseWriter, r *http.Request, v *variant) bool {
	h := w.Header()
	if etagMatches(r.Header.Get("If-None-Match"), v.etag[0]) {
		h["Etag"] = v.etag
		delete(h, "Content-Type")
		w.WriteHeader(http.StatusNotModified)
		return true
	}
	var f *os.File
	if v.data == nil {
		var err error
		if f, err = v.root.Open(v.name); err != nil {
			return false
		}
		defer f.Close()
	}
	h["Etag"] = v.etag
	h["Content-Encoding"] = v.enc
	h["Content-Length"] = v.clen
	w.WriteHeader(http.StatusOK)
	switch {
	case r.Method == http.MethodHead:
	case v.data != nil:
		w.Write(v.data)
	default:
		io.Copy(w, f)
	}
	return true
}

func (s *Static) notFound(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h["Cache-Control"] = hdrRevalidate
	h["Content-Type"] = hdrHTML
	if m, err := s.lookup("404.html"); err == nil && !m.dir {
		body := m.data
		if body == nil {
			body, err = s.root.ReadFile(m.name)
			if err != nil {
				body = nil
			}
		}
		if body != nil {
			h["Content-Length"] = []string{strconv.Itoa(len(body))}
			w.WriteHeader(http.StatusNotFound)
			if r.Method != http.MethodHead {
				w.Write(body)
			}
			return
		}
	}
	h["Content-Length"] = hdrDefault404N
	w.WriteHeader(http.StatusNotFound)
	if r.Method != http.MethodHead {
		io.WriteString(w, default404Page)
	}
}

// etagMatches implements the weak comparison If-None-Match calls for.
func etagMatches(header, etag string) bool {
	for header != "" {
		var tok string
		tok, header, _ = strings.Cut(header, ",")
		tok = strings.TrimSpace(tok)
		if tok == "*" || strings.TrimPrefix(tok, "W/") == etag {
			return true
		}
	}
	return false
}

// negotiate picks the variant of m that Accept-Encoding prefers: the
// highest q-value wins, brotli on a tie (it is smaller); nil means identity.
func (m *fileMeta) negotiate(header string) *variant {
	qbr, qgz := acceptedQ(header)
	switch {
	case m.br != nil && qbr > 0 && (qbr >= qgz || m.gz == nil):
		return m.br
	case m.gz != nil && qgz > 0:
		return m.gz
	}
	return nil
}

// acceptedQ returns the q-values Accept-Encoding gives brotli and gzip: an
// explicit entry for the coding wins over "*", which applies otherwise.
func acceptedQ(header string) (br, gz float64) {
	br, gz = -1, -1
	star := 0.0
	for header != "" {
		var tok string
		tok, header, _ = strings.Cut(header, ",")
		coding, params, _ := strings.Cut(tok, ";")
		q := qValue(params)
		switch coding = strings.TrimSpace(coding); {
		case strings.EqualFold(coding, "br"):
			br = q
		case strings.EqualFold(coding, "gzip"), strings.EqualFold(coding, "x-gzip"):
			gz = q
		case coding == "*":
			star = q
		}
	}
	if br < 0 {
		br = star
	}
	if gz < 0 {
		gz = star
	}
	return br, gz
}

// qValue parses the parameters of an Accept-Encoding entry for its q; 1
// without one, 0 for a malformed one.
func qValue(params string) float64 {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		v, ok := strings.CutPrefix(strings.TrimSpace(p), "q=")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || f < 0 || f > 1 {
			return 0
		}
		return f
	}
	return 1
}

// textTypes pins the content types that matter most to browsers instead of
// trusting the host's /etc/mime.types, which differs between machines.
var textTypes = map[string]string{
	".html":        "text/html; charset=utf-8",
	".htm":         "text/html; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".mjs":         "text/javascript; charset=utf-8",
	".cjs":         "text/javascript; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".json":        "application/json; charset=utf-8",
	".map":         "application/json; charset=utf-8",
	".webmanifest": "application/manifest+json; charset=utf-8",
	".txt":         "text/plain; charset=utf-8",
	".md":          "text/markdown; charset=utf-8",
	".xml":         "text/xml; charset=utf-8",
	".csv":         "text/csv; charset=utf-8",
	".svg":         "image/svg+xml",
	".wasm":        "application/wasm",
	".woff":        "font/woff",
	".woff2":       "font/woff2",
	".ttf":         "font/ttf",
	".otf":         "font/otf",
	".avif":        "image/avif",
	".webp":        "image/webp",
	".png":         "image/png",
	".jpg":         "image/jpeg",
	".jpeg":        "image/jpeg",
	".gif":         "image/gif",
	".ico":         "image/x-icon",
	".pdf":         "application/pdf",
	// A build's own x.js.br or x.js.gz requested by name is that file, not
	// JavaScript: it gets no Content-Encoding and a type of its own.
	".gz":   "application/gzip",
	".br":   "application/octet-stream",
	".mp4":  "video/mp4",
	".webm": "video/webm",
}

func contentType(name string, head []byte) string {
	ext := strings.ToLower(path.Ext(name))
	if t, ok := textTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" && ext != "" {
		return t
	}
	return http.DetectContentType(head)
}

func compressible(ctype string) bool {
	t, _, _ := strings.Cut(ctype, ";")
	return strings.HasPrefix(t, "text/") ||
		strings.HasSuffix(t, "javascript") ||
		strings.HasSuffix(t, "json") ||
		strings.HasSuffix(t, "xml") ||
		t == "image/svg+xml" || t == "application/wasm"
}

// hashedExts are the asset kinds bundlers fingerprint by name; only these
// may be cached for a year on the strength of a name alone, because a wrong
// guess on a page would pin a stale page in browsers.
var hashedExts = map[string]bool{
	".js": true, ".mjs": true, ".css": true, ".wasm": true,
	".woff": true, ".woff2": true, ".ttf": true, ".otf": true, ".eot": true,
	".png": true, ".jpg": true, ".jpeg": true, ".gif": true, ".webp": true,
	".avif": true, ".svg": true, ".ico": true,
}

// immutableDirs are the output directories at a site's root that
// frameworks own and fill with content-hashed names only: Next.js, Astro,
// SvelteKit and Nuxt (but its builds/, see nuxtBuilds). Every file there
// with an extension other than a page's is cached for a year.
var immutableDirs = []string{"_next/static/", "_astro/", "_app/immutable/", "_nuxt/"}

// hashedDirs are the root directories where bundlers write hashed names
// but where projects also put files by hand (Vite copies public/assets/ as
// it is; CRA's static/ is a common name): Vite's assets/ and Create React
// App's static/js, css and media. A file there is immutable only when its
// name has a hash, of any extension but a page's.
var hashedDirs = []string{"assets/", "static/"}

// nuxtBuilds holds Nuxt's app manifest, whose latest.json changes with every
// build under a fixed name; only its meta/ files are named by build id.
const nuxtBuilds, nuxtBuildMeta = "_nuxt/builds/", "_nuxt/builds/meta/"

// htmlExts are the extensions of pages, which are never immutable.
var htmlExts = map[string]bool{".html": true, ".htm": true, ".xhtml": true, ".shtml": true}

// immutable reports whether the file name (root-relative), of content type
// ctype, may be cached for a year. A page never is, whatever its name or
// directory: it is the entry point that names the hashed assets.
func immutable(name, ctype string) bool {
	t, _, _ := strings.Cut(ctype, ";")
	if t == "text/html" || t == "application/xhtml+xml" {
		return false
	}
	return isHashedAsset(name)
}

// isHashedAsset reports whether name looks fingerprinted by a bundler: a
// file with an extension other than a page's in one of immutableDirs, or
// one whose stem ends in a hash (see hashSuffix) in one of hashedDirs, or
// elsewhere an asset (hashedExts) whose stem ends in a hash.
func isHashedAsset(name string) bool {
	ext := strings.ToLower(path.Ext(name))
	if ext == "" || htmlExts[ext] {
		return false
	}
	for _, dir := range immutableDirs {
		if strings.HasPrefix(name, dir) {
			if !strings.HasPrefix(name, nuxtBuilds) || strings.HasPrefix(name, nuxtBuildMeta) {
				return true
			}
		}
	}
	base := path.Base(name)
	hashed := hashSuffix(base[:len(base)-len(ext)])
	for _, dir := range hashedDirs {
		if strings.HasPrefix(name, dir) {
			return hashed
		}
	}
	return hashed && hashedExts[ext]
}

// hashSuffix reports whether stem ends in "-<hash>" or ".<hash>" after a
// non-empty name (webpack's ".chunk" after the hash aside). Bundlers write
// hex (webpack, Parcel, CRA, Next.js: 8 to 20 characters) or base64url
// (Rollup and Vite: 8 characters of [A-Za-z0-9_-]).
//
// Only the last "-" or "." separated segment is a candidate, so that names
// made of words and sizes ("android-chrome-192x192", "style-2023-redesign")
// never are. A base64url hash may itself hold "-": when the separator is
// preceded by another "-" ("index--T1sQT3T"), the segment with its leading
// "-" is a candidate too, and so are the stem's last 8 characters when they
// hold a "-" and follow a separator ("index-B-Fpq1Mq"), Rollup's length.
//
// A word is not a hash, and a wrong yes pins a changed file in browsers for
// a year while a wrong no only costs a revalidation, so a candidate must be
// 8 or more base64url characters with a digit, or exactly Rollup's 8 with
// two capitals and a lowercase letter (a random 8-character base64url hash
// has no digit one time in four). "main-component", "appState" and
// "Homepage" are words; so is anything all one case without a digit.
func hashSuffix(stem string) bool {
	stem = strings.TrimSuffix(stem, ".chunk")
	i := strings.LastIndexAny(stem, "-.")
	if i <= 0 {
		return false
	}
	if looksHashed(stem[i+1:]) {
		return true
	}
	if stem[i] == '-' && i > 1 && stem[i-1] == '-' && looksHashed(stem[i:]) {
		return true
	}
	if n := len(stem) - 8; n > 1 && (stem[n-1] == '-' || stem[n-1] == '.') {
		tail := stem[n:]
		return strings.IndexByte(tail, '-') > 0 && strings.IndexByte(tail, '.') < 0 && looksHashed(tail)
	}
	return false
}

// looksHashed reports whether s has a hash's shape (see hashSuffix).
func looksHashed(s string) bool {
	if len(s) < 8 {
		return false
	}
	var digits, upper, lower int
	for _, c := range []byte(s) {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c >= 'A' && c <= 'Z':
			upper++
		case c >= 'a' && c <= 'z':
			lower++
		case c == '-' || c == '_':
		default:
			return false
		}
	}
	return digits > 0 || (len(s) == 8 && upper >= 2 && lower > 0)
}
