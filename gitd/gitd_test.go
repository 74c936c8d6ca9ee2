package gitd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"minivercel/deploy"
	"minivercel/hooks"
	"minivercel/internal/testenv"
	"minivercel/schema/schematest"
)

// TestMain doubles as the post-receive hook: gitd runs HookCommand (this
// test binary) as "<binary> hook post-receive", exactly like the real
// minivercel binary.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "hook" && os.Args[2] == "post-receive" {
		os.Exit(hooks.RunPostReceive(context.Background(), os.Stdin, os.Stdout, os.Stderr, os.Getenv))
	}
	schematest.Main(m)
}

// recordingAuth is the real Authorizer (the service) that also remembers
// which fingerprints it was asked about, for the key-confusion test.
type recordingAuth struct {
	Authorizer
	mu      sync.Mutex
	lookups []string
}

func (a *recordingAuth) UserByKeyFingerprint(ctx context.Context, fp string) (int64, error) {
	a.mu.Lock()
	a.lookups = append(a.lookups, fp)
	a.mu.Unlock()
	return a.Authorizer.UserByKeyFingerprint(ctx, fp)
}

func (a *recordingAuth) asked() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.lookups...)
}

type receiverFunc func(ctx context.Context, p hooks.Push, updates []hooks.RefUpdate, out io.Writer) int

func (f receiverFunc) Receive(ctx context.Context, p hooks.Push, updates []hooks.RefUpdate, out io.Writer) int {
	return f(ctx, p, updates, out)
}

// testEnv runs the SSH server for a test.
type testEnv struct {
	*clientEnv
	port     int
	auth     *recordingAuth
	userKey  string // private key file of the dev user
	otherKey string // private key file of the other user
	unknown  string // private key file nobody authorized
	srv      *Server
}

// newTestEnv runs a hooks.Server with recv and a gitd Server with real
// host key, repos dir and hook command, on a free port.
func newTestEnv(t *testing.T, recv hooks.Receiver) *testEnv {
	t.Helper()
	return newTestEnvWith(t, recv, func(*Config) {})
}

// newTestEnvWith is newTestEnv with the server's Config changed by tweak.
func newTestEnvWith(t *testing.T, recv hooks.Receiver, tweak func(*Config)) *testEnv {
	t.Helper()
	for _, tool := range []string{"ssh", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("these tests need %s: %v", tool, err)
		}
	}
	e := &testEnv{clientEnv: newClientEnv(t, "mvg", recv)}
	e.auth = &recordingAuth{Authorizer: e.svc}
	e.userKey = e.newKey("dev")
	e.otherKey = e.newKey("other")
	e.unknown = e.newKey("unknown")
	e.devID = e.authorize("dev", e.pubKey(e.userKey))
	e.otherID = e.authorize("other", e.pubKey(e.otherKey))

	cfg := Config{
		Addr:        "127.0.0.1:0",
		HostKeyPath: filepath.Join(e.dir, "keys", "host_ed25519"),
		ReposDir:    e.reposDir,
		HookCommand: e.hookCommand(),
		HookSocket:  e.hookSock,
		Logger:      testLogger(t),
	}
	tweak(&cfg)
	srv, err := New(cfg, e.auth, e.svc, e.hooks)
	if err != nil {
		t.Fatal(err)
	}
	serveUntilEnd(t, "gitd", srv, ErrServerClosed)
	e.port = srv.Addr().(*net.TCPAddr).Port
	e.srv = srv
	return e
}

// newKey creates an ed25519 key pair with ssh-keygen and returns the path
// of its private half.
func (e *testEnv) newKey(name string) string {
	e.t.Helper()
	path := filepath.Join(e.dir, "keys", name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		e.t.Fatal(err)
	}
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path).CombinedOutput(); err != nil {
		e.t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	return path
}

