package siteconf

import (
	"fmt"
	"net/url"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
)

// pattern is a compiled source pattern.
// programSize is the number of instructions of expr's compiled program:
// what a match costs per byte of the path, which Go's linear-time matching
// multiplies, not the length of the source.
func programSize(expr string) (int, error) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return 0, err
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return 0, err
	}
	return len(prog.Inst), nil
}

type pattern struct {
	// insts is the size of re's program (0 for a literal).
	insts int
	// literal is set (with re nil) when the pattern has no parameter: the
	// path must equal it (modulo a trailing slash when loose).
	literal string
	isLit   bool
	// prefix is literal text every matching path starts with: a cheap
	// test before the regular expression runs.
	prefix string
	re     *regexp.Regexp
	// names are the parameters in order; groups[i] is the submatch index
	// of names[i]. Unnamed vercel groups have the name "".
	names  []string
	groups []int
	// loose ignores one trailing slash (Netlify).
	loose bool
	// looks are the lookaheads that start parameters' groups.
	looks []lookahead
}

// lookahead is a (?!X) or (?=X) at the start of a parameter's group, the
// one place vercel.json sources use them ("/((?!api/).*)"). RE2 has no
// lookaround; as the group's start is fixed once the expression matched,
// testing ^X there afterwards is the same test, still in linear time.
type lookahead struct {
	param    int
	re       *regexp.Regexp
	negative bool
}

// match reports whether p matches and returns the parameters' values in
// the order of names (nil for a literal pattern).
func (pt *pattern) match(p string) ([]string, bool) {
	if pt.isLit {
		if pt.loose {
			return nil, trimSlash(p) == pt.literal
		}
		return nil, p == pt.literal
	}
	if !strings.HasPrefix(p, pt.prefix) {
		return nil, false
	}
	m := pt.re.FindStringSubmatchIndex(p)
	if m == nil {
		return nil, false
	}
	for _, l := range pt.looks {
		if s := m[2*pt.groups[l.param]]; s >= 0 && l.re.MatchString(p[s:]) == l.negative {
			return nil, false
		}
	}
	vals := make([]string, len(pt.names))
	for i, g := range pt.groups {
		if s, e := m[2*g], m[2*g+1]; s >= 0 {
			vals[i] = p[s:e]
		}
	}
	return vals, true
}

// trimSlash drops one trailing slash, except from "/".
func trimSlash(p string) string {
	if len(p) > 1 && p[len(p)-1] == '/' {
		return p[:len(p)-1]
	}
	return p
}

func isNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// compilePattern compiles src in its syntax. Errors are short phrases
// without position; the caller adds the rule's origin.
func compilePattern(syn Syntax, src string) (*pattern, error) {
	switch {
	case src == "":
		return nil, fmt.Errorf("the source is empty")
	case len(src) > MaxPatternLen:
		return nil, fmt.Errorf("the source is %d bytes long, more than %d", len(src), MaxPatternLen)
	case src[0] != '/':
		return nil, fmt.Errorf("source %q must start with /", src)
	}
	switch syn {
	case SyntaxVercel:
		return compileVercel(src)
	case SyntaxNetlify:
		return compileNetlify(src)
	}
	return nil, fmt.Errorf("unknown pattern syntax %q", syn)
}

