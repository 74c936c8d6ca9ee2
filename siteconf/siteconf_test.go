package siteconf

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// site parses the three files (empty: absent) and compiles them.
func site(t testing.TB, vercel, redirects, headers string) *Site {
	t.Helper()
	var vc Config
	var err error
	if vercel != "" {
		if vc, _, err = ParseVercel("vercel.json", []byte(vercel)); err != nil {
			t.Fatal(err)
		}
	}
	rs, _, err := ParseRedirects("_redirects", []byte(redirects))
	if err != nil {
		t.Fatal(err)
	}
	hs, _, err := ParseHeaders("_headers", []byte(headers))
	if err != nil {
		t.Fatal(err)
	}
	// Through JSON, as the edge gets it.
	data, err := Marshal(Merge(vc, rs, hs))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Load(data)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func describe(a Action) string {
	switch a.Kind {
	case Redirect:
		return fmt.Sprintf("%d %s", a.Status, a.Location)
	case Rewrite:
		s := "rewrite " + a.Path
		if a.RawQuery != "" {
			s += "?" + a.RawQuery
		}
		if a.Status != 0 {
			s += fmt.Sprintf(" %d", a.Status)
		}
		return s
	}
	return "pass"
}

func TestRoute(t *testing.T) {
	vercel := `{
	"$schema": "https://openapi.vercel.sh/vercel.json",
	"cleanUrls": true,
	"redirects": [
		{"source": "/old", "destination": "/new"},
		{"source": "/temp", "destination": "/new", "permanent": false},
		{"source": "/blog/:slug", "destination": "/posts/:slug", "statusCode": 301},
		{"source": "/docs/:path*", "destination": "https://docs.example.com/:path*"},
		{"source": "/n/:id(\\d+)", "destination": "/number/$1"},
		{"source": "/files/(.*)", "destination": "/f/$1"}
	],
	"rewrites": [
		{"source": "/app/:path*", "destination": "/app.html"},
		{"source": "/p/:id", "destination": "/api/item?id=:id"},
		{"source": "/exists", "destination": "/other.html"}
	]
}`
	redirects := `# Netlify rules
/news/*        /blog/:splat         302
/shop/:cat/:id /store/:id?c=:cat
/forced        /target.html         200!
/exists2       /elsewhere           301
/gone/*        /404.html            404
/authors/c%C3%A9line  /authors/about-c%C3%A9line
/caf%C3%A9     /menu%20du%20jour.html  200
`
	s := site(t, vercel, redirects, "")
	files := map[string]bool{"/exists": true, "/exists2": true, "/forced": true}
	exists := func(p string) bool { return files[p] }
	for _, tc := range []struct{ path, query, want string }{
		{"/old", "", "308 /new"},
		{"/old", "a=1&b=2", "308 /new?a=1&b=2"},
		{"/temp", "", "307 /new"},
		{"/blog/hello", "", "301 /posts/hello"},
		{"/blog/hello/", "", "pass"}, // vercel patterns are strict
		{"/blog/a b", "", "301 /posts/a%20b"},
		{"/docs", "", "308 https://docs.example.com"},
		{"/docs/a/b", "x=1", "308 https://docs.example.com/a/b?x=1"},
		{"/n/42", "", "308 /number/42"},
		{"/n/abc", "", "pass"},
		{"/files/a/b.txt", "", "308 /f/a/b.txt"},
		{"/about.html", "", "308 /about"},
		{"/about.html", "q=1", "308 /about?q=1"},
		{"/index.html", "", "308 /"},
		{"/guide/index", "", "308 /guide"},
		{"/app/x/y", "", "rewrite /app.html?path=x%2Fy"},
		{"/p/7", "v=2", "rewrite /api/item?id=7&v=2"},
		{"/exists", "", "pass"},
		{"/news/2024/01/story", "", "302 /blog/2024/01/story"},
		{"/news", "", "302 /blog/"},
		{"/news/", "", "302 /blog/"},
		{"/shop/toys/9", "", "301 /store/9?c=toys"},
		{"/shop/toys/9/", "", "301 /store/9?c=toys"},
		{"/forced", "", "rewrite /target.html"},
		{"/exists2", "", "pass"},
		{"/gone/here", "", "rewrite /404.html 404"},
		{"/nothing/here", "", "pass"},
		{"/authors/céline", "", "301 /authors/about-c%C3%A9line"},
		{"/café", "", "rewrite /menu du jour.html"},
		{"//evil.example/x.html", "", "308 /evil.example/x"},
	} {
		got := describe(s.Route(tc.path, tc.query, exists))
		if got != tc.want {
			t.Errorf("%s?%s: got %q, want %q", tc.path, tc.query, got, tc.want)
		}
	}
	// Without files (a server app) every matching rule applies.
	if got := describe(s.Route("/exists", "", nil)); got != "rewrite /other.html" {
		t.Errorf("app /exists: got %q", got)
	}
}

// TestLookahead: the SPA fallback vercel.json files write most, which
// leaves /api/ to the functions.
func TestLookahead(t *testing.T) {
	s := site(t, `{"rewrites": [
		{"source": "/v/:rest((?=[0-9]).*)", "destination": "/version.html"},
		{"source": "/((?!api/|_next/).*)", "destination": "/index.html"}
	]}`, "", "")
	for path, want := range map[string]string{
		"/":            "rewrite /index.html",
		"/settings/me": "rewrite /index.html",
		"/api/hello":   "pass",
		"/_next/x.js":  "pass",
		"/apix":        "rewrite /index.html",
		"/v/2/notes":   "rewrite /version.html?rest=2%2Fnotes",
		"/v/latest":    "rewrite /index.html",
	} {
		if got := describe(s.Route(path, "", nil)); got != want {
			t.Errorf("%s: got %q, want %q", path, got, want)
		}
	}
}

func TestTrailingSlash(t *testing.T) {
	on := site(t, `{"trailingSlash": true}`, "", "")
	off := site(t, `{"trailingSlash": false}`, "", "")
	both := site(t, `{"trailingSlash": true, "cleanUrls": true}`, "", "")
	for _, tc := range []struct {
		s          *Site
		path, want string
	}{
		{on, "/about", "308 /about/"},
		{on, "/about/", "pass"},
		{on, "/app.js", "pass"},
		{on, "/app.js/", "308 /app.js"},
		{on, "/", "pass"},
		{on, "/.well-known/acme", "pass"},
		{off, "/about/", "308 /about"},
		{off, "/about", "pass"},
		{off, "/", "pass"},
		{off, "//evil.example/", "308 /evil.example"},
		{both, "/about.html", "308 /about/"},
		{both, "/a/index.html", "308 /a/"},
	} {
		if got := describe(tc.s.Route(tc.path, "", nil)); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.path, got, tc.want)
		}
	}
}

