package schema

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/idna"
)

// CertStatus is what the edge last learnt about a domain's TLS certificate:
// pending (none asked for yet, or being ordered), issued, failed.
type CertStatus string

// The certificate statuses.
const (
	CertPending CertStatus = "pending"
	CertIssued  CertStatus = "issued"
	CertFailed  CertStatus = "failed"
)

// String returns the status as stored.
func (s CertStatus) String() string { return string(s) }

// Valid reports whether s is one of the certificate statuses.
func (s CertStatus) Valid() bool {
	return slices.Contains([]CertStatus{CertPending, CertIssued, CertFailed}, s)
}

// Domain is a custom host name a project is served at.
type Domain struct {
	ID            int64
	ProjectID     int64
	ProjectName   string
	Name          string // lowercase ASCII (IDNs as punycode), no trailing dot
	CreatedAt     time.Time
	CertStatus    CertStatus
	CertError     string     // why the last certificate attempt failed; "" otherwise
	CertCheckedAt *time.Time // when CertStatus was last set; nil before
}

const (
	maxDomainLen = 253
	maxLabelLen  = 63
	// maxCertErrorLen bounds a stored certificate error: CA problem documents
	// can be long, and the panel shows one line.
	maxCertErrorLen = 1000
)

// ValidateDomain checks a custom domain a user typed and returns it in the
// form stored and matched everywhere: IDNA-mapped to ASCII (punycode) with
// the lookup profile, lowercase, without a trailing dot. baseDomain is the
// platform's own domain: it and every host under it are refused, because
// those hosts route to the platform's projects and panel, and a custom domain
// there would let one project take over another's (or the panel's) host and
// certificate. allowWildcard permits one leading "*." label.
//
// IP addresses are refused in every spelling a browser accepts as one
// (dotted, bracketed IPv6, and names whose last label is a number, which the
// URL standard parses as IPv4): certificates and routing here are for names.
//
// Errors wrap ErrInvalid and say what is wrong; they are safe to show to the
// user who typed the name.
func ValidateDomain(name, baseDomain string, allowWildcard bool) (string, error) {
	orig := name
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%w: domain %.80q: %s", ErrInvalid, orig, why)
	}
	name = strings.TrimSpace(name)
	if name == "" {
		return bad("the name is empty")
	}
	if h, ok := strings.CutPrefix(name, "["); ok && strings.HasSuffix(h, "]") {
		name = strings.TrimSuffix(h, "]")
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return bad("an IP address cannot be a domain")
	}
	name = strings.TrimSuffix(name, ".")
	wildcard := false
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		if !allowWildcard {
			return bad("wildcard domains are not allowed")
		}
		wildcard, name = true, rest
	}
	if strings.Contains(name, "*") {
		return bad("'*' is allowed only as the whole first label (*.example.com)")
	}
	ascii, err := idna.Lookup.ToASCII(name)
	if err != nil {
		return bad("not a valid internationalised domain name")
	}
	ascii = strings.ToLower(ascii)
	if wildcard {
		ascii = "*." + ascii
	}
	if len(ascii) > maxDomainLen {
		return bad(fmt.Sprintf("at most %d characters are allowed, got %d", maxDomainLen, len(ascii)))
	}
	labels := strings.Split(ascii, ".")
	if len(labels) < 2 {
		return bad("a domain needs at least two labels, like example.com")
	}
	for i, l := range labels {
		if i == 0 && wildcard {
			continue
		}
		if why := checkLabel(l); why != "" {
			return bad(why)
		}
	}
	if last := labels[len(labels)-1]; numericLabel(last) {
		// The URL standard reads a host whose last label is a number
		// (decimal, 0x hex or octal) as an IPv4 address: 127.1, 0x7f.1.
		return bad("a name ending in a number is read as an IP address")
	}
	if base := strings.TrimSuffix(strings.ToLower(baseDomain), "."); base != "" {
		suffix := ascii
		if wildcard {
			suffix = strings.TrimPrefix(ascii, "*.")
			// *.example.com covers apps.example.com when that is the base.
			if _, parent, ok := strings.Cut(base, "."); ok && parent == suffix {
				return bad("it would cover the platform's domain " + base)
			}
		}
		if suffix == base || strings.HasSuffix(suffix, "."+base) {
			return bad("hosts under " + base + " belong to the platform")
		}
	}
	return ascii, nil
}

// checkLabel applies the LDH rule to one label: 1-63 letters, digits and
// hyphens, not starting or ending with a hyphen. It returns why a label is
// refused, or "".
func checkLabel(l string) string {
	if l == "" {
		return "empty label (two dots in a row, or a leading dot)"
	}
	if len(l) > maxLabelLen {
		return fmt.Sprintf("a label has at most %d characters, got %d", maxLabelLen, len(l))
	}
	if l[0] == '-' || l[len(l)-1] == '-' {
		return fmt.Sprintf("label %q starts or ends with '-'", l)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Sprintf("label %q may hold only letters, digits and '-'", l)
		}
	}
	return ""
}

