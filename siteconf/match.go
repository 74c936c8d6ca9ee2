package siteconf

import (
	"fmt"
	"net/url"
	"path"
	"sort"
	"strings"
)

// Site is a compiled Config: it answers which redirect, rewrite and headers
// apply to a request path. It never changes and is safe for concurrent use.
type Site struct {
	cleanURLs bool
	slash     int8 // 0: no trailingSlash; 1: true; -1: false
	rules     []compiledRule
	// literals maps a literal source (without a trailing slash) to the
	// indexes of the rules that have it, ascending; patterned lists the
	// other rules' indexes, ascending. A thousand plain "/old → /new"
	// rules thus cost one map lookup.
	literals  map[string][]int
	patterned []int
	headers   []compiledHeader
}

type compiledRule struct {
	Rule
	pat *pattern
	dst template
	// addParams: a vercel.json rewrite whose destination uses no parameter
	// passes them all as query parameters, as Vercel does.
	addParams bool
}

type compiledHeader struct {
	pat     *pattern
	headers []Header
}

// Compile checks c and compiles its patterns and destinations. Errors name
// the rule's origin and wrap ErrInvalid.
func Compile(c Config) (*Site, error) {
	if n := len(c.Rules) + len(c.Headers); n > MaxRules {
		return nil, &Error{File: "site configuration", Msg: fmt.Sprintf("%d rules, more than %d", n, MaxRules)}
	}
	s := &Site{cleanURLs: c.CleanURLs, literals: map[string][]int{}}
	if c.TrailingSlash != nil {
		s.slash = -1
		if *c.TrailingSlash {
			s.slash = 1
		}
	}
	insts := 0
	for i, r := range c.Rules {
		cr, err := compileRule(r)
		if err != nil {
			return nil, &Error{File: r.Origin, Msg: err.Error()}
		}
		if insts += cr.pat.insts; insts > MaxSiteInsts {
			return nil, &Error{File: r.Origin, Msg: fmt.Sprintf("the rules are too complex together (more than %d regular expression instructions): use fewer or simpler patterns", MaxSiteInsts)}
		}
		s.rules = append(s.rules, cr)
		if cr.pat.isLit {
			// Looked up by the path without its trailing slash, so both
			// syntaxes' literals are found; match keeps the exact test.
			key := trimSlash(cr.pat.literal)
			s.literals[key] = append(s.literals[key], i)
		} else {
			s.patterned = append(s.patterned, i)
		}
	}
	for _, h := range c.Headers {
		ch, err := compileHeader(h)
		if err != nil {
			return nil, &Error{File: h.Origin, Msg: err.Error()}
		}
		if insts += ch.pat.insts; insts > MaxSiteInsts {
			return nil, &Error{File: h.Origin, Msg: fmt.Sprintf("the rules are too complex together (more than %d regular expression instructions): use fewer or simpler patterns", MaxSiteInsts)}
		}
		s.headers = append(s.headers, ch)
	}
	return s, nil
}

func compileRule(r Rule) (compiledRule, error) {
	cr := compiledRule{Rule: r}
	if !validStatus(r.Status) {
		return cr, fmt.Errorf("status %d is neither a redirect (301, 302, 303, 307, 308) nor a rewrite (200, 4xx, 5xx)", r.Status)
	}
	var err error
	if cr.pat, err = compilePattern(r.Syntax, r.Source); err != nil {
		return cr, err
	}
	if cr.dst, err = compileTemplate(r.Syntax, r.Destination, cr.pat.names); err != nil {
		return cr, err
	}
	if cr.dst.external && !r.IsRedirect() {
		return cr, fmt.Errorf("rewrite to %q: rewrites go to paths of this site only", r.Destination)
	}
	if !r.IsRedirect() {
		// A rewrite's target is a decoded path, like the request's.
		for i, p := range cr.dst.path {
			if p.param < 0 {
				cr.dst.path[i].text = decoded(p.text)
			}
		}
	}
	if r.Syntax == SyntaxVercel && !r.IsRedirect() {
		cr.addParams = true
		for _, ps := range [][]piece{cr.dst.path, cr.dst.query} {
			for _, p := range ps {
				if p.param >= 0 {
					cr.addParams = false
				}
			}
		}
	}
	return cr, nil
}