// pubKey is the authorized_keys line of a key newKey made.
func (e *testEnv) pubKey(privPath string) string {
	e.t.Helper()
	b, err := os.ReadFile(privPath + ".pub")
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

func keyFingerprint(t *testing.T, privPath string) string {
	t.Helper()
	b, err := os.ReadFile(privPath + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := gossh.ParseAuthorizedKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return gossh.FingerprintSHA256(pub)
}

func (e *testEnv) sshCommand(key string) string {
	return fmt.Sprintf("ssh -i %s -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -p %d",
		key, e.port)
}

func (e *testEnv) url(name string) string {
	return fmt.Sprintf("ssh://git@127.0.0.1:%d/%s", e.port, name)
}

// gitCmd prepares a git command run as a developer would, with key.
func (e *testEnv) gitCmd(key, dir string, args ...string) *exec.Cmd {
	cmd := e.clientEnv.gitCmd(dir, args...)
	cmd.Env = append(cmd.Env, "GIT_SSH_COMMAND="+e.sshCommand(key))
	return cmd
}

func (e *testEnv) git(key, dir string, args ...string) (string, error) {
	out, err := e.gitCmd(key, dir, args...).CombinedOutput()
	return string(out), err
}

// ssh runs one raw SSH command with OpenSSH and returns its output and
// exit status.
func (e *testEnv) ssh(key string, args ...string) (string, int) {
	e.t.Helper()
	argv := append(strings.Fields(e.sshCommand(key))[1:], "git@127.0.0.1")
	cmd := exec.Command("ssh", append(argv, args...)...)
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return string(out), exitErr.ExitCode()
	}
	if err != nil {
		e.t.Fatalf("ssh: %v", err)
	}
	return string(out), 0
}

func TestPushCreatesRepoStreamsAndClones(t *testing.T) {
	t.Parallel()
	calls := make(chan pushCall, 2)
	e := newTestEnv(t, announcesBuilds(calls))
	work, sha := e.workTree("blog", page("<h1>hello</h1>\n"))

	out, err := e.git(e.userKey, work, "push", e.url("blog.git"), "main")
	if err != nil {
		t.Fatalf("git push: %v\n%s", err, out)
	}
	e.checkFirstPush(out, calls, sha)

	clone := filepath.Join(e.dir, "clone")
	if out, err := e.git(e.userKey, e.dir, "clone", "-q", e.url("blog.git"), clone); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(clone, "index.html")); err != nil || string(b) != "<h1>hello</h1>\n" {
		t.Fatalf("cloned index.html = %q, %v", b, err)
	}

	out, err = e.git(e.otherKey, work, "push", e.url("blog.git"), "main:other")
	e.checkTeamPush(out, err, calls, sha)
}

func TestUnknownKeyIsToldHowToGetAdded(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, refuses(t, "for an unknown key"))
	// A key removed from its user is as unknown as one never added.
	if _, err := e.svc.RemoveKey(context.Background(), deploy.Operator, keyFingerprint(t, e.otherKey)); err != nil {
		t.Fatal(err)
	}
	work, _ := e.workTree("site", page("x"))
	for name, key := range map[string]string{"never added": e.unknown, "removed": e.otherKey} {
		t.Run(name, func(t *testing.T) {
			out, err := e.git(key, work, "push", e.url("site.git"), "main")
			if err == nil {
				t.Fatalf("push with an unknown key succeeded:\n%s", out)
			}
			fp := keyFingerprint(t, key)
			for _, want := range []string{"error: this SSH key (" + fp + ") is not authorized.", "minivercel admin key add", "ssh-ed25519 AAAA"} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
	if got := e.repoEntries(); len(got) != 0 {
		t.Errorf("repos dir holds %v after a refused push", got)
	}
}

func TestRefusedCommandsAndPaths(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, replies(0, ""))
	_, evilErr := os.Stat("/tmp/evil.git")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"parent dir", []string{"git-receive-pack '../x.git'"}, "error: invalid project name"},
		{"escape root", []string{"git-receive-pack '/../../tmp/evil.git'"}, "error: invalid project name"},
		{"home dir", []string{"git-receive-pack '~root/x.git'"}, "error: invalid project name"},
		{"upload escape", []string{"git-upload-pack '/../../etc'"}, "error: invalid project name"},
		{"shell", nil, "error: unsupported command: this server only speaks git"},
		{"other command", []string{"cat /etc/passwd"}, "error: unsupported command"},
		{"subsystem", []string{"-s", "sftp"}, "error: this server only speaks git"},
		{"missing project", []string{"git-upload-pack '/nope.git'"}, `error: project "nope" does not exist`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := e.ssh(e.userKey, tt.args...)
			if code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("output %q lacks %q", out, tt.want)
			}
		})
	}
	e.checkNothingCreated(evilErr, "keys")

	out, err := e.git(e.userKey, e.dir, "clone", e.url("nope.git"), filepath.Join(e.dir, "nope"))
	if err == nil || !strings.Contains(out, `error: project "nope" does not exist`) {
		t.Fatalf("clone of a missing project: %v\n%s", err, out)
	}
}

