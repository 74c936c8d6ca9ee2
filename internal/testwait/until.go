package testwait

import (
	"testing"
	"time"
)

// Until polls cond until it holds, failing t when it does not within ten
// seconds; what names the awaited condition in the failure. It is for states
// that send no signal (a lock another session waits for, a count of callers
// blocked in a store).
func Until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
