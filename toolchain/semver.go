package toolchain

import (
	"cmp"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Version is a semantic version: major.minor.patch with an optional
// prerelease ("1.0.0-rc.1"). Build metadata ("+sha.abc") is dropped when
// parsing, as semver says it does not take part in precedence.
type Version struct {
	Major, Minor, Patch int
	// Prerelease is the part after "-", without it; empty for a release.
	Prerelease string
}

// maxComponent bounds a version number: registries never publish anything
// near it, and it keeps arithmetic (a range's upper bound) from overflowing.
const maxComponent = 1 << 30

var prereleaseRe = regexp.MustCompile(`^[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*$`)

// ParseVersion parses a full version "1.2.3", optionally prefixed by "v"
// and followed by "-prerelease" and "+build".
func ParseVersion(s string) (Version, error) {
	v, n, err := parsePartial(s)
	if err != nil {
		return Version{}, err
	}
	if n < 3 {
		return Version{}, fmt.Errorf("parse version %q: want major.minor.patch", s)
	}
	return v, nil
}

// parsePartial parses "1", "1.2", "1.2.3", "1.x", "1.2.*"… and returns the
// version and how many numeric components were given before the first
// wildcard (0 for "*" or "x").
func parsePartial(s string) (Version, int, error) {
	orig := s
	s = strings.TrimPrefix(strings.TrimPrefix(s, "v"), "=")
	s, _, _ = strings.Cut(s, "+")
	s, pre, hasPre := strings.Cut(s, "-")
	if hasPre && !prereleaseRe.MatchString(pre) {
		return Version{}, 0, fmt.Errorf("parse version %q: bad prerelease %q", orig, pre)
	}
	parts := strings.Split(s, ".")
	if len(parts) > 3 || s == "" {
		return Version{}, 0, fmt.Errorf("parse version %q: want at most major.minor.patch", orig)
	}
	var nums [3]int
	n := 0
	wild := false
	for i, p := range parts {
		if p == "x" || p == "X" || p == "*" {
			wild = true
			continue
		}
		if wild {
			return Version{}, 0, fmt.Errorf("parse version %q: a number after a wildcard", orig)
		}
		num, err := strconv.Atoi(p)
		if err != nil || num < 0 || num > maxComponent || (len(p) > 1 && p[0] == '0') || strings.HasPrefix(p, "+") {
			return Version{}, 0, fmt.Errorf("parse version %q: %q is not a version number", orig, p)
		}
		nums[i] = num
		n = i + 1
	}
	if hasPre && n < 3 {
		return Version{}, 0, fmt.Errorf("parse version %q: a prerelease needs major.minor.patch", orig)
	}
	return Version{Major: nums[0], Minor: nums[1], Patch: nums[2], Prerelease: pre}, n, nil
}

// String returns "1.2.3" or "1.2.3-rc.1".
func (v Version) String() string {
	s := strconv.Itoa(v.Major) + "." + strconv.Itoa(v.Minor) + "." + strconv.Itoa(v.Patch)
	if v.Prerelease != "" {
		s += "-" + v.Prerelease
	}
	return s
}

// Compare orders versions by semver precedence: -1, 0 or +1.
func (v Version) Compare(w Version) int {
	if c := cmp.Compare(v.Major, w.Major); c != 0 {
		return c
	}
	if c := cmp.Compare(v.Minor, w.Minor); c != 0 {
		return c
	}
	if c := cmp.Compare(v.Patch, w.Patch); c != 0 {
		return c
	}
	return comparePrerelease(v.Prerelease, w.Prerelease)
}

func comparePrerelease(a, b string) int {
	switch {
	case a == b:
		return 0
	case a == "":
		return 1 // a release sorts after its prereleases
	case b == "":
		return -1
	}
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		an, aerr := strconv.Atoi(as[i])
		bn, berr := strconv.Atoi(bs[i])
		var c int
		switch {
		case aerr == nil && berr == nil:
			c = cmp.Compare(an, bn)
		case aerr == nil:
			c = -1 // numeric identifiers sort before alphanumeric ones
		case berr == nil:
			c = 1
		default:
			c = strings.Compare(as[i], bs[i])
		}
		if c != 0 {
			return c
		}
	}
	return cmp.Compare(len(as), len(bs))
}

// op is a comparison of a comparator.
type op int

const (
	opEQ op = iota
	opLT
	opLE
	opGT
	opGE
)

type comparator struct {
	op op
	v  Version
}

func (c comparator) matches(v Version) bool {
	d := v.Compare(c.v)
	switch c.op {
	case opLT:
		return d < 0
	case opLE:
		return d <= 0
	case opGT:
		return d > 0
	case opGE:
		return d >= 0
	}
	return d == 0
}

