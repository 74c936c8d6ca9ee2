package nodes_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"minivercel/nodes"
)

func TestParseRoles(t *testing.T) {
	t.Parallel()
	ok := []struct {
		name, in string
		want     nodes.Roles
	}{
		{"one", "edge", nodes.Roles{nodes.Edge}},
		{"canonical order", "panel,gitd", nodes.Roles{nodes.Gitd, nodes.Panel}},
		{"spaces and case", " Worker , EDGE ", nodes.Roles{nodes.Worker, nodes.Edge}},
		{"duplicates once", "edge,edge,Edge", nodes.Roles{nodes.Edge}},
		{"empty items skipped", "gitd,,panel,", nodes.Roles{nodes.Gitd, nodes.Panel}},
		{"all", "all", nodes.AllRoles},
		{"all with others", "edge, ALL", nodes.AllRoles},
		{"every name", "gitd,worker,edge,panel", nodes.AllRoles},
	}
	for _, c := range ok {
		t.Run("ok/"+c.name, func(t *testing.T) {
			got, err := nodes.ParseRoles(c.in)
			if err != nil || !slices.Equal(got, c.want) {
				t.Fatalf("ParseRoles(%q) = %v, %v; want %v", c.in, got, err, c.want)
			}
		})
	}
	bad := []struct{ name, in, want string }{
		{"empty", "", "no role given"},
		{"only commas", " , ,", "no role given"},
		{"unknown", "gitd,builder", `unknown role "builder"`},
		{"unknown after all", "all,nope", `unknown role "nope"`},
		{"plural", "workers", `unknown role "workers"`},
	}
	for _, c := range bad {
		t.Run("bad/"+c.name, func(t *testing.T) {
			_, err := nodes.ParseRoles(c.in)
			if !errors.Is(err, nodes.ErrInvalidRoles) || !strings.Contains(err.Error(), c.want) ||
				!strings.Contains(err.Error(), "gitd, worker, edge, panel or all") {
				t.Fatalf("ParseRoles(%q) = %v; want ErrInvalidRoles saying %q and the valid names", c.in, err, c.want)
			}
		})
	}
}

func TestRolesMethods(t *testing.T) {
	t.Parallel()
	rs := nodes.Roles{nodes.Gitd, nodes.Panel}
	if !rs.Has(nodes.Panel) || rs.Has(nodes.Worker) || rs.All() || !nodes.AllRoles.All() {
		t.Fatalf("Has/All wrong for %v", rs)
	}
	if got := nodes.AllRoles.String(); got != "gitd,worker,edge,panel" {
		t.Fatalf("AllRoles.String() = %q", got)
	}
	if got := rs.Strings(); !slices.Equal(got, []string{"gitd", "panel"}) {
		t.Fatalf("Strings() = %q", got)
	}
}

// TestParseRolesRoundTrip: any non-empty set of roles, written by String,
// reads back as itself; so does the same set written in any order and case,
// with spaces and repeats.
func TestParseRolesRoundTrip(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		var set nodes.Roles
		for _, r := range nodes.AllRoles {
			if rapid.Bool().Draw(t, string(r)) {
				set = append(set, r)
			}
		}
		if len(set) == 0 {
			t.Skip("no role drawn")
		}
		got, err := nodes.ParseRoles(set.String())
		if err != nil || !slices.Equal(got, set) {
			t.Fatalf("ParseRoles(%q) = %v, %v; want %v", set.String(), got, err, set)
		}
		written := rapid.SliceOfN(rapid.SampledFrom(set), len(set), 2*len(set)).Draw(t, "order")
		names := make([]string, 0, len(written)+len(set))
		for _, r := range append(written, set...) {
			name := string(r)
			if rapid.Bool().Draw(t, "upper") {
				name = strings.ToUpper(name)
			}
			names = append(names, rapid.SampledFrom([]string{"", " "}).Draw(t, "pad")+name)
		}
		if got, err := nodes.ParseRoles(strings.Join(names, ",")); err != nil || !slices.Equal(got, set) {
			t.Fatalf("ParseRoles(%q) = %v, %v; want %v", strings.Join(names, ","), got, err, set)
		}
		if got.All() != (len(set) == len(nodes.AllRoles)) {
			t.Fatalf("%v.All() = %v", got, got.All())
		}
	})
}
