// Package siteconf reads the routing files sites bring from other hosts —
// vercel.json (redirects, rewrites, headers, cleanUrls, trailingSlash) and
// Netlify's _redirects and _headers — into one normalised Config, checks it,
// and compiles it into a Site that answers, per request, which redirect,
// rewrite and headers apply.
//
// The build reads the files (ParseVercel, ParseRedirects, ParseHeaders),
// merges them (Merge), checks them by compiling (Compile) and writes the
// Config as JSON into the artifact; the edge loads that JSON (Load) and
// compiles it once per deployment. Matching is linear-time: every pattern is
// a Go regular expression (RE2), refused at build time when it does not
// compile.
//
// Precedence, in the order a request meets them (Vercel's own order, with
// Netlify's rules placed among them by their kind):
//
//  1. cleanUrls redirects (/about.html and /index → 308 to the clean path);
//  2. trailingSlash redirects;
//  3. the rules in order, first match wins: vercel.json redirects, then the
//     _redirects rules, then vercel.json rewrites. A rule that is not forced
//     (vercel.json rewrites; _redirects rules without "!") does not apply
//     when a file exists at the requested path: the file is served (Netlify's
//     shadowing, Vercel's rewrites after the filesystem). vercel.json
//     redirects and "!" rules always apply.
//
// Headers of every matching header rule are set on the response, later rules
// overriding earlier ones, whatever its status.
package siteconf

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Limits on what a site may configure. They bound build time, the edge's
// memory and the work per request.
const (
	// MaxFileBytes is the largest vercel.json, _redirects or _headers read.
	MaxFileBytes = 1 << 20
	// MaxRules bounds redirect, rewrite and header rules together.
	MaxRules = 10000
	// MaxPatternLen bounds a source pattern, in bytes.
	MaxPatternLen = 1024
	// MaxDestinationLen bounds a destination, in bytes.
	MaxDestinationLen = 2048
	// MaxHeaderValueLen bounds one header value, in bytes.
	MaxHeaderValueLen = 8192
	// MaxJSONBytes bounds the compiled Config's JSON as the edge reads it.
	MaxJSONBytes = 16 << 20
	// MaxPatternInsts bounds one pattern's regular expression program, and
	// MaxSiteInsts all of a site's: matching is linear in the path, but
	// its constant is the program's size, paid by every request.
	MaxPatternInsts = 500
	MaxSiteInsts    = 200_000
	// MaxMatchPath is the longest path rules are matched against; a longer
	// one matches no rule (and no header rule).
	MaxMatchPath = 2048
)

// Version is the version of the Config JSON this package writes and reads.
const Version = 1

// ErrInvalid is wrapped by every error about a file's or a Config's content.
var ErrInvalid = errors.New("invalid site configuration")

// Error is a problem in one of the site's files, at a position.
type Error struct {
	// File is the file's name as the user knows it ("vercel.json").
	File string
	// Line is 1-based; 0 when the problem is the whole file.
	Line int
	// Col is the 1-based byte column; 0 when not known (line-based files).
	Col int
	// Msg says what is wrong, lowercase, without the position.
	Msg string
}

