package siteconf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// vercelIgnored are vercel.json keys that configure Vercel's platform rather
// than routing; they are reported as warnings and otherwise ignored.
var vercelIgnored = map[string]string{
	"routes":          "the legacy routes form is not supported; use redirects, rewrites and headers",
	"builds":          "builds are detected here; set commands in the project's settings",
	"functions":       "functions are configured by the api/ folder here",
	"crons":           "cron jobs are not supported",
	"regions":         "regions do not apply to a single server",
	"images":          "image optimisation is not supported",
	"buildCommand":    "set the build command in the project's settings",
	"installCommand":  "set the install command in the project's settings",
	"outputDirectory": "set the output directory in the project's settings",
	"devCommand":      "dev commands are not used",
	"framework":       "the framework is detected; set it in the project's settings",
}

// jsonDoc tracks positions in a JSON document read with a json.Decoder.
type jsonDoc struct {
	name string
	data []byte
	dec  *json.Decoder
}

// pos returns line and column of the first value at or after offset,
// skipping whitespace, commas and colons.
func (d *jsonDoc) pos(off int64) (int, int) {
	i := int(off)
	for i < len(d.data) && strings.IndexByte(" \t\r\n,:", d.data[i]) >= 0 {
		i++
	}
	return lineCol(d.data, i)
}

func lineCol(data []byte, i int) (int, int) {
	if i > len(data) {
		i = len(data)
	}
	line := 1 + bytes.Count(data[:i], []byte{'\n'})
	col := i - bytes.LastIndexByte(data[:i], '\n')
	return line, col
}

func (d *jsonDoc) errAt(off int64, format string, args ...any) error {
	line, col := d.pos(off)
	return &Error{File: d.name, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}
}

func (d *jsonDoc) origin(off int64) string {
	line, col := d.pos(off)
	return fmt.Sprintf("%s:%d:%d", d.name, line, col)
}

// syntaxErr turns a decoder error into an Error at its offset.
func (d *jsonDoc) syntaxErr(err error, at int64) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		line, col := lineCol(d.data, int(se.Offset))
		return &Error{File: d.name, Line: line, Col: col, Msg: "invalid JSON: " + strings.TrimPrefix(se.Error(), "json: ")}
	case errors.As(err, &te):
		return d.errAt(at, "expected %s, found a JSON %s", kindOf(te.Type.Kind().String()), te.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		line, col := lineCol(d.data, len(d.data))
		return &Error{File: d.name, Line: line, Col: col, Msg: "invalid JSON: unexpected end of file"}
	}
	return d.errAt(at, "invalid JSON: %v", err)
}

func kindOf(k string) string {
	switch k {
	case "bool":
		return "true or false"
	case "map", "struct":
		return "an object"
	case "slice":
		return "an array"
	case "int", "float64":
		return "a number"
	}
	return "a " + k
}

