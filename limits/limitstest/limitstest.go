// Package limitstest gives tests of other packages a limits.Manager of
// their own on this machine's cgroups.
package limitstest

import (
	"testing"

	"minivercel/limits"
)

// Manager returns a Manager on the machine's cgroups for the test alone,
// skipping the test where no cgroup is writable (not root, or a container
// without them). When the test ends its groups are removed, and a group
// left behind fails the test.
func Manager(t testing.TB) *limits.Manager {
	t.Helper()
	m := limits.New(limits.Config{ID: t.TempDir()})
	if m.Mode() == limits.ModeRlimit {
		t.Skip("no writable cgroup here")
	}
	t.Cleanup(func() {
		if names, err := m.Groups(); err != nil || len(names) > 0 {
			t.Errorf("cgroups left at the end of the test: %v, %v", names, err)
		}
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}