// Range is a set of versions written the way package.json's engines and
// npm write them: "22", "22.x", "^20.11", "~1.2.3", ">=18 <23",
// "1.2 - 2.3", "18 || 20", "*". A prerelease version matches only a
// comparator that names a prerelease of the same major.minor.patch, as in
// npm.
type Range struct {
	text string
	any  [][]comparator // a version matches when every comparator of one set does
}

// String returns the range as it was written.
func (r Range) String() string { return r.text }

// spaceAfterOp joins an operator to its version: ">= 18" is ">=18".
var spaceAfterOp = regexp.MustCompile(`([<>=~^]+)\s+`)

// ParseRange parses a version range; see Range.
func ParseRange(s string) (Range, error) {
	r := Range{text: s}
	for _, set := range strings.Split(s, "||") {
		set = strings.TrimSpace(spaceAfterOp.ReplaceAllString(strings.TrimSpace(set), "$1"))
		var cs []comparator
		var err error
		if lo, hi, ok := strings.Cut(set, " - "); ok {
			cs, err = hyphenRange(strings.TrimSpace(lo), strings.TrimSpace(hi))
		} else {
			for _, tok := range strings.Fields(set) {
				var c []comparator
				if c, err = parseComparator(tok); err != nil {
					break
				}
				cs = append(cs, c...)
			}
		}
		if err != nil {
			return Range{}, fmt.Errorf("parse range %q: %w", s, err)
		}
		r.any = append(r.any, cs)
	}
	return r, nil
}

// Match reports whether v is in the range.
func (r Range) Match(v Version) bool {
	for _, set := range r.any {
		if matchSet(set, v) {
			return true
		}
	}
	return false
}

func matchSet(set []comparator, v Version) bool {
	for _, c := range set {
		if !c.matches(v) {
			return false
		}
	}
	if v.Prerelease == "" {
		return true
	}
	for _, c := range set {
		if c.v.Prerelease != "" && c.v.Major == v.Major && c.v.Minor == v.Minor && c.v.Patch == v.Patch {
			return true
		}
	}
	return false
}

// next returns the first version above every version that shares v's first
// n components: next(1.2.x, 2) is 1.3.0.
func next(v Version, n int) Version {
	switch n {
	case 1:
		return Version{Major: v.Major + 1}
	case 2:
		return Version{Major: v.Major, Minor: v.Minor + 1}
	}
	return Version{Major: v.Major, Minor: v.Minor, Patch: v.Patch + 1}
}

func hyphenRange(lo, hi string) ([]comparator, error) {
	lv, _, err := parsePartial(lo)
	if err != nil {
		return nil, err
	}
	hv, hn, err := parsePartial(hi)
	if err != nil {
		return nil, err
	}
	cs := []comparator{{opGE, lv}}
	switch {
	case hn == 0:
	case hn < 3:
		cs = append(cs, comparator{opLT, next(hv, hn)})
	default:
		cs = append(cs, comparator{opLE, hv})
	}
	return cs, nil
}

// parseComparator turns one token into comparators, desugaring the
// partial, caret and tilde forms into bounds.
func parseComparator(tok string) ([]comparator, error) {
	prefix := tok[:len(tok)-len(strings.TrimLeft(tok, "<>=~^"))]
	v, n, err := parsePartial(tok[len(prefix):])
	if err != nil {
		return nil, err
	}
	if n == 0 {
		switch prefix {
		case "", "=", "^", "~", ">=", "<=":
			return nil, nil // any version
		case ">", "<":
			return []comparator{{opLT, Version{}}}, nil // none
		}
	}
	switch prefix {
	case "", "=":
		if n == 3 {
			return []comparator{{opEQ, v}}, nil
		}
		return []comparator{{opGE, v}, {opLT, next(v, n)}}, nil
	case "^":
		upper := 1 // the first non-zero component given stays fixed
		switch {
		case v.Major != 0 || n == 1:
		case v.Minor != 0 || n == 2:
			upper = 2
		default:
			upper = 3
		}
		return []comparator{{opGE, v}, {opLT, next(v, upper)}}, nil
	case "~", "~>":
		return []comparator{{opGE, v}, {opLT, next(v, min(n, 2))}}, nil
	case ">=":
		return []comparator{{opGE, v}}, nil
	case ">":
		if n < 3 {
			return []comparator{{opGE, next(v, n)}}, nil
		}
		return []comparator{{opGT, v}}, nil
	case "<":
		return []comparator{{opLT, v}}, nil
	case "<=":
		if n < 3 {
			return []comparator{{opLT, next(v, n)}}, nil
		}
		return []comparator{{opLE, v}}, nil
	}
	return nil, fmt.Errorf("unknown operator %q in %q", prefix, tok)
}
