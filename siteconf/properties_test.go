package siteconf

import (
	"encoding/json"
	"fmt"
	"path"
	"reflect"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

var segment = rapid.StringMatching(`[a-z0-9][a-z0-9._-]{0,8}`)

// netlifySource draws a _redirects source: literal segments, :placeholders
// and maybe a final splat; it returns the parameter names too.
func netlifySource(t *rapid.T) (string, []string) {
	n := rapid.IntRange(0, 4).Draw(t, "segments")
	var b strings.Builder
	var names []string
	for i := range n {
		if rapid.Bool().Draw(t, "placeholder") {
			name := fmt.Sprintf("p%d", i)
			names = append(names, name)
			b.WriteString("/:" + name)
		} else {
			b.WriteString("/" + segment.Draw(t, "segment"))
		}
	}
	if rapid.Bool().Draw(t, "splat") {
		b.WriteString("/*")
		names = append(names, "splat")
	}
	if b.Len() == 0 {
		b.WriteString("/")
	}
	return b.String(), names
}

func netlifyRule(t *rapid.T) Rule {
	src, names := netlifySource(t)
	dst := "/" + segment.Draw(t, "dst")
	for _, n := range names {
		if rapid.Bool().Draw(t, "use") {
			dst += "/:" + n
		}
	}
	if rapid.Bool().Draw(t, "external") {
		dst = "https://example.com" + dst
	}
	status := rapid.SampledFrom([]int{200, 301, 302, 303, 307, 308, 404, 410}).Draw(t, "status")
	if status != 200 && status != 404 && status != 410 || !strings.HasPrefix(dst, "https://") {
		return Rule{Syntax: SyntaxNetlify, Source: src, Destination: dst, Status: status, Force: rapid.Bool().Draw(t, "force")}
	}
	return Rule{Syntax: SyntaxNetlify, Source: src, Destination: strings.TrimPrefix(dst, "https://example.com"), Status: status}
}

func withoutOrigins[T any](rs []T, clear func(*T)) []T {
	out := append([]T(nil), rs...)
	for i := range out {
		clear(&out[i])
	}
	return out
}

// TestRedirectsRoundTrip: parse(format(rules)) gives the rules back, and
// formatting that gives the same text.
func TestRedirectsRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		rules := rapid.SliceOfN(rapid.Custom(netlifyRule), 0, 20).Draw(t, "rules")
		text := FormatRedirects(rules)
		got, warns, err := ParseRedirects("_redirects", []byte(text))
		if err != nil || len(warns) > 0 {
			t.Fatalf("parse %q: %v %q", text, err, warns)
		}
		got = withoutOrigins(got, func(r *Rule) { r.Origin = "" })
		if len(rules) == 0 && len(got) == 0 {
			return
		}
		if !reflect.DeepEqual(got, rules) {
			t.Fatalf("text %q:\n got %+v\nwant %+v", text, got, rules)
		}
		if again := FormatRedirects(got); again != text {
			t.Fatalf("format again: %q, want %q", again, text)
		}
	})
}

var headerName = rapid.StringMatching(`[A-Za-z][A-Za-z0-9-]{0,15}`)

// TestHeadersRoundTrip: the same for _headers.
func TestHeadersRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 10).Draw(t, "rules")
		var rules []HeaderRule
		for range n {
			src, _ := netlifySource(t)
			var hs []Header
			seen := map[string]bool{}
			for range rapid.IntRange(1, 5).Draw(t, "headers") {
				name := headerName.Draw(t, "name")
				if seen[strings.ToLower(name)] || framingHeaders[canonical(name)] || strings.EqualFold(name, "Basic-Auth") {
					continue
				}
				seen[strings.ToLower(name)] = true
				value := rapid.StringMatching(`[!-~]([ -~]{0,30}[!-~])?`).Draw(t, "value")
				hs = append(hs, Header{Name: name, Value: value})
			}
			if len(hs) > 0 { // a path without headers sets nothing and is dropped
				rules = append(rules, HeaderRule{Syntax: SyntaxNetlify, Source: src, Headers: hs})
			}
		}
		text := FormatHeaders(rules)
		got, warns, err := ParseHeaders("_headers", []byte(text))
		if err != nil || len(warns) > 0 {
			t.Fatalf("parse %q: %v %q", text, err, warns)
		}
		got = withoutOrigins(got, func(r *HeaderRule) { r.Origin = "" })
		if len(rules) == 0 && len(got) == 0 {
			return
		}
		if !reflect.DeepEqual(got, rules) {
			t.Fatalf("text %q:\n got %+v\nwant %+v", text, got, rules)
		}
	})
}

