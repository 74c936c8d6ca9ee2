package edge

import (
	"net/http"
	"testing"
)

// TestInternalHeadersDropped: no X-Minivercel-* header a client sends
// reaches an app; on the base domain the signed client address another
// edge adds is left for the panel's proxy to check.
func TestInternalHeadersDropped(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		base bool
		want []string
	}{
		{"site host", false, nil},
		{"base domain", true, []string{ClientHeader, ClientSigHeader}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for _, k := range []string{"x-minivercel-internal-prefix", "X-Minivercel-Anything", ClientHeader, ClientSigHeader} {
				h.Set(k, "1")
			}
			h.Set("X-Other", "kept")
			dropInternalHeaders(h, tc.base)
			for _, k := range []string{"X-Minivercel-Internal-Prefix", "X-Minivercel-Anything", ClientHeader, ClientSigHeader} {
				kept := h.Get(k) != ""
				want := false
				for _, w := range tc.want {
					want = want || w == k
				}
				if kept != want {
					t.Errorf("%s kept = %v, want %v", k, kept, want)
				}
			}
			if h.Get("X-Other") != "kept" {
				t.Error("another header was dropped")
			}
		})
	}
}