// offerOnlySigner presents pub but cannot sign: the client offers the key
// (the server's public-key callback runs for it) without ever proving it.
type offerOnlySigner struct{ pub gossh.PublicKey }

func (o offerOnlySigner) PublicKey() gossh.PublicKey { return o.pub }
func (o offerOnlySigner) Sign(io.Reader, []byte) (*gossh.Signature, error) {
	return nil, errors.New("no private key")
}

func newSigner(t *testing.T) gossh.Signer { return testenv.NewSSHKey(t, "").Signer }

// TestKeyConfusionCVE202445337 replays the key-confusion attack: the client
// offers victim key A (authorized) without proving it, then authenticates
// with its own unknown key B. The public-key callback saw A after B's first
// offer; the session must still act as B (refused), never as A's user.
func TestKeyConfusionCVE202445337(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, refuses(t, "during a key-confusion attack"))
	victim := newSigner(t)   // A: authorized, the attacker only knows its public half
	attacker := newSigner(t) // B: the attacker's own key, unknown to the server
	e.authorize("victim", string(gossh.MarshalAuthorizedKey(victim.PublicKey())))

	// Offer B (a multi-entry server key cache keeps it), offer A, then sign
	// with B: the public-key callback's last call was for A, and a server
	// trusting "the last key seen" would run as A's user.
	steps := []gossh.AuthMethod{
		gossh.PublicKeys(offerOnlySigner{attacker.PublicKey()}),
		gossh.PublicKeys(offerOnlySigner{victim.PublicKey()}),
		gossh.PublicKeys(attacker),
	}
	cfg := &gossh.ClientConfig{
		User: "git",
		AuthCallback: func(*gossh.ClientAuthContext) (gossh.AuthMethod, error) {
			if len(steps) == 0 {
				return nil, errors.New("out of keys")
			}
			next := steps[0]
			steps = steps[1:]
			return next, nil
		},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(),
		Timeout:         10 * time.Second,
	}
	client, err := gossh.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", e.port), cfg)
	if err != nil {
		t.Fatalf("ssh dial: %v", err)
	}
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	sess.Stderr = &stderr
	err = sess.Run("git-receive-pack '/victim.git'")
	var exitErr *gossh.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitStatus() != 1 {
		t.Fatalf("session ended with %v, want exit status 1 (stderr %q)", err, stderr.String())
	}
	victimFP := gossh.FingerprintSHA256(victim.PublicKey())
	attackerFP := gossh.FingerprintSHA256(attacker.PublicKey())
	if strings.Contains(stderr.String(), victimFP) || !strings.Contains(stderr.String(), attackerFP+") is not authorized") {
		t.Errorf("stderr = %q, want the attacker's key refused", stderr.String())
	}
	for _, fp := range e.auth.asked() {
		if fp == victimFP {
			t.Error("the session looked up the victim's key")
		}
	}
	if len(e.projects()) != 0 || len(e.repoEntries()) != 0 {
		t.Error("git ran as the victim's user")
	}
}

