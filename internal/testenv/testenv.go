// Package testenv decides what a test does when the machine lacks something
// the test needs (root, bubblewrap, Chromium, the npm registry). Locally it
// skips, with a message that says what is missing; in CI it fails, so that a
// green run cannot hide a whole area that never ran. It also bounds what an
// expensive property test may cost (Checks).
package testenv

import (
	"fmt"
	"os"
	"strconv"
	"testing"
)

// StrictEnv names the variable that turns a missing precondition into a
// failure: .ci/run sets it to 1 after making every precondition true. Unset,
// CI=true (which CI services set) has the same effect; set to 0, tests skip
// even in CI.
const StrictEnv = "MINIVERCEL_TEST_STRICT"

// Strict reports whether a missing precondition fails the test.
func Strict() bool {
	if v, ok := os.LookupEnv(StrictEnv); ok {
		strict, _ := strconv.ParseBool(v)
		return strict
	}
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

// Skipf skips t because the machine lacks something it needs, or fails t when
// Strict. The message says what is missing and how to get it.
func Skipf(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Strict() {
		t.Fatalf("%s (%s: a missing precondition fails the test)", msg, StrictEnv)
	}
	t.Skip(msg)
}

// NeedRoot calls Skipf unless the test runs as root; why says what needs it.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skipf(t, "needs root: %s", why)
	}
}
