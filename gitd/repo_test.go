package gitd

import (
	"os/exec"
	"testing"
)

// TestShellQuote runs the quoted word through the real /bin/sh: the hook
// script must exec exactly HookCommand whatever its path contains.
func TestShellQuote(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"/usr/local/bin/minivercel",
		"/opt/my app/minivercel",
		"/tmp/it's/minivercel",
		`/tmp/$(touch pwned)/"x"/\n/;rm -rf ~`,
		"/tmp/a\nb",
	} {
		t.Run(s, func(t *testing.T) {
			out, err := exec.Command("/bin/sh", "-c", "printf %s "+shellQuote(s)).Output()
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != s {
				t.Fatalf("sh saw %q, want %q", out, s)
			}
		})
	}
}
