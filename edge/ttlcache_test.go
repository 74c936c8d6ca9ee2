package edge

import (
	"fmt"
	"testing"
	"time"
)

func TestTTLCacheExpiresAndStaysBounded(t *testing.T) {
	t.Parallel()
	c := newTTLCache[int](3)
	now := time.Unix(1000, 0)
	c.put("a", 1, now, time.Second)
	if v, ok := c.get("a", now.Add(999*time.Millisecond)); !ok || v != 1 {
		t.Fatalf("get before expiry = %d, %v", v, ok)
	}
	if _, ok := c.get("a", now.Add(time.Second)); ok {
		t.Fatal("an entry outlived its ttl")
	}
	// Full: expired entries make room, live ones stay.
	c.put("b", 2, now, time.Hour)
	c.put("c", 3, now, time.Hour)
	c.put("d", 4, now.Add(2*time.Second), time.Hour) // "a" has expired by then
	if c.len() != 3 {
		t.Fatalf("len = %d, want 3 (the expired entry dropped)", c.len())
	}
	if v, ok := c.get("b", now); !ok || v != 2 {
		t.Fatalf("a live entry was dropped: %d, %v", v, ok)
	}
	// Full of live entries: everything goes rather than growing.
	for i := range 10 {
		c.put(fmt.Sprint("x", i), i, now, time.Hour)
		if c.len() > 3 {
			t.Fatalf("len %d beyond the bound", c.len())
		}
	}
}
