// Package dotenv reads .env files, the form variables are imported in by
// `minivercel env import` and by `env import` over SSH. It only parses: the
// variables themselves are checked by the service (deploy.ValidateVar).
package dotenv

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Parse reads a .env file and returns its KEY=VALUE pairs in order: KEY=VALUE lines, blank lines and # comments
// skipped, an optional "export " prefix, values optionally in single quotes
// (literal) or double quotes (with \n, \", \\ escapes, and spanning lines).
func Parse(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(io.LimitReader(r, 4<<20))
	sc.Buffer(make([]byte, 128<<10), 128<<10)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: want KEY=VALUE", n)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case strings.HasPrefix(v, `"`):
			for !closedQuote(v) && sc.Scan() {
				n++
				v += "\n" + sc.Text()
			}
			if !closedQuote(v) {
				return nil, fmt.Errorf("line %d: unterminated double quote", n)
			}
			u, err := strconv.Unquote(v[:strings.LastIndexByte(v, '"')+1])
			if err != nil {
				// Multi-line values are not valid Go strings; unescape by hand.
				u = strings.NewReplacer(`\n`, "\n", `\"`, `"`, `\\`, `\`).Replace(v[1:strings.LastIndexByte(v, '"')])
			}
			v = u
		case strings.HasPrefix(v, `'`):
			end := strings.LastIndexByte(v, '\'')
			if end == 0 {
				return nil, fmt.Errorf("line %d: unterminated single quote", n)
			}
			v = v[1:end]
		default:
			if i := strings.Index(v, " #"); i >= 0 {
				v = strings.TrimSpace(v[:i])
			}
		}
		out = append(out, k+"="+v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read .env: %w", err)
	}
	return out, nil
}

func closedQuote(v string) bool {
	if len(v) < 2 {
		return false
	}
	for i := len(v) - 1; i > 0; i-- {
		if v[i] == '"' {
			// Count the backslashes before it: an even number means unescaped.
			bs := 0
			for j := i - 1; j >= 0 && v[j] == '\\'; j-- {
				bs++
			}
			return bs%2 == 0
		}
	}
	return false
}