// compileVercel compiles the subset of path-to-regexp 6 that vercel.json
// documents: literal text, :name, (regex) and :name(regex), each with an
// optional ?, * or + modifier; a "/" or "." right before a parameter is its
// prefix and is optional along with it. The match is strict (a trailing
// slash counts), case-sensitive and anchored at both ends.
func compileVercel(src string) (*pattern, error) {
	pt := &pattern{}
	var re strings.Builder
	re.WriteString("^")
	var lit strings.Builder // literal text not yet written
	first := true
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\\':
			if i+1 >= len(src) {
				return nil, fmt.Errorf("source %q ends with a lone \\", src)
			}
			lit.WriteByte(src[i+1])
			i += 2
		case c == ':' || c == '(':
			name := ""
			if c == ':' {
				j := i + 1
				for j < len(src) && isNameChar(src[j]) {
					j++
				}
				if j == i+1 {
					return nil, fmt.Errorf("source %q: \":\" at column %d must start a parameter name", src, i+1)
				}
				name, i = src[i+1:j], j
			}
			group := "[^/#?]+?"
			if i < len(src) && src[i] == '(' {
				end, err := groupEnd(src, i)
				if err != nil {
					return nil, err
				}
				group, i = src[i+1:end], end+1
				if group == "" {
					return nil, fmt.Errorf("source %q: empty group at column %d", src, end)
				}
			}
			mod := ""
			if i < len(src) && strings.IndexByte("?*+", src[i]) >= 0 {
				mod, i = src[i:i+1], i+1
			}
			if strings.HasPrefix(group, "(?!") || strings.HasPrefix(group, "(?=") {
				end, err := groupEnd(group, 0)
				if err != nil {
					return nil, err
				}
				if mod != "" || end == len(group)-1 {
					return nil, fmt.Errorf("source %q: a lookahead is supported only at the start of a group that matches more after it, like /((?!api/).*)", src)
				}
				la, err := regexp.Compile("^(?:" + group[3:end] + ")")
				if err != nil {
					return nil, fmt.Errorf("source %q: lookahead %q: %v", src, group[:end+1], err)
				}
				pt.looks = append(pt.looks, lookahead{param: len(pt.names), re: la, negative: group[2] == '!'})
				group = group[end+1:]
			}
			text := decoded(lit.String())
			lit.Reset()
			pfx := ""
			if n := len(text); n > 0 && (text[n-1] == '/' || text[n-1] == '.') {
				pfx, text = text[n-1:], text[:n-1]
			}
			if first {
				pt.prefix, first = text, false
			}
			re.WriteString(regexp.QuoteMeta(text))
			g := "p" + strconv.Itoa(len(pt.names))
			q := regexp.QuoteMeta(pfx)
			switch {
			case (mod == "*" || mod == "+") && pfx != "":
				re.WriteString("(?:" + q + "(?P<" + g + ">(?:" + group + ")(?:" + q + "(?:" + group + "))*))")
				if mod == "*" {
					re.WriteString("?")
				}
			case mod == "*" || mod == "+":
				re.WriteString("(?P<" + g + ">(?:" + group + ")" + mod + ")")
			default:
				re.WriteString("(?:" + q + "(?P<" + g + ">" + group + "))" + mod)
			}
			pt.names = append(pt.names, name)
		case c == '?' || c == '*' || c == '+':
			return nil, fmt.Errorf("source %q: %q at column %d must follow a :param or a (group); for any path write /:path* or /(.*)", src, c, i+1)
		case c == '{' || c == '}':
			return nil, fmt.Errorf("source %q: {…} groups are not supported", src)
		default:
			lit.WriteByte(c)
			i++
		}
	}
	text := decoded(lit.String())
	if first {
		pt.literal, pt.isLit = text, true
		return pt, nil
	}
	re.WriteString(regexp.QuoteMeta(text) + "$")
	return finish(pt, src, re.String())
}

// groupEnd returns the index of the ")" closing the "(" at i, skipping
// escapes and character classes.
func groupEnd(src string, i int) (int, error) {
	depth, class := 0, false
	for j := i; j < len(src); j++ {
		switch c := src[j]; {
		case c == '\\':
			j++
		case class:
			class = c != ']'
		case c == '[':
			class = true
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth == 0 {
				return j, nil
			}
		}
	}
	return 0, fmt.Errorf("source %q: the group at column %d is not closed", src, i+1)
}

