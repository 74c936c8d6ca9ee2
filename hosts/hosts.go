// Package hosts is minivercel's naming scheme for the hosts it serves: it
// builds and parses every form (the base domain, a project's production host,
// one build's host, a branch's host, the /preview/<id>/ path form and custom
// domains) and holds the rules for the names inside them. It is the only place
// that knows the "--" separator, so the server, the push log, the panel and the
// certificate policy can never disagree about what a host means.
//
//	<base>                          the panel and API
//	<project>.<base>                production
//	<project>--<slug>.<base>        exactly one build (slug: 10-16 of [a-z0-9])
//	<project>--git-<branch>.<base>  the latest succeeded build of a branch
//	<base>/preview/<build id>/      one build under a path prefix
//	anything else                   a custom domain, if the database knows it
//
// Project names never contain "--" and build slugs never contain "-", so the
// first "--" in a label splits it unambiguously and "git-" marks a branch: no
// project can shadow another project's build or branch host. A label is at
// most 63 characters (DNS's limit): a project name longer than 45 leaves no
// room for a build's host, which then does not resolve; its production host
// and custom domains still do.
package hosts

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Kind is what a host names.
type Kind int

// The kinds of host.
const (
	// Unknown is a host under the base domain that no scheme form matches,
	// or a name that cannot be a DNS name at all.
	Unknown Kind = iota
	// Base is the base domain itself: the panel and the API.
	Base
	// Production is <project>.<base>.
	Production
	// Build is <project>--<slug>.<base>.
	Build
	// Branch is <project>--git-<branch slug>.<base>.
	Branch
	// Custom is a well-formed host outside the base domain: a custom domain
	// if the database knows it.
	Custom
)

// String names the kind for logs.
func (k Kind) String() string {
	switch k {
	case Base:
		return "base"
	case Production:
		return "production"
	case Build:
		return "build"
	case Branch:
		return "branch"
	case Custom:
		return "custom"
	}
	return "unknown"
}

// Host is a parsed host name.
type Host struct {
	Kind Kind
	// Project is the project a Production, Build or Branch host names.
	Project string
	// Slug is a Build host's build slug, or a Branch host's branch slug.
	Slug string
	// Name is the normalised host (lowercase, no port, no trailing dot).
	Name string
}

const (
	sep       = "--"
	branchTag = "git-"
	// PreviewPrefix starts the path form on the base domain.
	PreviewPrefix = "/preview/"
)

// Scheme builds and parses the hosts under one base domain. The zero Scheme
// is not usable: use New.
type Scheme struct {
	base string
}

// New returns the scheme for a base domain ("localhost", "example.com"); the
// domain is lowercased and a trailing dot dropped.
func New(base string) Scheme {
	return Scheme{base: strings.TrimSuffix(strings.ToLower(strings.TrimSpace(base)), ".")}
}

// Base returns the base domain.
func (s Scheme) Base() string { return s.base }

// Production returns a project's production host.
func (s Scheme) Production(project string) string { return project + "." + s.base }

// Build returns the host that serves exactly one build.
func (s Scheme) Build(project, slug string) string { return project + sep + slug + "." + s.base }

// Branch returns the host that follows a branch's latest build, or "" when
// the branch has no slug in it (see BranchSlugIn).
func (s Scheme) Branch(project, branch string) string {
	slug := BranchSlugIn(project, branch)
	if slug == "" {
		return ""
	}
	return project + sep + branchTag + slug + "." + s.base
}

// maxLabel is DNS's limit on one label: a longer host cannot resolve.
const maxLabel = 63

// BranchSlugIn is a branch's slug as its host under project carries it:
// BranchSlug, shortened so that the whole label fits DNS's 63 characters. It
// is "" for a branch without a letter or digit, or when the project's name
// leaves no room.
func BranchSlugIn(project, branch string) string {
	slug := BranchSlug(branch)
	if room := maxLabel - len(project) - len(sep+branchTag); len(slug) > room {
		slug = strings.TrimRight(slug[:max(room, 0)], "-")
	}
	return slug
}

// Parse says what a host names. It accepts a Host header as sent (any case,
// a port, a trailing dot) and checks the shape of every name in it, so that a
// name that cannot exist never reaches a database lookup.
func (s Scheme) Parse(host string) Host {
	name := Normalize(host)
	h := Host{Kind: Unknown, Name: name}
	if name == s.base {
		h.Kind = Base
		return h
	}
	label, under := strings.CutSuffix(name, "."+s.base)
	if !under {
		if ValidDomainShape(name) {
			h.Kind = Custom
		}
		return h
	}
	if label == "" || len(label) > maxLabel || strings.Contains(label, ".") {
		return h
	}
	project, rest, found := strings.Cut(label, sep)
	if projectProblem(project) != "" {
		return h
	}
	h.Project = project
	switch branch, isBranch := strings.CutPrefix(rest, branchTag); {
	case !found:
		h.Kind = Production
	case isBranch && ValidBranchSlug(branch):
		h.Kind, h.Slug = Branch, branch
	case !isBranch && ValidSlug(rest):
		h.Kind, h.Slug = Build, rest
	default:
		h.Project = ""
	}
	return h
}

// PreviewPath returns the path prefix that serves one build on the base
// domain, without a trailing slash: "/preview/12".
func PreviewPath(buildID int64) string {
	return PreviewPrefix + strconv.FormatInt(buildID, 10)
}

