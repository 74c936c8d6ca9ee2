package schema

import "minivercel/hosts"

// ErrInvalidName is wrapped by every error ValidateProjectName returns.
var ErrInvalidName = hosts.ErrInvalidProject

// ValidateProjectName reports whether name may name a project (see
// hosts.ValidateProject: the name is a DNS label, a path element and a shell
// word). The database's CHECK constraint holds the same rule.
func ValidateProjectName(name string) error { return hosts.ValidateProject(name) }
