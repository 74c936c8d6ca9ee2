package testenv

import (
	"os"
	"testing"
)

// ShortDir returns a new directory in the system temp directory, removed when
// the test ends. Its path is short, unlike t.TempDir's: a unix socket's path
// must stay under 108 bytes (the private PostgreSQL's, the hook server's),
// and its parents are not 0700, so another user (the build user, an app's)
// can reach into it once it is made traversable.
func ShortDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