// ParsePreviewPath splits a request path of the path form into the build id
// and the rest of the path (which starts with "/" or is empty). ok is false
// for any other path, and for an id that is not a positive decimal number
// without leading zeros.
func ParsePreviewPath(path string) (id int64, rest string, ok bool) {
	after, ok := strings.CutPrefix(path, PreviewPrefix)
	if !ok {
		return 0, "", false
	}
	idText, rest, _ := strings.Cut(after, "/")
	id, err := strconv.ParseInt(idText, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != idText {
		return 0, "", false
	}
	if rest != "" || strings.Contains(after, "/") {
		rest = "/" + rest
	}
	return id, rest, true
}

// Normalize lowercases a Host header and strips a port and a trailing dot,
// without allocating when it is already in that form.
func Normalize(h string) string {
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i >= 0 {
			h = h[:i+1]
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	for i := 0; i < len(h); i++ {
		if c := h[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}

// ErrInvalidProject is wrapped by every error ValidateProject returns.
var ErrInvalidProject = errors.New("invalid project name")

// MaxProjectLen is the longest project name: a project name is a DNS label,
// and labels are at most 63 bytes.
const MaxProjectLen = 63

// reserved are names that would collide with the server's own host names,
// URLs or well-known accounts if a project took them.
var reserved = map[string]bool{
	"admin": true, "api": true, "assets": true, "git": true, "healthz": true, "localhost": true,
	"mail": true, "minivercel": true, "panel": true, "preview": true, "root": true, "ssh": true,
	"static": true, "www": true,
}

// ValidateProject reports whether name may name a project. A valid name
// matches ^[a-z0-9][a-z0-9-]{0,62}$, contains no "--", does not end in "-"
// and is not reserved. Because of that alphabet a valid name is safe as a
// single path element, a DNS label and a shell word: callers rely on this to
// build <repos>/<name>.git without further checks.
//
// The returned error wraps ErrInvalidProject and says what is wrong; it is
// safe to show to the user who typed the name.
func ValidateProject(name string) error {
	switch why := projectProblem(name); why {
	case "":
		return nil
	case "empty":
		return fmt.Errorf("%w: the name is empty", ErrInvalidProject)
	case "long":
		return fmt.Errorf("%w %.20q…: at most %d characters are allowed, got %d",
			ErrInvalidProject, name, MaxProjectLen, len(name))
	default:
		return fmt.Errorf("%w %q: %s", ErrInvalidProject, name, why)
	}
}

// projectProblem says what is wrong with a project name, "" for nothing. It
// does not allocate: Parse runs it for every request's host, scanners' too.
func projectProblem(name string) string {
	if name == "" {
		return "empty"
	}
	if len(name) > MaxProjectLen {
		return "long"
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0:
		case c == '-':
			return "it must start with a lowercase letter or a digit"
		default:
			return "only lowercase letters, digits and '-' are allowed"
		}
	}
	switch {
	case strings.Contains(name, sep):
		return `it must not contain "--"`
	case strings.HasSuffix(name, "-"):
		return "it must not end with '-'"
	case reserved[name]:
		return "the name is reserved"
	}
	return ""
}

// MinSlug and MaxSlug bound a build slug's length.
const (
	MinSlug = 10
	MaxSlug = 16
)

// ValidSlug reports whether s has a build slug's shape: MinSlug to MaxSlug of
// [a-z0-9].
func ValidSlug(s string) bool {
	if len(s) < MinSlug || len(s) > MaxSlug {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// MaxBranchSlug bounds a branch slug; BranchSlugIn shortens it further when
// a long project name leaves less room in the label.
const MaxBranchSlug = 40

// BranchSlug is how a branch appears in its host: Slug(branch,
// MaxBranchSlug). Two branches with the same slug share the host (the latest
// build wins). A branch without a letter or digit has the empty slug, and no
// host.
func BranchSlug(branch string) string { return Slug(branch, MaxBranchSlug) }

// Slug turns any name into a piece of a DNS label: lowercase, every run of
// characters other than a-z and 0-9 turned into one "-", trimmed of "-", at
// most max characters. A name without a letter or digit has the empty slug.
func Slug(name string, max int) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	s := strings.TrimRight(b.String(), "-")
	if len(s) > max {
		s = strings.TrimRight(s[:max], "-")
	}
	return s
}

// ValidBranchSlug reports whether s is a possible output of BranchSlug: 1 to
// MaxBranchSlug of [a-z0-9-], no "-" at either end, no "--".
func ValidBranchSlug(s string) bool {
	return s != "" && len(s) <= MaxBranchSlug && validLabel(s) && !strings.Contains(s, sep)
}

// ValidDomainShape is a cheap shape check before a custom-domain lookup: a
// dotted DNS name of [a-z0-9-] labels, at most 253 long, whose last label is
// not all digits (no top-level domain is, so IPv4 addresses are out).
func ValidDomainShape(h string) bool {
	if len(h) > 253 || !strings.Contains(h, ".") {
		return false
	}
	if tld := h[strings.LastIndexByte(h, '.')+1:]; strings.Trim(tld, "0123456789") == "" {
		return false
	}
	for rest := h; ; {
		label, more, dotted := strings.Cut(rest, ".")
		if label == "" || len(label) > maxLabel || !validLabel(label) {
			return false
		}
		if !dotted {
			return true
		}
		rest = more
	}
}

// validLabel: [a-z0-9-], not starting or ending with "-".
func validLabel(s string) bool {
	if s == "" || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