func compileHeader(h HeaderRule) (compiledHeader, error) {
	pat, err := compilePattern(h.Syntax, h.Source)
	if err != nil {
		return compiledHeader{}, err
	}
	for _, x := range h.Headers {
		switch {
		case !validHeaderName(x.Name):
			return compiledHeader{}, fmt.Errorf("%q is not a valid header name", x.Name)
		case !validHeaderValue(x.Value):
			return compiledHeader{}, fmt.Errorf("the value of %s has a control character or is longer than %d bytes", x.Name, MaxHeaderValueLen)
		case framingHeaders[canonical(x.Name)]:
			return compiledHeader{}, fmt.Errorf("%s is set by the server and cannot be configured", x.Name)
		}
	}
	hs := make([]Header, len(h.Headers))
	for i, x := range h.Headers {
		hs[i] = Header{Name: canonical(x.Name), Value: x.Value}
	}
	return compiledHeader{pat: pat, headers: hs}, nil
}

// canonical is the header name's canonical MIME form.
func canonical(name string) string {
	b := []byte(name)
	upper := true
	for i, c := range b {
		switch {
		case upper && c >= 'a' && c <= 'z':
			b[i] = c - 32
		case !upper && c >= 'A' && c <= 'Z':
			b[i] = c + 32
		}
		upper = c == '-'
	}
	return string(b)
}

// ActionKind says what a request becomes.
type ActionKind int

const (
	// Pass serves the request as it is.
	Pass ActionKind = iota
	// Redirect answers with Status and Location.
	Redirect
	// Rewrite serves Path (and RawQuery) instead, with Status when not 0.
	Rewrite
)

// Action is what the rules make of one request.
type Action struct {
	Kind ActionKind
	// Status is the redirect's status, or for a rewrite the status to
	// answer with instead of 200 (0: the served path's own).
	Status int
	// Location is the redirect's target: a path of this site with one
	// leading slash, or an absolute http(s) URL; the request's query is
	// kept.
	Location string
	// Path is the rewrite's decoded, clean path; it always starts with "/"
	// and has no ".." segment.
	Path string
	// RawQuery is the rewrite's query string.
	RawQuery string
	// Rule is the origin of the rule that applied ("" for cleanUrls and
	// trailingSlash), for logs.
	Rule string
}

// Route decides what happens to a request for the decoded path p with the
// raw query rawQuery. exists reports whether the site has a file to serve at
// a path; nil means the site has no files of its own (a server app), and
// then every matching rule applies.
func (s *Site) Route(p, rawQuery string, exists func(string) bool) Action {
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	if s.cleanURLs {
		if loc, ok := cleanRedirect(p, s.slash > 0); ok {
			return Action{Kind: Redirect, Status: 308, Location: withQuery(escapePath(loc), rawQuery)}
		}
	}
	if s.slash != 0 {
		if loc, ok := slashRedirect(p, s.slash > 0); ok {
			return Action{Kind: Redirect, Status: 308, Location: withQuery(escapePath(loc), rawQuery)}
		}
	}
	if len(p) > MaxMatchPath {
		return Action{} // no rule's work grows with an attacker's path
	}
	i, vals, ok := s.first(p)
	if !ok {
		return Action{}
	}
	r := &s.rules[i]
	if !r.Force && exists != nil && exists(p) {
		return Action{}
	}
	if r.IsRedirect() {
		var b strings.Builder
		expand(&b, r.dst.path, vals, escapePath)
		if r.dst.hasQuery {
			b.WriteByte('?')
			expand(&b, r.dst.query, vals, url.QueryEscape)
		}
		loc := b.String()
		if !r.dst.external {
			loc = localPath(loc)
		}
		return Action{Kind: Redirect, Status: r.Status, Location: withQuery(loc, rawQuery), Rule: r.Origin}
	}
	var b strings.Builder
	expand(&b, r.dst.path, vals, identity)
	dst := cleanPath(b.String())
	q := ""
	if r.dst.hasQuery {
		b.Reset()
		expand(&b, r.dst.query, vals, url.QueryEscape)
		q = b.String()
	}
	if r.addParams {
		for j, name := range r.pat.names {
			if name != "" {
				q = joinQuery(q, url.QueryEscape(name)+"="+url.QueryEscape(vals[j]))
			}
		}
	}
	a := Action{Kind: Rewrite, Path: dst, RawQuery: joinQuery(q, rawQuery), Rule: r.Origin}
	if r.Status != 200 {
		a.Status = r.Status
	}
	return a
}

