package siteconf

import (
	"fmt"
	"strconv"
	"strings"
)

// lines splits data into lines without their "\r\n" or "\n".
func lines(data []byte) []string {
	ls := strings.Split(string(data), "\n")
	for i, l := range ls {
		ls[i] = strings.TrimSuffix(l, "\r")
	}
	return ls
}

func lineErr(name string, line int, format string, args ...any) error {
	return &Error{File: name, Line: line, Msg: fmt.Sprintf(format, args...)}
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// ParseRedirects reads a Netlify _redirects file (its name for messages is
// name): one rule a line, "from [query conditions] to [status[!]]
// [conditions]", "#" comments, status 301 when omitted. Rules Netlify
// supports but this server cannot honour (domain-level sources, query,
// country, language or role conditions, proxying to other sites) are
// dropped with a warning; a malformed line is an *Error naming it.
func ParseRedirects(name string, data []byte) ([]Rule, []string, error) {
	if len(data) > MaxFileBytes {
		return nil, nil, &Error{File: name, Msg: fmt.Sprintf("%d bytes, more than the %d allowed", len(data), MaxFileBytes)}
	}
	var rules []Rule
	var warns []string
	for n, l := range lines(data) {
		line := n + 1
		f := strings.Fields(l)
		for i, x := range f {
			if strings.HasPrefix(x, "#") {
				f = f[:i]
				break
			}
		}
		if len(f) == 0 {
			continue
		}
		origin := name + ":" + strconv.Itoa(line)
		from := f[0]
		i := 1
		var query []string
		for i < len(f) && strings.Contains(f[i], "=") && !strings.HasPrefix(f[i], "/") && !isURL(f[i]) {
			query = append(query, f[i])
			i++
		}
		if i >= len(f) {
			return nil, nil, lineErr(name, line, "%q has no destination", from)
		}
		r := Rule{Origin: origin, Syntax: SyntaxNetlify, Source: from, Destination: f[i], Status: 301}
		i++
		if i < len(f) && len(f[i]) >= 3 && isDigits(f[i][:3]) && (len(f[i]) == 3 || f[i][3:] == "!") {
			r.Status, _ = strconv.Atoi(f[i][:3])
			r.Force = len(f[i]) == 4
			i++
		}
		var conds []string
		for ; i < len(f); i++ {
			if !strings.Contains(f[i], "=") {
				return nil, nil, lineErr(name, line, "unexpected %q after the destination: a status is three digits, optionally followed by !", f[i])
			}
			conds = append(conds, f[i])
		}
		if !validStatus(r.Status) {
			return nil, nil, lineErr(name, line, "status %d is neither a redirect (301, 302, 303, 307, 308) nor a rewrite (200, 4xx, 5xx)", r.Status)
		}
		var skip string
		switch {
		case isURL(from):
			skip = "rules for whole domains are not supported"
		case len(query) > 0:
			skip = "query parameter conditions (" + strings.Join(query, " ") + ") are not supported"
		case len(conds) > 0:
			skip = "conditions (" + strings.Join(conds, " ") + ") are not supported"
		case isURL(r.Destination) && !r.IsRedirect():
			skip = "proxying to other sites is not supported"
		}
		if skip == "" && from[0] != '/' {
			return nil, nil, lineErr(name, line, "source %q must start with / (or be a URL)", from)
		}
		if _, err := compileRule(r); err != nil {
			if skip != "" {
				warns = append(warns, origin+": "+skip+"; rule ignored")
				continue
			}
			return nil, nil, lineErr(name, line, "%v", err)
		}
		if skip != "" {
			warns = append(warns, origin+": "+skip+"; rule ignored")
			continue
		}
		if len(rules) >= MaxRules {
			return nil, nil, lineErr(name, line, "more than %d rules", MaxRules)
		}
		rules = append(rules, r)
	}
	return rules, warns, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// FormatRedirects writes rules in _redirects form, one a line, as
// ParseRedirects reads them back.
func FormatRedirects(rules []Rule) string {
	var b strings.Builder
	for _, r := range rules {
		b.WriteString(r.Source + " " + r.Destination + " " + strconv.Itoa(r.Status))
		if r.Force {
			b.WriteByte('!')
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// ParseHeaders reads a Netlify _headers file (its name for messages is
// name): a path pattern on a line of its own, then its headers on indented
// "Name: value" lines; "#" comments. Repeated names in one block are joined
// with ", ". Headers the server owns (Content-Length, ...) and Netlify's
// Basic-Auth are dropped with a warning; a malformed line is an *Error
// naming it.
func ParseHeaders(name string, data []byte) ([]HeaderRule, []string, error) {
	if len(data) > MaxFileBytes {
		return nil, nil, &Error{File: name, Msg: fmt.Sprintf("%d bytes, more than the %d allowed", len(data), MaxFileBytes)}
	}
	var rules []HeaderRule
	var warns []string
	var cur *HeaderRule
	skipBlock := false
	flush := func() error {
		if cur != nil && len(cur.Headers) > 0 {
			if _, err := compileHeader(*cur); err != nil {
				return &Error{File: cur.Origin, Msg: err.Error()}
			}
			if len(rules) >= MaxRules {
				return &Error{File: cur.Origin, Msg: fmt.Sprintf("more than %d rules", MaxRules)}
			}
			rules = append(rules, *cur)
		}
		cur = nil
		return nil
	}
	for n, l := range lines(data) {
		line := n + 1
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		origin := name + ":" + strconv.Itoa(line)
		if l[0] != ' ' && l[0] != '\t' {
			if err := flush(); err != nil {
				return nil, nil, err
			}
			skipBlock = false
			switch {
			case isURL(t):
				warns = append(warns, origin+": rules for whole domains are not supported; block ignored")
				skipBlock = true
				continue
			case strings.ContainsAny(t, " \t"):
				return nil, nil, lineErr(name, line, "a path line holds one path; headers go on indented lines below it")
			case t[0] != '/':
				return nil, nil, lineErr(name, line, "path %q must start with /", t)
			}
			if _, err := compilePattern(SyntaxNetlify, t); err != nil {
				return nil, nil, lineErr(name, line, "%v", err)
			}
			cur = &HeaderRule{Origin: origin, Syntax: SyntaxNetlify, Source: t}
			continue
		}
		if skipBlock {
			continue
		}
		if cur == nil {
			return nil, nil, lineErr(name, line, "header %q comes before any path", t)
		}
		key, value, ok := strings.Cut(t, ":")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		switch {
		case !ok:
			return nil, nil, lineErr(name, line, "%q is not a \"Name: value\" header", t)
		case !validHeaderName(key):
			return nil, nil, lineErr(name, line, "%q is not a valid header name", key)
		case !validHeaderValue(value):
			return nil, nil, lineErr(name, line, "the value of %s has a control character or is longer than %d bytes", key, MaxHeaderValueLen)
		case strings.EqualFold(key, "Basic-Auth"):
			warns = append(warns, origin+": Basic-Auth is not supported: "+cur.Source+" is NOT password-protected; ignored")
			continue
		case framingHeaders[canonical(key)]:
			warns = append(warns, origin+": "+key+" is set by the server; ignored")
			continue
		}
		joined := false
		for i := range cur.Headers {
			if strings.EqualFold(cur.Headers[i].Name, key) {
				cur.Headers[i].Value += ", " + value
				joined = true
			}
		}
		if !joined {
			cur.Headers = append(cur.Headers, Header{Name: key, Value: value})
		}
	}
	if err := flush(); err != nil {
		return nil, nil, err
	}
	return rules, warns, nil
}

// FormatHeaders writes header rules in _headers form, as ParseHeaders
// reads them back.
func FormatHeaders(rules []HeaderRule) string {
	var b strings.Builder
	for _, r := range rules {
		b.WriteString(r.Source + "\n")
		for _, h := range r.Headers {
			b.WriteString("  " + h.Name + ": " + h.Value + "\n")
		}
	}
	return b.String()
}