// ParseVercel reads vercel.json (its name for messages is name): redirects,
// rewrites, headers, cleanUrls and trailingSlash. Keys it does not support
// (functions, crons, has/missing conditions, rewrites to other sites, ...)
// come back as warnings and are ignored; a malformed file or rule is an
// *Error with line and column.
func ParseVercel(name string, data []byte) (Config, []string, error) {
	var c Config
	var warns []string
	if len(data) > MaxFileBytes {
		return c, nil, &Error{File: name, Msg: fmt.Sprintf("%d bytes, more than the %d allowed", len(data), MaxFileBytes)}
	}
	d := &jsonDoc{name: name, data: data, dec: json.NewDecoder(bytes.NewReader(data))}
	d.dec.UseNumber()
	tok, err := d.dec.Token()
	if err != nil {
		return c, nil, d.syntaxErr(err, 0)
	}
	if tok != json.Delim('{') {
		return c, nil, d.errAt(0, "the file must hold a JSON object")
	}
	var redirects, rewrites []Rule
	for d.dec.More() {
		at := d.dec.InputOffset()
		tok, err := d.dec.Token()
		if err != nil {
			return c, nil, d.syntaxErr(err, at)
		}
		key, _ := tok.(string)
		at = d.dec.InputOffset()
		switch key {
		case "redirects", "rewrites", "headers":
			err = d.array(key, func(i int, at int64, obj map[string]json.RawMessage) error {
				switch key {
				case "redirects":
					r, w, err := d.redirect(i, at, obj)
					warns = append(warns, w...)
					if err == nil && r != nil {
						redirects = append(redirects, *r)
					}
					return err
				case "rewrites":
					r, w, err := d.rewrite(i, at, obj)
					warns = append(warns, w...)
					if err == nil && r != nil {
						rewrites = append(rewrites, *r)
					}
					return err
				}
				h, w, err := d.header(i, at, obj)
				warns = append(warns, w...)
				if err == nil && h != nil {
					c.Headers = append(c.Headers, *h)
				}
				return err
			})
		case "cleanUrls", "trailingSlash":
			var b bool
			if err = d.dec.Decode(&b); err != nil {
				err = d.errAt(at, "%s must be true or false", key)
			} else if key == "cleanUrls" {
				c.CleanURLs = b
			} else {
				c.TrailingSlash = &b
			}
		default:
			var skip json.RawMessage
			if err = d.dec.Decode(&skip); err != nil {
				err = d.syntaxErr(err, at)
			} else if key != "$schema" && key != "version" {
				why, known := vercelIgnored[key]
				if !known {
					why = "not supported"
				}
				warns = append(warns, fmt.Sprintf("%s: %s: %s; ignored", d.origin(at), key, why))
			}
		}
		if err != nil {
			return Config{}, nil, err
		}
		if len(redirects)+len(rewrites)+len(c.Headers) > MaxRules {
			return Config{}, nil, d.errAt(at, "more than %d rules", MaxRules)
		}
	}
	if _, err := d.dec.Token(); err != nil {
		return Config{}, nil, d.syntaxErr(err, d.dec.InputOffset())
	}
	if _, err := d.dec.Token(); err != io.EOF {
		return Config{}, nil, d.errAt(d.dec.InputOffset(), "invalid JSON: data after the object")
	}
	c.Rules = append(redirects, rewrites...)
	c.Version = Version
	return c, warns, nil
}

// array reads an array of objects, calling each with its index and offset.
func (d *jsonDoc) array(key string, each func(int, int64, map[string]json.RawMessage) error) error {
	at := d.dec.InputOffset()
	tok, err := d.dec.Token()
	if err != nil {
		return d.syntaxErr(err, at)
	}
	if tok != json.Delim('[') {
		return d.errAt(at, "%s must be an array", key)
	}
	for i := 0; d.dec.More(); i++ {
		at := d.dec.InputOffset()
		var obj map[string]json.RawMessage
		if err := d.dec.Decode(&obj); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return d.errAt(at, "%s[%d] must be an object", key, i)
			}
			return d.syntaxErr(err, at)
		}
		if err := each(i, at, obj); err != nil {
			return err
		}
	}
	if _, err := d.dec.Token(); err != nil {
		return d.syntaxErr(err, d.dec.InputOffset())
	}
	return nil
}

// str reads a required string field.
func (d *jsonDoc) str(obj map[string]json.RawMessage, what, field string, at int64) (string, error) {
	raw, ok := obj[field]
	if !ok {
		return "", d.errAt(at, "%s has no %s", what, field)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", d.errAt(at, "%s.%s must be a string", what, field)
	}
	return s, nil
}