// TestConfigJSONRoundTrip: a Config survives Marshal and Load unchanged in
// behaviour: both answer every path alike.
func TestConfigJSONRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := Config{Version: Version, CleanURLs: rapid.Bool().Draw(t, "clean"), Rules: rapid.SliceOfN(rapid.Custom(netlifyRule), 0, 10).Draw(t, "rules")}
		data, err := Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var back Config
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatal(err)
		}
		if len(c.Rules) > 0 && !reflect.DeepEqual(back, c) {
			t.Fatalf("got %+v, want %+v", back, c)
		}
		if _, err := Load(data); err != nil {
			t.Fatalf("load: %v", err)
		}
	})
}

// anyPath draws request paths, hostile ones included.
var anyPath = rapid.OneOf(
	rapid.StringMatching(`(/([a-z0-9.]{0,6}|\.\.|%2e|:x|\*|index(\.html)?|\\)){0,6}/?`),
	rapid.Map(rapid.String(), func(s string) string { return "/" + s }),
)

// anyPattern draws sources from pattern syntax, most of them broken.
var anyPattern = rapid.StringMatching(`/([a-z.]{0,4}|:[a-z]{1,3}|\(\.\*\)|\([^)]{0,5}\)|[*+?]|\\.|\.\.|/){0,6}`)

// anyDestination draws destinations that use parameters, dot segments and
// hostile characters.
var anyDestination = rapid.StringMatching(`/([a-z.]{0,4}|:[a-z]{1,3}|:splat|\$[1-3]|\.\.|/|%|\?|#|&){0,8}`)

// TestRouteNeverEscapes: whatever the rules and the path, Route does not
// panic, a rewrite's path is rooted and clean, and a local redirect stays
// on the site.
func TestRouteNeverEscapes(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var c Config
		c.CleanURLs = rapid.Bool().Draw(t, "clean")
		if rapid.Bool().Draw(t, "setSlash") {
			v := rapid.Bool().Draw(t, "slash")
			c.TrailingSlash = &v
		}
		for range rapid.IntRange(1, 8).Draw(t, "rules") {
			r := Rule{
				Syntax:      rapid.SampledFrom([]Syntax{SyntaxVercel, SyntaxNetlify}).Draw(t, "syntax"),
				Source:      anyPattern.Draw(t, "source"),
				Destination: anyDestination.Draw(t, "destination"),
				Status:      rapid.SampledFrom([]int{200, 301, 308, 404}).Draw(t, "status"),
				Force:       rapid.Bool().Draw(t, "force"),
			}
			if _, err := compileRule(r); err == nil {
				c.Rules = append(c.Rules, r)
			}
		}
		s, err := Compile(c)
		if err != nil {
			t.Fatalf("compile checked rules: %v", err)
		}
		for range 20 {
			p := anyPath.Draw(t, "path")
			a := s.Route(p, "q=1", func(string) bool { return false })
			switch a.Kind {
			case Rewrite:
				if !strings.HasPrefix(a.Path, "/") || path.Clean(a.Path) != strings.TrimSuffix(a.Path, "/") && a.Path != "/" {
					t.Fatalf("%q rewrote to %q", p, a.Path)
				}
				for _, seg := range strings.Split(a.Path, "/") {
					if seg == ".." {
						t.Fatalf("%q rewrote to %q", p, a.Path)
					}
				}
			case Redirect:
				loc := a.Location
				if !strings.HasPrefix(loc, "https://") && (!strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, "/\\")) {
					t.Fatalf("%q redirected off the site: %q", p, loc)
				}
				if strings.ContainsAny(loc, "\r\n ") {
					t.Fatalf("%q: unsafe Location %q", p, loc)
				}
			}
			s.Headers(p)
		}
	})
}