// compileNetlify compiles a _redirects or _headers path: ":name" as a whole
// segment matches one segment, "*" matches anything (the last one is
// :splat; "/*" at the end also matches nothing at all). One trailing slash
// of the path does not matter.
func compileNetlify(src string) (*pattern, error) {
	pt := &pattern{loose: true}
	body := trimSlash(src)
	if !strings.ContainsAny(body, ":*") {
		pt.literal, pt.isLit = decoded(body), true
		return pt, nil
	}
	var re strings.Builder
	re.WriteString("^")
	first := true
	mark := func(text string) {
		if first {
			pt.prefix, first = text, false
		}
	}
	var lit strings.Builder
	for i := 0; i < len(body); {
		c := body[i]
		switch {
		case c == ':' && i > 0 && body[i-1] == '/' && i+1 < len(body) && isNameChar(body[i+1]):
			j := i + 1
			for j < len(body) && isNameChar(body[j]) {
				j++
			}
			if j < len(body) && body[j] != '/' {
				lit.WriteByte(c) // not a whole segment: literal, as Netlify reads it
				i++
				continue
			}
			text := decoded(lit.String())
			mark(text)
			re.WriteString(regexp.QuoteMeta(text))
			lit.Reset()
			re.WriteString("(?P<p" + strconv.Itoa(len(pt.names)) + ">[^/]+)")
			pt.names = append(pt.names, body[i+1:j])
			i = j
		case c == '*':
			text := decoded(lit.String())
			lit.Reset()
			g := "(?P<p" + strconv.Itoa(len(pt.names)) + ">.*)"
			if i == len(body)-1 && strings.HasSuffix(text, "/") {
				text = text[:len(text)-1]
				g = "(?:/" + g + ")?"
			}
			mark(text)
			re.WriteString(regexp.QuoteMeta(text) + g)
			pt.names = append(pt.names, "splat")
			i++
		default:
			lit.WriteByte(c)
			i++
		}
	}
	re.WriteString(regexp.QuoteMeta(decoded(lit.String())) + "/?$")
	return finish(pt, src, re.String())
}