// TestVerifiedFingerprintRefusesMismatch checks the session-side check on
// its own: with a library whose reported key is not the authenticated one,
// the session is refused.
func TestVerifiedFingerprintRefusesMismatch(t *testing.T) {
	t.Parallel()
	a, b := newSigner(t).PublicKey(), newSigner(t).PublicKey()
	perms := &gossh.Permissions{Extensions: map[string]string{extKeyFingerprint: gossh.FingerprintSHA256(b)}}
	tests := []struct {
		name  string
		perms *gossh.Permissions
		key   gossh.PublicKey
		ok    bool
	}{
		{"same key", perms, b, true},
		{"reported key differs", perms, a, false},
		{"no permissions", nil, b, false},
		{"no fingerprint", &gossh.Permissions{}, b, false},
		{"no session key", perms, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fp, err := verifiedFingerprint(tt.perms, tt.key)
			if tt.ok != (err == nil) {
				t.Fatalf("verifiedFingerprint = %q, %v; want ok=%v", fp, err, tt.ok)
			}
			if tt.ok && fp != gossh.FingerprintSHA256(b) {
				t.Fatalf("fingerprint = %q", fp)
			}
		})
	}
}

// TestClientDisconnectStopsReceivePack: the pusher presses Ctrl-C while the
// hook streams a lot of output. receive-pack and the hook must not be left
// hanging (they get SIGTERM), and the Receiver's context must be canceled.
func TestClientDisconnectStopsReceivePack(t *testing.T) {
	t.Parallel()
	canceled := make(chan struct{})
	e := newTestEnv(t, streamsUntilCanceled(canceled))
	work, _ := e.workTree("slow", page("x"))
	cmd := e.gitCmd(e.userKey, work, "push", "--progress", e.url("slow.git"), "main")
	ctrlCDuringHook(t, cmd, canceled, e.reposDir)
}

// processesMentioning lists the pids whose command line mentions s.
func processesMentioning(s string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, de := range entries {
		pid, err := strconv.Atoi(de.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", de.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(s)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// testLogger sends a test's server logs to t.Log, so they show with the
// failing test only.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// ctrlCDuringHook runs a push whose hook streams "-----> waiting" and then
// waits for its context to end; once that line shows, it presses Ctrl-C (a
// SIGINT to the push's whole process group, as a terminal does) and checks
// that the server canceled the hook's context and that no process touching
// reposDir is left behind.
func ctrlCDuringHook(t *testing.T, cmd *exec.Cmd, canceled <-chan struct{}, reposDir string) {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		once := sync.OnceFunc(func() { close(started) })
		for sc.Scan() {
			if strings.Contains(sc.Text(), "-----> waiting") {
				once()
			}
		}
	}()
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("push never showed the hook's output")
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	select {
	case <-canceled:
	case <-time.After(20 * time.Second):
		t.Fatal("the Receiver's context was not canceled after the client left")
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		left := processesMentioning(reposDir)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes still running after the client left: %v", left)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, with a deadline
	}
}

// TestDatabaseDownIsAnInternalError: when the database cannot answer, a
// pusher with a valid key or token is told of an internal error, never that
// the credentials are unknown and never the database's own words, and no
// repository is made. Closing the service's pool is the real fault.
func TestDatabaseDownIsAnInternalError(t *testing.T) {
	t.Parallel()
	check := func(t *testing.T, e *clientEnv, out string, err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("push with the database down: %v, want %q\n%s", err, want, out)
		}
		for _, leak := range []string{"not authorized", "unknown", "closed", "pool"} {
			if strings.Contains(out, leak) {
				t.Errorf("push output says %q:\n%s", leak, out)
			}
		}
		if got := e.repoEntries(); len(got) != 0 {
			t.Errorf("repos dir holds %v", got)
		}
	}
	t.Run("ssh", func(t *testing.T) {
		e := newTestEnv(t, refuses(t, "with the database down"))
		work, _ := e.workTree("site", page("x"))
		e.store.Pool().Close()
		out, err := e.git(e.userKey, work, "push", e.url("site.git"), "main")
		check(t, e.clientEnv, out, err, "error: internal error while checking your SSH key")
	})
	t.Run("http", func(t *testing.T) {
		e := newHTTPEnv(t, refuses(t, "with the database down"), 0)
		work, _ := e.workTree("site", page("x"))
		e.store.Pool().Close()
		out, err := e.git(work, "push", e.url(e.userToken, "site.git"), "main")
		check(t, e.clientEnv, out, err, "error: internal error while checking your token")
	})
}