// extraKeys warns about fields of a rule other than known; has and missing
// drop the rule, because applying it unconditionally would be wrong.
func (d *jsonDoc) extraKeys(obj map[string]json.RawMessage, what string, at int64, known ...string) (warns []string, drop bool) {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch {
		case contains(known, k):
		case k == "has" || k == "missing":
			warns = append(warns, fmt.Sprintf("%s: %s: %s conditions are not supported; rule ignored", d.origin(at), what, k))
			drop = true
		default:
			warns = append(warns, fmt.Sprintf("%s: %s: %s is not supported; ignored", d.origin(at), what, k))
		}
	}
	return warns, drop
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (d *jsonDoc) redirect(i int, at int64, obj map[string]json.RawMessage) (*Rule, []string, error) {
	what := fmt.Sprintf("redirects[%d]", i)
	warns, drop := d.extraKeys(obj, what, at, "source", "destination", "permanent", "statusCode")
	r := Rule{Origin: d.origin(at), Syntax: SyntaxVercel, Status: 308, Force: true}
	var err error
	if r.Source, err = d.str(obj, what, "source", at); err != nil {
		return nil, nil, err
	}
	if r.Destination, err = d.str(obj, what, "destination", at); err != nil {
		return nil, nil, err
	}
	perm, hasPerm := obj["permanent"]
	code, hasCode := obj["statusCode"]
	switch {
	case hasPerm && hasCode:
		return nil, nil, d.errAt(at, "%s cannot have both permanent and statusCode", what)
	case hasPerm:
		var p bool
		if err := json.Unmarshal(perm, &p); err != nil {
			return nil, nil, d.errAt(at, "%s.permanent must be true or false", what)
		}
		if !p {
			r.Status = 307
		}
	case hasCode:
		if err := json.Unmarshal(code, &r.Status); err != nil || !redirectStatus(r.Status) {
			return nil, nil, d.errAt(at, "%s.statusCode must be 301, 302, 303, 307 or 308", what)
		}
	}
	if err := d.check(r, what, at); err != nil {
		return nil, nil, err
	}
	if drop {
		return nil, warns, nil
	}
	return &r, warns, nil
}

func (d *jsonDoc) rewrite(i int, at int64, obj map[string]json.RawMessage) (*Rule, []string, error) {
	what := fmt.Sprintf("rewrites[%d]", i)
	warns, drop := d.extraKeys(obj, what, at, "source", "destination")
	r := Rule{Origin: d.origin(at), Syntax: SyntaxVercel, Status: 200}
	var err error
	if r.Source, err = d.str(obj, what, "source", at); err != nil {
		return nil, nil, err
	}
	if r.Destination, err = d.str(obj, what, "destination", at); err != nil {
		return nil, nil, err
	}
	if strings.HasPrefix(r.Destination, "http://") || strings.HasPrefix(r.Destination, "https://") {
		// Proxying to another site would make this server an open relay
		// for whatever the destination serves; only paths of the site.
		return nil, append(warns, fmt.Sprintf("%s: %s: rewrites to other sites (%s) are not supported; rule ignored", r.Origin, what, r.Destination)), nil
	}
	if err := d.check(r, what, at); err != nil {
		return nil, nil, err
	}
	if drop {
		return nil, warns, nil
	}
	return &r, warns, nil
}

// check compiles a rule now, so a bad pattern fails with its position.
func (d *jsonDoc) check(r Rule, what string, at int64) error {
	if _, err := compileRule(r); err != nil {
		return d.errAt(at, "%s: %v", what, err)
	}
	return nil
}

func (d *jsonDoc) header(i int, at int64, obj map[string]json.RawMessage) (*HeaderRule, []string, error) {
	what := fmt.Sprintf("headers[%d]", i)
	warns, drop := d.extraKeys(obj, what, at, "source", "headers")
	h := HeaderRule{Origin: d.origin(at), Syntax: SyntaxVercel}
	var err error
	if h.Source, err = d.str(obj, what, "source", at); err != nil {
		return nil, nil, err
	}
	raw, ok := obj["headers"]
	if !ok {
		return nil, nil, d.errAt(at, "%s has no headers", what)
	}
	var list []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, nil, d.errAt(at, "%s.headers must be an array of {\"key\", \"value\"} objects", what)
	}
	for j, kv := range list {
		hw := fmt.Sprintf("%s.headers[%d]", what, j)
		var x Header
		if x.Name, err = d.str(kv, hw, "key", at); err != nil {
			return nil, nil, err
		}
		if x.Value, err = d.str(kv, hw, "value", at); err != nil {
			return nil, nil, err
		}
		if framingHeaders[canonical(x.Name)] {
			warns = append(warns, fmt.Sprintf("%s: %s: %s is set by the server; ignored", h.Origin, hw, x.Name))
			continue
		}
		h.Headers = append(h.Headers, x)
	}
	if _, err := compileHeader(h); err != nil {
		return nil, nil, d.errAt(at, "%s: %v", what, err)
	}
	if drop {
		return nil, warns, nil
	}
	return &h, warns, nil
}