// decoded is the literal text of a pattern as the decoded request path
// has it: sources are written URL-encoded ("/c%C3%A9line"), while
// matching is on the decoded path.
func decoded(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

func finish(pt *pattern, src, expr string) (*pattern, error) {
	re, err := regexp.Compile(expr)
	if err == nil {
		pt.insts, err = programSize(expr)
	}
	if err == nil && pt.insts > MaxPatternInsts {
		return nil, fmt.Errorf("source %q is too complex (%d regular expression instructions, at most %d): use simpler groups or fewer repetitions", src, pt.insts, MaxPatternInsts)
	}
	if err != nil {
		msg := err.Error()
		if strings.Contains(src, "(?!") || strings.Contains(src, "(?=") || strings.Contains(src, "(?<!") || strings.Contains(src, "(?<=") {
			msg += " (lookahead and lookbehind are not supported, except a lookahead opening a group as in /((?!api/).*): matching must take linear time; list the excluded paths as rules before this one)"
		}
		return nil, fmt.Errorf("source %q is not a valid pattern: %s", src, msg)
	}
	pt.re = re
	pt.groups = make([]int, len(pt.names))
	for i := range pt.names {
		pt.groups[i] = re.SubexpIndex("p" + strconv.Itoa(i))
	}
	return pt, nil
}

// template is a compiled destination: literal pieces and parameter
// references, for the part before "?" and the part after.
type template struct {
	external bool // an absolute http(s) URL
	path     []piece
	query    []piece // nil: no "?" in the destination
	hasQuery bool
}

// piece is literal text (param < 0) or a parameter's value, written after
// prefix when the value is not empty (vercel's optional /:path*).
type piece struct {
	text   string
	param  int
	prefix string
}

// compileTemplate compiles dst against the source's parameter names. In
// vercel syntax ":name" (an optional *, + or ? after it is dropped) and "$n"
// refer to parameters, and an unknown :name is an error; in netlify syntax
// ":name" refers to a parameter of the source when there is one and is
// literal text otherwise.
func compileTemplate(syn Syntax, dst string, names []string) (template, error) {
	var t template
	switch {
	case dst == "":
		return t, fmt.Errorf("the destination is empty")
	case len(dst) > MaxDestinationLen:
		return t, fmt.Errorf("the destination is %d bytes long, more than %d", len(dst), MaxDestinationLen)
	case strings.ContainsAny(dst, "\r\n\x00 \t"):
		return t, fmt.Errorf("destination %q has a space or a control character", dst)
	}
	rest := dst
	var head string
	switch {
	case strings.HasPrefix(dst, "https://") || strings.HasPrefix(dst, "http://"):
		t.external = true
		scheme := strings.Index(dst, "://") + 3
		end := strings.IndexAny(dst[scheme:], "/?#")
		if end < 0 {
			end = len(dst) - scheme
		}
		if end == 0 {
			return t, fmt.Errorf("destination %q has no host", dst)
		}
		head, rest = dst[:scheme+end], dst[scheme+end:]
	case dst[0] != '/' || strings.HasPrefix(dst, "//") || strings.HasPrefix(dst, "/\\"):
		return t, fmt.Errorf("destination %q must be a path starting with / or an http(s) URL", dst)
	}
	pathPart, query, hasQuery := strings.Cut(rest, "?")
	var err error
	if t.path, err = pieces(syn, pathPart, names, dst); err != nil {
		return t, err
	}
	if head != "" {
		t.path = append([]piece{{text: head, param: -1}}, t.path...)
	}
	if hasQuery {
		t.hasQuery = true
		if t.query, err = pieces(syn, query, names, dst); err != nil {
			return t, err
		}
	}
	return t, nil
}

func pieces(syn Syntax, s string, names []string, dst string) ([]piece, error) {
	var out []piece
	var lit strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c == ':' && i+1 < len(s) && isNameChar(s[i+1]) {
			j := i + 1
			for j < len(s) && isNameChar(s[j]) {
				j++
			}
			idx := paramIndex(names, s[i+1:j])
			if idx < 0 {
				if syn == SyntaxVercel {
					return nil, fmt.Errorf("destination %q uses :%s, which the source does not have", dst, s[i+1:j])
				}
				lit.WriteString(s[i:j])
				i = j
				continue
			}
			pfx := ""
			if syn == SyntaxVercel && j < len(s) && strings.IndexByte("*+?", s[j]) >= 0 && (j+1 == len(s) || s[j+1] == '/') {
				// An optional parameter takes the "/" before it along:
				// /docs/:path* with no path is /docs.
				if s[j] != '+' && strings.HasSuffix(lit.String(), "/") {
					text := lit.String()
					lit.Reset()
					lit.WriteString(text[:len(text)-1])
					pfx = "/"
				}
				j++
			}
			out = appendLit(out, &lit)
			out = append(out, piece{param: idx, prefix: pfx})
			i = j
			continue
		}
		if c == '$' && syn == SyntaxVercel && i+1 < len(s) && s[i+1] >= '1' && s[i+1] <= '9' {
			j := i + 1
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			n, _ := strconv.Atoi(s[i+1 : j])
			if n > len(names) {
				return nil, fmt.Errorf("destination %q uses $%d, but the source has %d parameters", dst, n, len(names))
			}
			out = appendLit(out, &lit)
			out = append(out, piece{param: n - 1})
			i = j
			continue
		}
		lit.WriteByte(c)
		i++
	}
	return appendLit(out, &lit), nil
}

func appendLit(out []piece, lit *strings.Builder) []piece {
	if lit.Len() > 0 {
		out = append(out, piece{text: lit.String(), param: -1})
		lit.Reset()
	}
	return out
}

func paramIndex(names []string, name string) int {
	for i := len(names) - 1; i >= 0; i-- {
		if names[i] == name {
			return i
		}
	}
	return -1
}

// expand writes the pieces with vals substituted through esc.
func expand(b *strings.Builder, ps []piece, vals []string, esc func(string) string) {
	for _, p := range ps {
		if p.param < 0 {
			b.WriteString(p.text)
		} else if p.param < len(vals) && vals[p.param] != "" {
			b.WriteString(p.prefix + esc(vals[p.param]))
		}
	}
}
