package nodes

import (
	"strings"
	"testing"
)

func TestSanitiseHost(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, in, want string }{
		{"plain", "web1", "web1"},
		{"fqdn", "Web-1.Example.COM", "web-1-example-com"},
		{"runs of others", "a__b  c", "a-b-c"},
		{"edges", "-_host_-", "host"},
		{"unicode", "bücher", "b-cher"},
		{"empty", "", "node"},
		{"nothing usable", "---", "node"},
		{"long", strings.Repeat("ab", 30), strings.Repeat("ab", 20)},
		{"long ending in a dash", strings.Repeat("a", 39) + ".b", strings.Repeat("a", 39)},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := sanitiseHost(c.in)
			if got != c.want {
				t.Fatalf("sanitiseHost(%q) = %q, want %q", c.in, got, c.want)
			}
			if err := ValidateID(got + "-abcdef"); err != nil {
				t.Fatalf("id from %q: %v", c.in, err)
			}
		})
	}
}
