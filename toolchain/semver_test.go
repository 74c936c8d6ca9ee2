package toolchain

import (
	"fmt"
	"testing"

	"pgregory.net/rapid"
)

func TestRangeMatch(t *testing.T) {
	cases := []struct {
		rng     string
		in, out []string
	}{
		{"22", []string{"22.0.0", "22.23.5"}, []string{"21.9.9", "23.0.0"}},
		{"v22", []string{"22.1.0"}, []string{"20.0.0"}},
		{"22.x", []string{"22.0.0", "22.99.1"}, []string{"23.0.0"}},
		{">=22", []string{"22.0.0", "26.12.1"}, []string{"21.99.99"}},
		{">= 22", []string{"22.0.0"}, []string{"20.20.2"}},
		{"^20.11", []string{"20.11.0", "20.20.2"}, []string{"20.10.9", "21.0.0"}},
		{"~20.11.1", []string{"20.11.1", "20.11.9"}, []string{"20.11.0", "20.12.0"}},
		{">=18 <21", []string{"18.0.0", "20.20.2"}, []string{"21.0.0", "17.9.0"}},
		{"18 || 20", []string{"18.1.0", "20.20.2"}, []string{"19.0.0", "22.0.0"}},
		{"18.x || >=22.12", []string{"18.2.0", "22.12.0", "26.0.0"}, []string{"20.20.2", "22.11.0"}},
		{"20.1 - 22", []string{"20.1.0", "22.99.0"}, []string{"20.0.9", "23.0.0"}},
		{"20.1.0 - 22.3.4", []string{"22.3.4"}, []string{"22.3.5"}},
		{"*", []string{"0.0.1", "26.0.0"}, nil},
		{"", []string{"1.0.0"}, nil},
		{"22.1.0", []string{"22.1.0"}, []string{"22.1.1"}},
		{">20", []string{"21.0.0"}, []string{"20.99.0"}},
		{"<=20", []string{"20.99.0"}, []string{"21.0.0"}},
		{"^0.2.3", []string{"0.2.9"}, []string{"0.3.0"}},
		{"^0.0.3", []string{"0.0.3"}, []string{"0.0.4"}},
		{">=22.0.0-rc.1", []string{"22.0.0-rc.2", "22.0.0"}, []string{"23.0.0-rc.1", "22.0.0-beta"}},
		{"22", nil, []string{"22.1.0-rc.1"}},
	}
	for _, c := range cases {
		t.Run(c.rng, func(t *testing.T) {
			r, err := ParseRange(c.rng)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range c.in {
				if !r.Match(mustVersion(t, s)) {
					t.Errorf("%q does not match %s, want a match", c.rng, s)
				}
			}
			for _, s := range c.out {
				if r.Match(mustVersion(t, s)) {
					t.Errorf("%q matches %s, want no match", c.rng, s)
				}
			}
		})
	}
}

func TestParseRangeErrors(t *testing.T) {
	for _, s := range []string{"22.a", "1.2.3.4", ">=x.1", "01", "1.x.2", "lts/*", "1.2-rc", "!22", "1.2.3-"} {
		t.Run(s, func(t *testing.T) {
			if _, err := ParseRange(s); err == nil {
				t.Errorf("ParseRange(%q) succeeded, want an error", s)
			}
		})
	}
}

func TestParseNodeSpec(t *testing.T) {
	versions := []Version{{Major: 20, Minor: 20, Patch: 2}, {Major: 23}, {Major: 24, Minor: 1}, {Major: 25, Minor: 2}}
	cases := []struct {
		spec       string
		match, not string
	}{
		{"lts/*", "24.0.0", "25.2.0"},
		{"LTS/Iron", "20.1.0", "22.0.0"},
		{"node", "25.0.0", "24.1.0"},
		{"latest", "25.9.0", "23.0.0"},
		{" v22 \n", "22.3.0", "20.0.0"},
	}
	for _, c := range cases {
		t.Run(c.spec, func(t *testing.T) {
			n, err := parseNodeSpec(c.spec)
			if err != nil {
				t.Fatal(err)
			}
			r := n.rangeFor(versions)
			if !r.Match(mustVersion(t, c.match)) || r.Match(mustVersion(t, c.not)) {
				t.Errorf("%q: match(%s)=%v match(%s)=%v, want true, false", c.spec, c.match, r.Match(mustVersion(t, c.match)), c.not, r.Match(mustVersion(t, c.not)))
			}
		})
	}
	for _, bad := range []string{"", "lts/nope", "twenty"} {
		if err := CheckNodeSpec(bad); err == nil {
			t.Errorf("CheckNodeSpec(%q) succeeded, want an error", bad)
		}
	}
}

