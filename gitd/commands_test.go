package gitd

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// echoRunner is a CommandRunner that answers with what it was given; the
// command "wait" blocks until its context ends and records that it did.
type echoRunner struct {
	ended chan struct{}
}

func (r *echoRunner) RunCommand(ctx context.Context, userID int64, line string, stdin io.Reader, stdout, stderr io.Writer) int {
	if line == "wait" {
		fmt.Fprintln(stdout, "waiting")
		<-ctx.Done()
		close(r.ended)
		return 0
	}
	in, _ := io.ReadAll(stdin)
	fmt.Fprintf(stdout, "user %d ran %q with %q\n", userID, line, in)
	fmt.Fprintln(stderr, "to stderr")
	return 3
}

// TestCommandsGoToTheRunner: a session whose command is not git's runs
// through Config.Commands as the user of the key, with the line as sent; git
// commands, bad project paths included, never reach it; a command's context
// ends when the client goes away.
func TestCommandsGoToTheRunner(t *testing.T) {
	t.Parallel()
	runner := &echoRunner{ended: make(chan struct{})}
	e := newTestEnvWith(t, replies(0, ""), func(c *Config) { c.Commands = runner })

	out, code := e.ssh(e.userKey, "logs", "blog", "'a b'")
	if code != 3 || !strings.Contains(out, fmt.Sprintf(`user %d ran "logs blog 'a b'" with ""`, e.devID)) || !strings.Contains(out, "to stderr") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if out, code := e.ssh(e.otherKey, "projects"); code != 3 || !strings.Contains(out, fmt.Sprintf("user %d ran", e.otherID)) {
		t.Fatalf("the other user: exit %d\n%s", code, out)
	}
	if out, code := e.ssh(e.userKey, "git-receive-pack '../x.git'"); code != 1 || !strings.Contains(out, "invalid project name") {
		t.Fatalf("a bad git path is refused by gitd: exit %d\n%s", code, out)
	}
	if out, code := e.ssh(e.unknown, "projects"); code != 1 || !strings.Contains(out, "is not authorized") || strings.Contains(out, "ran") {
		t.Fatalf("an unknown key: exit %d\n%s", code, out)
	}

	argv := append(strings.Fields(e.sshCommand(e.userKey))[1:], "git@127.0.0.1", "wait")
	cmd := exec.Command("ssh", argv...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if _, err := io.ReadFull(stdout, buf); err != nil || string(buf) != "waiting\n" {
		t.Fatalf("read %q, %v", buf, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	select {
	case <-runner.ended:
	case <-time.After(30 * time.Second):
		t.Fatal("the command's context did not end when the client went away")
	}
}

// startWait runs the command "wait" over OpenSSH and returns once the
// runner said it waits.
func (e *testEnv) startWait(t *testing.T) *exec.Cmd {
	t.Helper()
	argv := append(strings.Fields(e.sshCommand(e.userKey))[1:], "git@127.0.0.1", "wait")
	cmd := exec.Command("ssh", argv...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	buf := make([]byte, 8)
	if _, err := io.ReadFull(stdout, buf); err != nil || string(buf) != "waiting\n" {
		t.Fatalf("read %q, %v", buf, err)
	}
	return cmd
}

// TestShutdownEndsCommands: a command following a log does not hold the
// server's shutdown until the session's maximum: Shutdown ends it.
func TestShutdownEndsCommands(t *testing.T) {
	t.Parallel()
	runner := &echoRunner{ended: make(chan struct{})}
	e := newTestEnvWith(t, replies(0, ""), func(c *Config) { c.Commands = runner })
	e.startWait(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with a command following: %v", err)
	}
	select {
	case <-runner.ended:
	default:
		t.Fatal("Shutdown returned while the command still ran")
	}
}

// TestSignalsNeverBlockTheSession: a client sending signal after signal
// (gliderlabs hands each over holding the session's lock) neither blocks
// the command's end nor leaves the session hanging.
func TestSignalsNeverBlockTheSession(t *testing.T) {
	t.Parallel()
	runner := &echoRunner{ended: make(chan struct{})}
	e := newTestEnvWith(t, replies(0, ""), func(c *Config) { c.Commands = runner })
	b, err := os.ReadFile(e.userKey)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := gossh.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	client, err := gossh.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", e.port), &gossh.ClientConfig{
		User: "git", Auth: []gossh.AuthMethod{gossh.PublicKeys(signer)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), // a test server's fresh key
		Timeout:         10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Start("wait"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if _, err := io.ReadFull(stdout, buf); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := sess.Signal(gossh.SIGINT); err != nil {
			break // the session ended: fine
		}
	}
	waited := make(chan error, 1)
	go func() { waited <- sess.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("the session ended with %v, want exit 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the session never ended after a few signals")
	}
}
