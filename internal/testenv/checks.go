package testenv

import (
	"flag"
	"strconv"
	"testing"
)

// Checks lowers rapid's number of checks for one expensive property (each
// check starts real processes or activates real builds); -rapid.checks given
// on the command line still wins. rapid reads the flag as a global: a test
// that calls Checks must not run in parallel with other rapid properties of
// its package (no t.Parallel).
func Checks(t *testing.T, n int) {
	f := flag.Lookup("rapid.checks")
	if f == nil || f.Value.String() != f.DefValue {
		return
	}
	old := f.Value.String()
	if err := f.Value.Set(strconv.Itoa(n)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Value.Set(old) })
}
