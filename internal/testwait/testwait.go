// Package testwait holds the waits tests share: each waits on a condition
// with a deadline, never a fixed sleep.
package testwait

import (
	"testing"
	"time"
)

// Recv returns the next value on ch, failing t when none arrives within ten
// seconds; what names the awaited value in the failure.
func Recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}
