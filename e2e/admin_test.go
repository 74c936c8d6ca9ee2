package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// admin runs `minivercel admin ...` against the running server's data directory,
// as an operator would while the server runs.
func (s *server) admin(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"admin"}, append(args, "--data-dir", s.dataDir)...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.Stdin = strings.NewReader(stdin)
	return runCmd(t, cmd)
}

// TestAdminKeys: keys added, listed and removed offline take effect at once for
// pushes to the running server.
func TestAdminKeys(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	dev := newKey(t, t.TempDir(), "dev")
	pub, _ := os.ReadFile(dev + ".pub")
	r := newRepo(t, "main", map[string]string{"index.html": "by dev"})

	if out, code := runCmd(t, s.pushCmd(r, dev, s.remote("team"), "HEAD")); code == 0 || !strings.Contains(out, "is not authorized") {
		t.Fatalf("push before the key was added: exit %d\n%s", code, out)
	}
	out, code := s.admin(t, string(pub), "key", "add", "--user", "dev", "-")
	if code != 0 || !strings.Contains(out, "added key") {
		t.Fatalf("key add: exit %d\n%s", code, out)
	}
	if out, code := runCmd(t, s.pushCmd(r, dev, s.remote("team"), "HEAD")); code != 0 {
		t.Fatalf("push with the added key: exit %d\n%s", code, out)
	}
	s.waitBody("team.localhost", "/", "by dev")

	out, code = s.admin(t, "", "key", "list")
	if code != 0 || !strings.Contains(out, "dev") || !strings.Contains(out, "admin") || !strings.Contains(out, "SHA256:") {
		t.Fatalf("key list: exit %d\n%s", code, out)
	}
	fp := ""
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[1] == "dev" {
			fp = f[2]
		}
	}
	if out, code := s.admin(t, "", "key", "add", "--user", "dev", strings.TrimSpace(string(pub))); code == 0 || !strings.Contains(out, "already registered") {
		t.Errorf("adding a key twice: exit %d\n%s", code, out)
	}
	if out, code := s.admin(t, "", "key", "add", "ssh-ed25519 not-a-key"); code == 0 || !strings.Contains(out, "not an SSH public key") {
		t.Errorf("adding garbage: exit %d\n%s", code, out)
	}
	if out, code := s.admin(t, "", "key", "remove", fp); code != 0 || !strings.Contains(out, "removed key") {
		t.Fatalf("key remove %q: exit %d\n%s", fp, code, out)
	}
	r.commit("again", map[string]string{"index.html": "again"})
	if out, code := runCmd(t, s.pushCmd(r, dev, s.remote("team"), "HEAD")); code == 0 || !strings.Contains(out, "is not authorized") {
		t.Fatalf("push after the key was removed: exit %d\n%s", code, out)
	}
	if out, code := s.admin(t, "", "key", "remove", "SHA256:nope"); code == 0 || !strings.Contains(out, "no key") {
		t.Errorf("removing an unknown key: exit %d\n%s", code, out)
	}
}