func (e *Error) Error() string {
	switch {
	case e.Line == 0:
		return e.File + ": " + e.Msg
	case e.Col == 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// Unwrap makes every Error an ErrInvalid.
func (e *Error) Unwrap() error { return ErrInvalid }

// Syntax names the pattern language of a rule's source.
type Syntax string

const (
	// SyntaxVercel is vercel.json's path-to-regexp: /blog/:slug,
	// /docs/:path*, /(.*), :id(\d+); the whole path must match, case
	// sensitively, a trailing slash included.
	SyntaxVercel Syntax = "vercel"
	// SyntaxNetlify is _redirects' and _headers' pattern: /news/:year/*
	// where :name is one segment and * the rest (:splat); a trailing slash
	// does not matter.
	SyntaxNetlify Syntax = "netlify"
)

// Config is a site's routing configuration, normalised from its files. Its
// JSON form is what the build writes into the artifact.
type Config struct {
	// Version is the format's version, Version when written.
	Version int `json:"version"`
	// CleanURLs redirects /x.html and /x/index to /x (vercel.json).
	CleanURLs bool `json:"cleanUrls,omitempty"`
	// TrailingSlash, when set, redirects paths to the form with (true) or
	// without (false) a trailing slash (vercel.json). Nil: neither.
	TrailingSlash *bool `json:"trailingSlash,omitempty"`
	// Rules are the redirects and rewrites in the order they are tried.
	Rules []Rule `json:"rules,omitempty"`
	// Headers are the header rules in the order they are applied.
	Headers []HeaderRule `json:"headers,omitempty"`
}

// Rule is one redirect or rewrite.
type Rule struct {
	// Origin is where the rule was written, "file:line[:col]", for messages.
	Origin string `json:"origin"`
	// Syntax is the pattern language of Source.
	Syntax Syntax `json:"syntax"`
	// Source is the pattern the request path must match.
	Source string `json:"source"`
	// Destination is where the request goes, with the source's
	// parameters (:name, :splat, $1) substituted: a path of this site, or
	// for redirects an absolute http(s) URL.
	Destination string `json:"destination"`
	// Status is a redirect's status (301, 302, 303, 307, 308); 200 for a
	// rewrite; any other 2xx, 4xx or 5xx serves the destination with that
	// status (Netlify's custom 404 pages).
	Status int `json:"status"`
	// Force applies the rule even when a file exists at the path.
	Force bool `json:"force,omitempty"`
}

// IsRedirect reports whether the rule answers with a redirect.
func (r Rule) IsRedirect() bool { return redirectStatus(r.Status) }

// HeaderRule sets headers on the responses to the paths its Source matches.
type HeaderRule struct {
	// Origin is where the rule was written, "file:line[:col]".
	Origin string `json:"origin"`
	// Syntax is the pattern language of Source.
	Syntax Syntax `json:"syntax"`
	// Source is the pattern the request path must match.
	Source string `json:"source"`
	// Headers are set in order, replacing what the response had.
	Headers []Header `json:"headers"`
}

// Header is one response header.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Empty reports whether c changes nothing.
func (c Config) Empty() bool {
	return !c.CleanURLs && c.TrailingSlash == nil && len(c.Rules) == 0 && len(c.Headers) == 0
}

// Merge combines the parsed files into one Config in the documented order:
// vercel.json's redirects, then the _redirects rules, then vercel.json's
// rewrites; header rules of vercel.json before those of _headers.
func Merge(vercel Config, redirects []Rule, headers []HeaderRule) Config {
	c := Config{Version: Version, CleanURLs: vercel.CleanURLs, TrailingSlash: vercel.TrailingSlash}
	var rewrites []Rule
	for _, r := range vercel.Rules {
		if r.IsRedirect() {
			c.Rules = append(c.Rules, r)
		} else {
			rewrites = append(rewrites, r)
		}
	}
	c.Rules = append(c.Rules, redirects...)
	c.Rules = append(c.Rules, rewrites...)
	c.Headers = append(append(c.Headers, vercel.Headers...), headers...)
	return c
}

// Marshal returns c's JSON form, as Load reads it.
func Marshal(c Config) ([]byte, error) {
	c.Version = Version
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode site configuration: %w", err)
	}
	return b, nil
}

// Load parses the JSON Marshal wrote and compiles it.
func Load(data []byte) (*Site, error) {
	if len(data) > MaxJSONBytes {
		return nil, fmt.Errorf("load site configuration: %d bytes, more than %d: %w", len(data), MaxJSONBytes, ErrInvalid)
	}
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("load site configuration: %w: %v", ErrInvalid, err)
	}
	if c.Version != Version {
		return nil, fmt.Errorf("load site configuration: version %d, want %d: %w", c.Version, Version, ErrInvalid)
	}
	return Compile(c)
}

func redirectStatus(s int) bool {
	switch s {
	case 301, 302, 303, 307, 308:
		return true
	}
	return false
}

// validStatus reports a status a rule may have: a redirect's, or one a
// rewrite may answer with.
func validStatus(s int) bool {
	return redirectStatus(s) || s >= 200 && s < 300 || s >= 400 && s < 600
}

// validHeaderName reports an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// validHeaderValue refuses control characters: a CR or LF would let a value
// inject headers of its own.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return len(s) <= MaxHeaderValueLen
}

// framingHeaders are headers a site may not set: they describe the
// connection or the body's framing, which the server owns.
var framingHeaders = map[string]bool{
	"Content-Length": true, "Transfer-Encoding": true, "Connection": true, "Keep-Alive": true,
	"Upgrade": true, "Trailer": true, "Te": true, "Proxy-Connection": true, "Content-Encoding": true,
}
