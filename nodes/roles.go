package nodes

import (
	"fmt"
	"slices"
	"strings"
)

// Role is one part of the server a node may run.
type Role string

// The roles, in their canonical order.
const (
	// Gitd takes git pushes over SSH and HTTP.
	Gitd Role = "gitd"
	// Worker runs builds from the queue.
	Worker Role = "worker"
	// Edge serves the sites and their certificates.
	Edge Role = "edge"
	// Panel serves the web panel and the JSON API.
	Panel Role = "panel"
)

// AllRoles is every role in the canonical order.
var AllRoles = Roles{Gitd, Worker, Edge, Panel}

// allWord is what ParseRoles reads as every role.
const allWord = "all"

// Valid reports whether r is one of AllRoles.
func (r Role) Valid() bool { return slices.Contains(AllRoles, r) }

// String returns the role's name.
func (r Role) String() string { return string(r) }

// Roles is a set of roles, kept without duplicates in the canonical order
// of AllRoles, so two equal sets are equal slices. ParseRoles makes them.
type Roles []Role

// ParseRoles reads a comma-separated list such as "gitd, Edge,panel": names
// are trimmed and lowercased, duplicates count once, and "all" means every
// role. An empty list, or an unknown name, is an error wrapping
// ErrInvalidRoles that lists the valid names.
func ParseRoles(s string) (Roles, error) {
	seen := map[Role]bool{}
	for _, part := range strings.Split(s, ",") {
		name := strings.ToLower(strings.TrimSpace(part))
		switch r := Role(name); {
		case name == "":
		case name == allWord:
			for _, r := range AllRoles {
				seen[r] = true
			}
		case r.Valid():
			seen[r] = true
		default:
			return nil, fmt.Errorf("%w: unknown role %q: the roles are %s", ErrInvalidRoles, name, validNames())
		}
	}
	var out Roles
	for _, r := range AllRoles {
		if seen[r] {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no role given: name one or more of %s", ErrInvalidRoles, validNames())
	}
	return out, nil
}

// validNames lists what ParseRoles accepts, for its messages.
func validNames() string { return strings.Join(AllRoles.Strings(), ", ") + " or " + allWord }

// Has reports whether the set holds r.
func (rs Roles) Has(r Role) bool { return slices.Contains(rs, r) }

// All reports whether the set holds every role.
func (rs Roles) All() bool {
	for _, r := range AllRoles {
		if !rs.Has(r) {
			return false
		}
	}
	return true
}

// String returns the set as ParseRoles reads it: the names in the canonical
// order, separated by commas.
func (rs Roles) String() string { return strings.Join(rs.Strings(), ",") }

// Strings returns the names of the roles, as the nodes table stores them.
func (rs Roles) Strings() []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}