// numericLabel reports a label the URL standard's IPv4 parser takes as a
// number: all decimal digits, or 0x followed by hex digits.
func numericLabel(l string) bool {
	digits := l
	hex := false
	if rest, ok := strings.CutPrefix(l, "0x"); ok {
		digits, hex = rest, true
	}
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if !(c >= '0' && c <= '9' || hex && c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

const domainCols = `d.id, d.project_id, p.name AS project_name, d.name, d.created_at, d.cert_status, d.cert_error, d.cert_checked_at`

// AddDomain attaches a domain, already normalised by ValidateDomain, to a
// project. Adding a domain the project already has returns it unchanged. A
// domain belongs to one project only: when another project has it the error
// wraps ErrConflict and does not name that project, which may belong to
// someone else.
func (s *Store) AddDomain(ctx context.Context, projectID int64, name string) (Domain, error) {
	// Two rounds: a concurrent RemoveDomain may delete the row between the
	// refused insert and the read.
	for range 2 {
		d, err := one[Domain](ctx, s.db, `WITH d AS (
			INSERT INTO domains (project_id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING *)
			SELECT `+domainCols+` FROM d JOIN projects p ON p.id = d.project_id`, projectID, name)
		if err == nil {
			return d, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return Domain{}, fmt.Errorf("add domain %s: %w", name, err)
		}
		d, err = one[Domain](ctx, s.db, `SELECT `+domainCols+` FROM domains d JOIN projects p ON p.id = d.project_id
			WHERE d.name = $1`, name)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return Domain{}, fmt.Errorf("add domain %s: %w", name, err)
		}
		if d.ProjectID != projectID {
			return Domain{}, fmt.Errorf("add domain %s: another project has it: %w", name, ErrConflict)
		}
		return d, nil
	}
	return Domain{}, fmt.Errorf("add domain %s: it changed while being added: %w", name, ErrConflict)
}

// RemoveDomain detaches a domain from a project; a domain the project does
// not have is ErrNotFound, also when another project has it.
func (s *Store) RemoveDomain(ctx context.Context, projectID int64, name string) error {
	tag, err := s.db.Exec(ctx, `DELETE FROM domains WHERE project_id = $1 AND name = $2`, projectID, name)
	if err != nil {
		return fmt.Errorf("remove domain %s: %w", name, MapError(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("remove domain %s: %w", name, ErrNotFound)
	}
	return nil
}

// ListDomains returns a project's domains by name.
func (s *Store) ListDomains(ctx context.Context, projectID int64) ([]Domain, error) {
	return many[Domain](ctx, s.db, `SELECT `+domainCols+` FROM domains d JOIN projects p ON p.id = d.project_id
		WHERE d.project_id = $1 ORDER BY d.name`, projectID)
}

// matchDomain is the WHERE clause matching a host to its domain row: the
// exact name, else the wildcard one label up (*.example.com matches
// a.example.com, not a.b.example.com nor example.com), exact first.
const matchDomain = `(d.name = $1 OR (strpos($1, '.') > 0 AND d.name = '*.' || substr($1, strpos($1, '.') + 1)))`

// DomainProject returns the name of the project serving host (lowercase, no
// port, no trailing dot) through a custom domain, or ErrNotFound.
func (s *Store) DomainProject(ctx context.Context, host string) (string, error) {
	var project string
	err := s.db.QueryRow(ctx, `SELECT p.name FROM domains d JOIN projects p ON p.id = d.project_id
		WHERE `+matchDomain+` ORDER BY d.name = $1 DESC LIMIT 1`, host).Scan(&project)
	if err != nil {
		return "", fmt.Errorf("find project of domain %s: %w", host, MapError(err))
	}
	return project, nil
}

// DomainKnown reports whether host is a custom domain of some project, with
// the same matching as DomainProject. The edge's certificate policy asks it:
// an error must deny, never allow.
func (s *Store) DomainKnown(ctx context.Context, host string) (bool, error) {
	var known bool
	err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM domains d WHERE `+matchDomain+`)`, host).Scan(&known)
	if err != nil {
		return false, fmt.Errorf("look up domain %s: %w", host, MapError(err))
	}
	return known, nil
}

// SetDomainCertStatus records what the edge learnt about the certificate of
// domain name: status, and for CertFailed the reason (certErr, stored
// shortened to one line). A name that is no domain (a project's own host)
// changes nothing and is no error.
func (s *Store) SetDomainCertStatus(ctx context.Context, name string, status CertStatus, certErr error) error {
	if !status.Valid() {
		return fmt.Errorf("set certificate status of %s to %q: %w", name, status, ErrInvalid)
	}
	msg := ""
	if certErr != nil {
		msg = strings.Join(strings.Fields(certErr.Error()), " ")
		if len(msg) > maxCertErrorLen {
			msg = strings.ToValidUTF8(msg[:maxCertErrorLen], "") + "…"
		}
	}
	_, err := s.db.Exec(ctx, `UPDATE domains SET cert_status = $2, cert_error = $3, cert_checked_at = now()
		WHERE name = $1`, name, status, msg)
	if err != nil {
		return fmt.Errorf("set certificate status of %s: %w", name, MapError(err))
	}
	return nil
}