func mustVersion(t *testing.T, s string) Version {
	t.Helper()
	v, err := ParseVersion(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func genVersion() *rapid.Generator[Version] {
	return rapid.Custom(func(t *rapid.T) Version {
		return Version{
			Major: rapid.IntRange(0, 30).Draw(t, "major"),
			Minor: rapid.IntRange(0, 30).Draw(t, "minor"),
			Patch: rapid.IntRange(0, 30).Draw(t, "patch"),
		}
	})
}

// Ranges written the usual ways mean what npm documents, checked against
// comparisons of the version numbers themselves.
func TestRangeProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, v := genVersion().Draw(t, "a"), genVersion().Draw(t, "v")
		check := func(rng string, want bool) {
			r, err := ParseRange(rng)
			if err != nil {
				t.Fatalf("ParseRange(%q): %v", rng, err)
			}
			if got := r.Match(v); got != want {
				t.Fatalf("%q matches %s: %v, want %v", rng, v, got, want)
			}
		}
		ge := v.Compare(a) >= 0
		check(">="+a.String(), ge)
		check("<"+a.String(), !ge)
		check(a.String(), v == a)
		check(fmt.Sprintf("%d", a.Major), v.Major == a.Major)
		check(fmt.Sprintf("%d.x", a.Major), v.Major == a.Major)
		check(fmt.Sprintf("%d.%d", a.Major, a.Minor), v.Major == a.Major && v.Minor == a.Minor)
		check("~"+a.String(), ge && v.Major == a.Major && v.Minor == a.Minor)
		if a.Major > 0 {
			check("^"+a.String(), ge && v.Major == a.Major)
		}
		b := genVersion().Draw(t, "b")
		check(">="+a.String()+" <="+b.String(), ge && v.Compare(b) <= 0)
		check(a.String()+" || "+b.String(), v == a || v == b)
	})
}

// A version prints as it parses, and the order is a total order that
// agrees with the string form.
func TestVersionRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v := genVersion().Draw(t, "v")
		if rapid.Bool().Draw(t, "pre") {
			v.Prerelease = rapid.StringMatching(`[a-z]{1,5}(\.[0-9]{1,2})?`).Draw(t, "prerelease")
		}
		got, err := ParseVersion("v" + v.String() + "+build.7")
		if err != nil {
			t.Fatal(err)
		}
		if got != v {
			t.Fatalf("ParseVersion(%s) = %+v", v, got)
		}
		w := genVersion().Draw(t, "w")
		if v.Compare(w) != -w.Compare(v) {
			t.Fatalf("Compare(%s, %s) is not antisymmetric", v, w)
		}
	})
}

func TestNewestNodePrefersLTS(t *testing.T) {
	var versions []Version
	for _, s := range []string{"20.20.2", "22.23.5", "23.11.0", "24.3.0", "25.2.1"} {
		versions = append(versions, mustVersion(t, s))
	}
	for spec, want := range map[string]string{">=22": "24.3.0", "25": "25.2.1", ">=25": "25.2.1", "*": "24.3.0", "<24": "22.23.5"} {
		r, err := ParseRange(spec)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := newestNode(versions, r); !ok || got.String() != want {
			t.Errorf("%q picks %s, want %s", spec, got, want)
		}
	}
}

// Whatever a project writes in .nvmrc or engines.node, parsing it returns
// a range or an error, never a panic, and a range answers for any version.
func TestParseAnything(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		spec := rapid.OneOf(
			rapid.String(),
			rapid.StringMatching(`[v<>=~^ |*x.\-0-9a-z]{0,24}`),
		).Draw(t, "spec")
		if r, err := ParseRange(spec); err == nil {
			r.Match(genVersion().Draw(t, "v"))
		}
		if n, err := parseNodeSpec(spec); err == nil {
			n.rangeFor([]Version{{Major: 22}, {Major: 25}}).Match(genVersion().Draw(t, "w"))
		}
	})
}