// first returns the first rule whose source matches p, and its parameters.
func (s *Site) first(p string) (int, []string, bool) {
	best := -1
	for _, i := range s.literals[trimSlash(p)] {
		if _, ok := s.rules[i].pat.match(p); ok {
			best = i
			break
		}
	}
	// patterned is ascending: only rules before the literal match count.
	end := len(s.patterned)
	if best >= 0 {
		end = sort.SearchInts(s.patterned, best)
	}
	for _, i := range s.patterned[:end] {
		if vals, ok := s.rules[i].pat.match(p); ok {
			return i, vals, true
		}
	}
	if best >= 0 {
		return best, nil, true
	}
	return 0, nil, false
}

// Headers returns the headers to set on the response to path p, in order
// (a later one replaces an earlier one of the same name); nil when none.
// The result must not be modified.
func (s *Site) Headers(p string) []Header {
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	if len(p) > MaxMatchPath {
		return nil
	}
	var out []Header
	n := 0
	for i := range s.headers {
		h := &s.headers[i]
		if _, ok := h.pat.match(p); !ok {
			continue
		}
		if n++; n == 1 {
			out = h.headers
			continue
		}
		if n == 2 {
			out = append([]Header(nil), out...)
		}
		out = append(out, h.headers...)
	}
	return out
}

// HasRules reports whether the site has any redirect, rewrite or URL
// normalisation; HasHeaders whether it sets headers.
func (s *Site) HasRules() bool { return s.cleanURLs || s.slash != 0 || len(s.rules) > 0 }

// HasHeaders reports whether the site has header rules.
func (s *Site) HasHeaders() bool { return len(s.headers) > 0 }

// TrailingSlash reports the site's trailingSlash setting: set is false when
// it has none.
func (s *Site) TrailingSlash() (slash, set bool) { return s.slash > 0, s.slash != 0 }

// cleanRedirect is cleanUrls: /x/index, /x/index.html and /x.html go to /x.
func cleanRedirect(p string, slash bool) (string, bool) {
	q := strings.TrimSuffix(p[1:], "/")
	stem, html := strings.CutSuffix(q, ".html")
	var dir string
	switch {
	case stem == "index":
	case strings.HasSuffix(stem, "/index") && len(stem) > len("/index"):
		dir = stem[:len(stem)-len("/index")]
	case html:
		dir = stem
	default:
		return "", false
	}
	if dir == "" {
		return "/", true
	}
	if slash {
		return localPath("/" + dir + "/"), true
	}
	return localPath("/" + dir), true
}

// slashRedirect is trailingSlash: with slash, /a → /a/ unless the last
// segment has a dot (a file) or it is under /.well-known, and /a.js/ → /a.js;
// without, /a/ → /a.
func slashRedirect(p string, slash bool) (string, bool) {
	if !slash {
		if len(p) > 1 && strings.HasSuffix(p, "/") {
			return localPath(p[:len(p)-1]), true
		}
		return "", false
	}
	if p == "/.well-known" || strings.HasPrefix(p, "/.well-known/") || p == "/" || strings.Contains(p, "//") {
		return "", false
	}
	if body, ok := strings.CutSuffix(p, "/"); ok {
		last := body[strings.LastIndexByte(body, '/')+1:]
		dot := strings.LastIndexByte(last, '.')
		if dot >= 0 && dot < len(last)-1 && isWord(last[dot+1:]) {
			return localPath(body), true
		}
		return "", false
	}
	if last := p[strings.LastIndexByte(p, '/')+1:]; !strings.Contains(last, ".") {
		return p + "/", true
	}
	return "", false
}

func isWord(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isNameChar(s[i]) {
			return false
		}
	}
	return true
}

// localPath makes a redirect target stay on this site: "//evil.example"
// or "/\evil.example" would be read by browsers as another host.
func localPath(p string) string {
	return "/" + strings.TrimLeft(p, "/\\")
}

// cleanPath is a rewrite's target: rooted and clean, so no ".." can climb
// out of the site, with a trailing slash kept.
func cleanPath(p string) string {
	c := path.Clean("/" + p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

func withQuery(loc, rawQuery string) string {
	if rawQuery == "" {
		return loc
	}
	frag := ""
	if i := strings.IndexByte(loc, '#'); i >= 0 {
		loc, frag = loc[:i], loc[i:]
	}
	if strings.Contains(loc, "?") {
		return loc + "&" + rawQuery + frag
	}
	return loc + "?" + rawQuery + frag
}

func joinQuery(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "&" + b
}

// escapePath escapes a parameter's decoded value for a URL path, keeping
// its slashes.
func escapePath(v string) string {
	if !strings.ContainsAny(v, "%?# \"<>\\^`{|}") && isPrintableASCII(v) {
		return v
	}
	segs := strings.Split(v, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func identity(s string) string { return s }
