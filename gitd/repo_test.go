package gitd

import (
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
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

// TestForcePushKeepsHistoryInTheReflog: a force-push that drops a commit
// leaves it reachable from the server's reflog, in a repository made
// before the reflog was turned on too.
func TestForcePushKeepsHistoryInTheReflog(t *testing.T) {
	t.Parallel()
	calls := make(chan pushCall, 4)
	e := newTestEnv(t, announcesBuilds(calls))
	work, first := e.workTree("hist", page("<h1>one</h1>\n"))
	if out, err := e.git(e.userKey, work, "push", e.url("hist.git"), "main"); err != nil {
		t.Fatalf("git push: %v\n%s", err, out)
	}
	<-calls
	// As if made by an older server: no reflog setting.
	bare := filepath.Join(e.reposDir, "hist.git")
	if out, err := exec.Command("git", "--git-dir", bare, "config", "--unset", "core.logAllRefUpdates").CombinedOutput(); err != nil {
		t.Fatalf("unset: %v %s", err, out)
	}
	e.mustGit(work, "commit", "-q", "--amend", "-m", "rewritten")
	if out, err := e.git(e.userKey, work, "push", "-f", e.url("hist.git"), "main"); err != nil {
		t.Fatalf("git push -f: %v\n%s", err, out)
	}
	<-calls
	if e.bareRef("hist", "main") == first {
		t.Fatal("the force-push did not move main")
	}
	e.mustGit(work, "commit", "-q", "--amend", "-m", "rewritten again")
	if out, err := e.git(e.userKey, work, "push", "-f", e.url("hist.git"), "main"); err != nil {
		t.Fatalf("git push -f: %v\n%s", err, out)
	}
	<-calls
	out, err := exec.Command("git", "--git-dir", bare, "log", "-g", "--format=%H", "refs/heads/main").CombinedOutput()
	if err != nil {
		t.Fatalf("git log -g: %v %s", err, out)
	}
	if lines := strings.Fields(string(out)); len(lines) < 2 {
		t.Fatalf("reflog of main after a force-push: %q, want the replaced commit kept", out)
	}
}

// TestOversizedPushIsRefused: a push whose pack is larger than MaxPushBytes
// is refused by git before it is stored, with a reason, and nothing is
// built; a push within the limit goes through.
func TestOversizedPushIsRefused(t *testing.T) {
	t.Parallel()
	calls := make(chan pushCall, 4)
	e := newTestEnvWith(t, announcesBuilds(calls), func(c *Config) { c.MaxPushBytes = 64 << 10 })
	noise := make([]byte, 256<<10)
	rand.NewChaCha8([32]byte{7}).Read(noise) // does not compress
	work, _ := e.workTree("big", map[string][]byte{"index.html": []byte("small"), "blob.bin": noise})
	out, err := e.git(e.userKey, work, "push", e.url("big.git"), "main")
	if err == nil || !strings.Contains(out, "pack exceeds maximum allowed size") {
		t.Fatalf("a 256 KiB push with a 64 KiB limit: %v\n%s", err, out)
	}
	if e.bareRef("big", "main") != "" {
		t.Error("the refused push moved main")
	}
	select {
	case c := <-calls:
		t.Errorf("a refused push was built: %+v", c)
	default:
	}
	small, sha := e.workTree("small", page("<h1>fits</h1>"))
	if out, err := e.git(e.userKey, small, "push", e.url("small.git"), "main"); err != nil {
		t.Fatalf("a push within the limit: %v\n%s", err, out)
	}
	<-calls
	if e.bareRef("small", "main") != sha {
		t.Error("the push within the limit did not land")
	}
}
