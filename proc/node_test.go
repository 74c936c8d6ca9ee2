package proc

import (
	"context"
	"os/exec"
	"strings"
	"testing"
)

func TestParseNodeVersion(t *testing.T) {
	for _, c := range []struct {
		in           string
		major, minor int
		ok           bool
	}{
		{"v20.20.2", 20, 20, true},
		{"22.6.0\n", 22, 6, true},
		{"v24.1", 24, 1, true},
		{"v24", 0, 0, false},
		{"vx.1.0", 0, 0, false},
		{"v-1.2.0", 0, 0, false},
		{"", 0, 0, false},
	} {
		major, minor, ok := ParseNodeVersion(c.in)
		if ok != c.ok || ok && (major != c.major || minor != c.minor) {
			t.Errorf("ParseNodeVersion(%q) = %d, %d, %v; want %d, %d, %v", c.in, major, minor, ok, c.major, c.minor, c.ok)
		}
	}
}

func TestNodeVersion(t *testing.T) {
	bin, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	major, _, printed, err := NodeVersion(context.Background(), bin)
	if err != nil || major < 1 || !strings.HasPrefix(printed, "v") {
		t.Fatalf("NodeVersion = %d, %q, %v", major, printed, err)
	}
	if _, _, _, err := NodeVersion(context.Background(), "/bin/false"); err == nil {
		t.Fatal("a binary that fails gave a version")
	}
}