func TestHeaders(t *testing.T) {
	s := site(t, `{"headers": [
		{"source": "/(.*)", "headers": [{"key": "x-frame-options", "value": "DENY"}]},
		{"source": "/assets/:file", "headers": [{"key": "Cache-Control", "value": "public, max-age=60"}]}
	]}`, "", `
# everything
/*
  X-Frame-Options: SAMEORIGIN
  Link: </a.css>; rel=preload
  Link: </b.js>; rel=preload
/secret/*
  X-Robots-Tag: noindex
`)
	got := func(p string) string {
		var parts []string
		for _, h := range s.Headers(p) {
			parts = append(parts, h.Name+"="+h.Value)
		}
		return strings.Join(parts, "; ")
	}
	for _, tc := range []struct{ path, want string }{
		{"/", "X-Frame-Options=DENY; X-Frame-Options=SAMEORIGIN; Link=</a.css>; rel=preload, </b.js>; rel=preload"},
		{"/assets/a.js", "X-Frame-Options=DENY; Cache-Control=public, max-age=60; X-Frame-Options=SAMEORIGIN; Link=</a.css>; rel=preload, </b.js>; rel=preload"},
		{"/secret", "X-Frame-Options=DENY; X-Frame-Options=SAMEORIGIN; Link=</a.css>; rel=preload, </b.js>; rel=preload; X-Robots-Tag=noindex"},
	} {
		if g := got(tc.path); g != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.path, g, tc.want)
		}
	}
	if h := site(t, "", "", "").Headers("/"); h != nil {
		t.Errorf("no rules: %v", h)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file, data, want string
	}{
		{"json syntax", "vercel.json", "{\n  \"cleanUrls\": true,\n  \"redirects\": [}\n", "vercel.json:3:17: invalid JSON"},
		{"not an object", "vercel.json", "[]", "vercel.json:1:1: the file must hold a JSON object"},
		{"bad bool", "vercel.json", "{\n \"cleanUrls\": \"yes\"}", "vercel.json:2:15: cleanUrls must be true or false"},
		{"redirects not array", "vercel.json", `{"redirects": {}}`, "vercel.json:1:15: redirects must be an array"},
		{"no destination", "vercel.json", "{\"redirects\": [\n  {\"source\": \"/a\"}\n]}", "vercel.json:2:3: redirects[0] has no destination"},
		{"bad status", "vercel.json", `{"redirects": [{"source": "/a", "destination": "/b", "statusCode": 200}]}`, "vercel.json:1:16: redirects[0].statusCode must be 301, 302, 303, 307 or 308"},
		{"both", "vercel.json", `{"redirects": [{"source": "/a", "destination": "/b", "statusCode": 301, "permanent": true}]}`, "cannot have both permanent and statusCode"},
		{"bad regex", "vercel.json", "{\"rewrites\": [\n\n    {\"source\": \"/a/(x[)\", \"destination\": \"/b\"}]}", "vercel.json:3:5: rewrites[0]: source \"/a/(x[)\": the group at column 4 is not closed"},
		{"regex syntax", "vercel.json", `{"rewrites": [{"source": "/a/(x+++)", "destination": "/b"}]}`, "is not a valid pattern: error parsing regexp"},
		{"lookbehind", "vercel.json", `{"rewrites": [{"source": "/(.*(?<!\\.js))", "destination": "/index.html"}]}`, "lookahead and lookbehind are not supported"},
		{"lookahead inside", "vercel.json", `{"rewrites": [{"source": "/(a(?!b).*)", "destination": "/index.html"}]}`, "lookahead and lookbehind are not supported"},
		{"lookahead alone", "vercel.json", `{"rewrites": [{"source": "/((?!api))", "destination": "/index.html"}]}`, "a lookahead is supported only at the start of a group"},
		{"unknown param", "vercel.json", `{"redirects": [{"source": "/a/:x", "destination": "/b/:y"}]}`, "uses :y, which the source does not have"},
		{"bare star", "vercel.json", `{"redirects": [{"source": "/a/*", "destination": "/b"}]}`, "must follow a :param"},
		{"relative destination", "vercel.json", `{"rewrites": [{"source": "/a", "destination": "b.html"}]}`, "must be a path starting with /"},
		{"bad header name", "vercel.json", `{"headers": [{"source": "/a", "headers": [{"key": "X Bad", "value": "1"}]}]}`, "\"X Bad\" is not a valid header name"},
		{"header injection", "vercel.json", `{"headers": [{"source": "/a", "headers": [{"key": "X-A", "value": "1\r\nSet-Cookie: a=b"}]}]}`, "control character"},
		{"trailing data", "vercel.json", `{} {}`, "data after the object"},
		{"no destination", "_redirects", "# c\n/a /b\n/c\n", "_redirects:3: \"/c\" has no destination"},
		{"bad status", "_redirects", "/a /b 301\n\n/c /d 999\n", "_redirects:3: status 999 is neither a redirect"},
		{"junk after", "_redirects", "/a /b 301 extra\n", "_redirects:1: unexpected \"extra\""},
		{"relative source", "_redirects", "a /b\n", "_redirects:1: source \"a\" must start with /"},
		{"relative destination", "_redirects", "/a b\n", "_redirects:1: destination \"b\" must be a path"},
		{"header before path", "_headers", "  X-A: 1\n", "_headers:1: header \"X-A: 1\" comes before any path"},
		{"not a header", "_headers", "/a\n  nonsense\n", "_headers:2: \"nonsense\" is not a \"Name: value\" header"},
		{"path with spaces", "_headers", "/a b\n", "_headers:1: a path line holds one path"},
		{"too big", "_redirects", strings.Repeat("#", MaxFileBytes+1), "_redirects: 1048577 bytes, more than"},
	} {
		t.Run(tc.file+"/"+tc.name, func(t *testing.T) {
			var err error
			switch tc.file {
			case "vercel.json":
				_, _, err = ParseVercel(tc.file, []byte(tc.data))
			case "_redirects":
				_, _, err = ParseRedirects(tc.file, []byte(tc.data))
			case "_headers":
				_, _, err = ParseHeaders(tc.file, []byte(tc.data))
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("%v is not ErrInvalid", err)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	_, warns, err := ParseVercel("vercel.json", []byte(`{
  "functions": {"api/*.js": {"memory": 1024}},
  "crons": [],
  "redirects": [{"source": "/a", "destination": "/b", "has": [{"type": "query", "key": "x"}]}],
  "rewrites": [{"source": "/c", "destination": "https://elsewhere.example/c"}]
}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"vercel.json:2:16: functions: functions are configured by the api/ folder here; ignored",
		"vercel.json:3:12: crons: cron jobs are not supported; ignored",
		"vercel.json:4:17: redirects[0]: has conditions are not supported; rule ignored",
		"vercel.json:5:16: rewrites[0]: rewrites to other sites (https://elsewhere.example/c) are not supported; rule ignored",
	}
	if strings.Join(warns, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(warns, "\n"), strings.Join(want, "\n"))
	}
	rules, warns, err := ParseRedirects("_redirects", []byte("/store id=:id /blog/:id 301\n/a /b 302 Country=us\n/api/* https://api.example/:splat 200\nhttps://old.example/* https://new.example/:splat 301!\n/ok /fine\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 1 || rules[0].Source != "/ok" || len(warns) != 4 {
		t.Errorf("rules %v, warnings %q", rules, warns)
	}
	hs, warns, err := ParseHeaders("_headers", []byte("/admin/*\n  Basic-Auth: a:b\n  Content-Length: 3\n  X-A: 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 1 || len(hs[0].Headers) != 1 || len(warns) != 2 || !strings.Contains(warns[0], "NOT password-protected") {
		t.Errorf("rules %v, warnings %q", hs, warns)
	}
}

// BenchmarkRoute1000 matches paths against 1,000 rules: 500 literal
// redirects and 500 patterns, the path matching the last pattern (the worst
// case) or none.
func BenchmarkRoute1000(b *testing.B) {
	var red strings.Builder
	for i := range 500 {
		fmt.Fprintf(&red, "/old-%d /new-%d 301\n", i, i)
		fmt.Fprintf(&red, "/section-%d/:slug/* /s/%d/:slug/:splat 302\n", i, i)
	}
	s := site(b, "", red.String(), "")
	for _, tc := range []struct{ name, path string }{
		{"literal", "/old-250"},
		{"last-pattern", "/section-499/x/y/z"},
		{"miss", "/nothing/at/all"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.Route(tc.path, "", nil)
			}
		})
	}
}

// TestComplexPatternsRefused: a pattern whose regular expression program
// is large (bounded repetitions of classes) is refused when the files are
// read, with the reason, so that no site can make every request cost
// seconds; paths longer than MaxMatchPath match no rule.
func TestComplexPatternsRefused(t *testing.T) {
	_, _, err := ParseVercel("vercel.json", []byte(`{"redirects":[{"source":"/:a([^/]{1,1000}[\\pL\\pN]{1,1000}y0)","destination":"/"}]}`))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "too complex") {
		t.Fatalf("a pattern of thousands of instructions: %v, want refused as too complex", err)
	}
	var b strings.Builder
	b.WriteString(`{"redirects":[`)
	for i := range 1000 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"source":"/r%d/:a([a-z0-9]{1,60}x[a-z0-9]{1,60})","destination":"/"}`, i)
	}
	b.WriteString("]}")
	vc, _, err := ParseVercel("vercel.json", []byte(b.String()))
	if err == nil {
		_, err = Compile(vc)
	}
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "too complex together") {
		t.Fatalf("1,000 patterns of 250 instructions each: %v, want refused together", err)
	}
	s := site(t, `{"redirects":[{"source":"/(.*)","destination":"/moved"}],"headers":[{"source":"/(.*)","headers":[{"key":"X-A","value":"1"}]}]}`, "", "")
	long := "/" + strings.Repeat("a", MaxMatchPath)
	if a := s.Route(long, "", nil); a.Kind != Pass {
		t.Errorf("a path over MaxMatchPath: %s, want pass", describe(a))
	}
	if h := s.Headers(long); h != nil {
		t.Errorf("a path over MaxMatchPath got headers %v", h)
	}
	if a := s.Route("/short", "", nil); a.Kind != Redirect {
		t.Errorf("/short: %s, want the redirect", describe(a))
	}
}

// TestLiteralWithTrailingSlash: a vercel.json source written with a
// trailing slash matches that path (a literal rule is looked up without
// the slash, and matched exactly).
func TestLiteralWithTrailingSlash(t *testing.T) {
	s := site(t, `{"redirects":[{"source":"/blog/","destination":"/journal/"}]}`, "", "")
	if a := s.Route("/blog/", "", nil); a.Kind != Redirect || a.Location != "/journal/" {
		t.Errorf("/blog/: %s, want a redirect to /journal/", describe(a))
	}
}
