package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sshCmd returns an unstarted `ssh git@server ARGS...` with key: the
// commands over SSH as a user runs them (-T: no terminal, as in scripts).
func (s *server) sshCmd(key string, args ...string) *exec.Cmd {
	base := strings.Fields(s.sshCommand(key))
	base = append(base[1:], "-T", "-p", strconv.Itoa(s.sshPort), "git@127.0.0.1")
	return exec.Command("ssh", append(base, args...)...)
}

// ssh runs a command over SSH with stdin and returns its stdout, stderr and
// exit status.
func (s *server) ssh(t *testing.T, key, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := s.sshCmd(key, args...)
	var out, errOut bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &out, &errOut
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(5 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("ssh %q did not end", args)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), errOut.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("ssh %q: %v", args, err)
	}
	return out.String(), errOut.String(), 0
}

// sshOK runs a command over SSH that must succeed and returns its stdout.
func (s *server) sshOK(t *testing.T, key, stdin string, args ...string) string {
	t.Helper()
	out, errOut, code := s.ssh(t, key, stdin, args...)
	if code != 0 {
		t.Fatalf("ssh %q exited %d\nstdout:\n%s\nstderr:\n%s", args, code, out, errOut)
	}
	return out
}

func sshJSON[T any](t *testing.T, out string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	return v
}

// loggingApp is a Node server that prints a line for every request.
var loggingApp = map[string]string{
	"package.json": `{"name":"app","private":true,"scripts":{"start":"node server.js"}}`,
	"server.js": `const http = require('http');
http.createServer((req, res) => {
  console.log('request ' + req.url);
  res.end('hello');
}).listen(process.env.PORT, process.env.HOST, () => console.log('app listening'));
`,
}

