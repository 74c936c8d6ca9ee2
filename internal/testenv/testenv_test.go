package testenv

import (
	"os"
	"testing"
)

func TestStrict(t *testing.T) {
	for _, tc := range []struct {
		name, strict, ci string // "-" leaves the variable unset
		want             bool
	}{
		{"nothing set", "-", "-", false},
		{"strict", "1", "-", true},
		{"ci", "-", "true", true},
		{"strict off in ci", "0", "true", false},
		{"ci false", "-", "false", false},
		{"garbage", "yes please", "-", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setOrUnset(t, StrictEnv, tc.strict)
			setOrUnset(t, "CI", tc.ci)
			if got := Strict(); got != tc.want {
				t.Fatalf("Strict() = %v, want %v", got, tc.want)
			}
		})
	}
}

// setOrUnset sets the variable, or unsets it for "-"; either way it is
// restored when the test ends.
func setOrUnset(t *testing.T, name, value string) {
	t.Setenv(name, value)
	if value == "-" {
		os.Unsetenv(name)
	}
}
