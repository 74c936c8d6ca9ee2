package proc

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// nodeVersionTimeout bounds `node --version`.
const nodeVersionTimeout = 10 * time.Second

// NodeVersion runs `bin --version` (bin a node binary's path) the way every
// child runs (Command, with only a system PATH), for at most ten seconds,
// and returns the version it printed ("v22.11.0") with its major and minor
// numbers.
func NodeVersion(ctx context.Context, bin string) (major, minor int, printed string, err error) {
	ctx, cancel := context.WithTimeout(ctx, nodeVersionTimeout)
	defer cancel()
	cmd := Command(ctx, syscall.SIGKILL, time.Second, bin, "--version")
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	out, err := cmd.Output()
	if err != nil {
		return 0, 0, "", fmt.Errorf("run %s --version: %w", bin, err)
	}
	printed = strings.TrimSpace(string(out))
	major, minor, ok := ParseNodeVersion(printed)
	if !ok {
		return 0, 0, printed, fmt.Errorf("read the version of %s: %q is no version", bin, printed)
	}
	return major, minor, printed, nil
}

// ParseNodeVersion reads a Node version, "v22.11.0" or "22.11.0", into its
// major and minor numbers; ok is false for anything else.
func ParseNodeVersion(v string) (major, minor int, ok bool) {
	parts := strings.SplitN(strings.TrimPrefix(strings.TrimSpace(v), "v"), ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	return major, minor, err1 == nil && err2 == nil && major >= 0 && minor >= 0
}