// TestSSHCommands: every command over the real OpenSSH client, with the key
// the user pushes with.
func TestSSHCommands(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	r := newRepo(t, "main", loggingApp)
	s.mustPush(r, "app")
	s.waitBody("app.localhost", "/", "hello")
	k := s.key

	if out := s.sshOK(t, k, "", "help"); !strings.Contains(out, "logs PROJECT [-f]") {
		t.Fatalf("help:\n%s", out)
	}
	// Not a shell: an unknown command, and a login, get the help, exit 2.
	for _, args := range [][]string{{"bash", "-c", "id"}, {"ls;", "id"}, nil} {
		out, errOut, code := s.ssh(t, k, "", args...)
		if code != 2 || out != "" || !strings.Contains(errOut, "logs PROJECT [-f]") || strings.Contains(errOut, "uid=") {
			t.Fatalf("ssh %q: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, out, errOut)
		}
	}

	ps := sshJSON[[]struct {
		Name          string `json:"name"`
		ActiveBuildID int64  `json:"active_build_id"`
		URL           string `json:"url"`
	}](t, s.sshOK(t, k, "", "projects", "--json"))
	if len(ps) != 1 || ps[0].Name != "app" || ps[0].ActiveBuildID == 0 || !strings.Contains(ps[0].URL, "app.localhost") {
		t.Fatalf("projects --json: %+v", ps)
	}
	first := ps[0].ActiveBuildID
	if out := s.sshOK(t, k, "", "projects"); !strings.Contains(out, "PROJECT") || !strings.Contains(out, "app") {
		t.Fatalf("projects:\n%s", out)
	}
	if out := s.sshOK(t, k, "", "builds", "app"); !strings.Contains(out, "● live") {
		t.Fatalf("builds:\n%s", out)
	}
	if out := s.sshOK(t, k, "", "logs", "app", "--build", strconv.FormatInt(first, 10)); !strings.Contains(out, "Detected: Node server") {
		t.Fatalf("logs --build:\n%s", out)
	}

	// Variables: a quoted value with a space, masked when listed.
	if out := s.sshOK(t, k, "", "env", "set", "app", "GREETING='hello world, from ssh'"); !strings.Contains(out, "set GREETING") {
		t.Fatalf("env set: %q", out)
	}
	if out := s.sshOK(t, k, "", "env", "list", "app"); !strings.Contains(out, "GREETING") || strings.Contains(out, "from ssh") {
		t.Fatalf("env list shows the value or lacks the variable:\n%s", out)
	}
	if out := s.sshOK(t, k, "A=1\nB='two'\n", "env", "import", "app", "--target", "preview"); out != "set A\nset B\ntakes effect on the next deploy (or now: redeploy app)\n" {
		t.Fatalf("env import: %q", out)
	}
	vars := sshJSON[[]struct{ Key, Target, Value string }](t, s.sshOK(t, k, "", "env", "list", "app", "--json"))
	if len(vars) != 3 || strings.Contains(vars[0].Value+vars[1].Value+vars[2].Value, "from ssh") {
		t.Fatalf("env list --json: %+v", vars)
	}
	s.sshOK(t, k, "", "env", "unset", "app", "A", "B")
	if out, errOut, code := s.ssh(t, k, "", "env", "set", "app", "1BAD=x"); code != 1 || out != "" || !strings.Contains(errOut, "error: ") {
		t.Fatalf("a bad variable: exit %d %q %q", code, out, errOut)
	}

	if out := s.sshOK(t, k, "", "redeploy", "app"); !strings.Contains(out, "build #"+strconv.FormatInt(first, 10)+" is live") {
		t.Fatalf("redeploy: %q", out)
	}
	b := sshJSON[struct {
		ID int64 `json:"id"`
	}](t, s.sshOK(t, k, "", "rebuild", "app", "main", "--json"))
	if out := s.sshOK(t, k, "", "logs", "app", "--build", strconv.FormatInt(b.ID, 10), "-f"); !strings.Contains(out, "app listening") {
		t.Fatalf("logs --build -f:\n%s", out)
	}
	act := sshJSON[struct {
		Build struct {
			ID int64 `json:"id"`
		} `json:"build"`
	}](t, s.sshOK(t, k, "", "rollback", "app", "--json"))
	if act.Build.ID != first {
		t.Fatalf("rollback went to build %d, want %d", act.Build.ID, first)
	}

	if out := s.sshOK(t, k, "", "domains", "add", "app", "www.example.test"); !strings.Contains(out, "now serves app") {
		t.Fatalf("domains add: %q", out)
	}
	ds := sshJSON[[]struct {
		Domain string `json:"domain"`
	}](t, s.sshOK(t, k, "", "domains", "list", "app", "--json"))
	if len(ds) != 1 || ds[0].Domain != "www.example.test" {
		t.Fatalf("domains list --json: %+v", ds)
	}
	s.sshOK(t, k, "", "domains", "remove", "app", "www.example.test")

	// Keys: a second key of the admin's, added over SSH, works at once.
	laptop := newKey(t, t.TempDir(), "laptop")
	pub, err := os.ReadFile(laptop + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if out := s.sshOK(t, k, string(pub), "keys", "add"); !strings.Contains(out, "added key") {
		t.Fatalf("keys add: %q", out)
	}
	keys := sshJSON[[]struct {
		Fingerprint string `json:"fingerprint"`
		Name        string `json:"name"`
	}](t, s.sshOK(t, laptop, "", "keys", "list", "--json"))
	if len(keys) != 2 {
		t.Fatalf("keys list --json: %+v", keys)
	}
	for _, key := range keys {
		if key.Name == "laptop" {
			s.sshOK(t, k, "", "keys", "remove", key.Fingerprint)
		}
	}
	if _, errOut, code := s.ssh(t, laptop, "", "projects"); code != 1 || !strings.Contains(errOut, "is not authorized") {
		t.Fatalf("a removed key: exit %d %q", code, errOut)
	}

	tok := sshJSON[struct {
		ID    int64  `json:"id"`
		Token string `json:"token"`
	}](t, s.sshOK(t, k, "", "tokens", "create", "--name", "ci", "--json"))
	if tok.Token == "" {
		t.Fatal("tokens create --json: no token")
	}
	if out := s.sshOK(t, k, "", "tokens", "list"); !strings.Contains(out, "ci") || strings.Contains(out, tok.Token) {
		t.Fatalf("tokens list:\n%s", out)
	}

	// Refusals: a member may not revoke the admin's token (the service's
	// words), and an unknown key gets nothing.
	dev := newKey(t, t.TempDir(), "dev")
	devPub, _ := os.ReadFile(dev + ".pub")
	if out, code := s.admin(t, string(devPub), "key", "add", "--user", "dev", "-"); code != 0 {
		t.Fatalf("admin key add: %s", out)
	}
	id := strconv.FormatInt(tok.ID, 10)
	if out, errOut, code := s.ssh(t, dev, "", "tokens", "revoke", id); code != 1 || out != "" || errOut != "error: no live token "+id+"\n" {
		t.Fatalf("dev revokes the admin's token: exit %d %q %q", code, out, errOut)
	}
	if out := s.sshOK(t, k, "", "tokens", "revoke", id); out != "revoked token "+id+"\n" {
		t.Fatalf("tokens revoke: %q", out)
	}
	stranger := newKey(t, t.TempDir(), "stranger")
	if out, errOut, code := s.ssh(t, stranger, "", "projects"); code != 1 || out != "" || !strings.Contains(errOut, "is not authorized") {
		t.Fatalf("an unknown key: exit %d %q %q", code, out, errOut)
	}
}

// TestSSHLogsFollow: `logs app -f` prints a line the app writes after the
// command started, and ends when the client goes away; the server carries on.
func TestSSHLogsFollow(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	s.mustPush(newRepo(t, "main", loggingApp), "app")
	s.waitBody("app.localhost", "/", "hello")

	cmd := s.sshCmd(s.key, "logs", "app", "-f")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(stdout)
	startUntil(t, cmd, "deployment ") // the header, on stderr: it follows now
	defer cmd.Process.Kill()
	lines := make(chan string)
	go func() {
		for {
			l, err := rd.ReadString('\n')
			if err != nil {
				close(lines)
				return
			}
			lines <- l
		}
	}()
	if code, body := s.get("app.localhost", "/after-follow"); code != 200 || body != "hello" {
		t.Fatalf("GET: %d %q", code, body)
	}
	deadline := time.After(time.Minute)
	for found := false; !found; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("logs -f ended before the line came")
			}
			found = strings.Contains(l, "request /after-follow")
		case <-deadline:
			t.Fatalf("the line never came\nserver log:\n%s", s.logText())
		}
	}
	// The user presses Ctrl-C: the client goes away.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if out := s.sshOK(t, s.key, "", "projects"); !strings.Contains(out, "app") {
		t.Fatalf("projects after a killed logs -f:\n%s", out)
	}
	if code, body := s.get("app.localhost", "/"); code != 200 || body != "hello" {
		t.Fatalf("the app after a killed logs -f: %d %q", code, body)
	}
	if log := s.logText(); strings.Contains(log, "ssh command failed") || strings.Contains(log, "panic") {
		t.Fatalf("the server logged a failure:\n%s", log)
	}
}
