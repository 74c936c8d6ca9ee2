// Package e2e drives the built minivercel binary as a user would: real git
// pushes through OpenSSH's ssh client, real builds, HTTP against the edge.
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"minivercel/internal/testenv"
	"minivercel/proc"
)

var binary string // the minivercel binary built once for the whole run

// toolchainDir is the toolchain store every server of the run shares, so a
// Node version or package manager is downloaded once per run.
var toolchainDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mve2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "minivercel")
	// Builds and apps run as other users: the store must be reachable.
	toolchainDir = filepath.Join(dir, "toolchains")
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	args := []string{"build", "-o", binary}
	if raceEnabled {
		// The server under test is where data races would be: the race
		// detector in this test process only watches the harness.
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "../cmd/minivercel")...)
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build minivercel:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is one running `minivercel serve` with its own data directory.
type server struct {
	t        testing.TB
	dataDir  string
	sshPort  int
	httpPort int
	key      string // private key of the admin
	env      []string
	cmd      *exec.Cmd
	logPath  string // what the current run of serve writes
	done     chan struct{}
	// noHTTP is set for a node without the edge and panel roles: it has
	// no HTTP listener, and is ready when its log says so.
	noHTTP bool
}

// logText is what the current run of the server wrote to stdout and stderr.
func (s *server) logText() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// newKey makes an ed25519 key pair and returns the private key's path.
func newKey(t testing.TB, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", p).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	return p
}

// startServer starts a server on fresh ports with a fresh data directory whose
// admin holds a fresh key. Servers of parallel tests never touch each other's
// apps: each server's apps run as users of its own (proc.AppUsers), removed
// when the test ends.
func startServer(t testing.TB, extraEnv ...string) *server {
	t.Helper()
	return newServer(t, extraEnv)
}

func newServer(t testing.TB, extraEnv []string) *server {
	t.Helper()
	return newServerOn(t, extraEnv, nil)
}

// newServerOn is newServer with prepare called on each data directory
// before the server starts on it (to mount a small file system there, say);
// cleanups prepare registers run after the server has stopped.
func newServerOn(t testing.TB, extraEnv []string, prepare func(dataDir string)) *server {
	t.Helper()
	// Short paths: the private PostgreSQL's socket path must stay under 108 bytes.
	dir := testenv.ShortDir(t, "mvs")
	keys := filepath.Join(dir, "keys")
	os.Mkdir(keys, 0o700)
	s := &server{t: t, key: newKey(t, keys, "admin")}
	pub, err := os.ReadFile(s.key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	s.env = append([]string{"MINIVERCEL_INITIAL_ADMIN_KEYS=" + string(pub)}, extraEnv...)
	// A port found free may be taken by another test's process before the
	// server binds it: try other ports then, with a data directory no
	// process of the failed attempt can still hold.
	for attempt := 1; ; attempt++ {
		s.dataDir = filepath.Join(dir, fmt.Sprintf("data%d", attempt))
		if prepare != nil {
			prepare(s.dataDir)
		}
		s.sshPort, s.httpPort = freePort(t), freePort(t)
		err := s.launch()
		if err == nil {
			break
		}
		if attempt == 3 || !strings.Contains(s.logText(), "address already in use") {
			t.Fatal(err)
		}
		t.Logf("ports taken, trying others: %v", err)
	}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", s.logText())
		}
		if os.Geteuid() == 0 {
			if err := proc.NewAppUsers(s.dataDir).RemoveAll(); err != nil {
				t.Errorf("remove the server's app users: %v", err)
			}
		}
	})
	return s
}

// start starts the server again on its ports and data directory.
func (s *server) start() {
	s.t.Helper()
	if err := s.launch(); err != nil {
		s.t.Fatal(err)
	}
}

// launch starts `minivercel serve` and waits until it answers /healthz.
func (s *server) launch() error {
	// The server writes straight into a file, no copying goroutine between
	// them; a run's log is kept next to its data directory.
	logFile, err := os.CreateTemp(filepath.Dir(s.dataDir), "serve-*.log")
	if err != nil {
		return err
	}
	defer logFile.Close() // the server has its own descriptor once started
	s.logPath = logFile.Name()
	s.done = make(chan struct{})
	s.cmd = exec.Command(binary, "serve", "--data-dir", s.dataDir,
		"--ssh-addr", fmt.Sprintf("127.0.0.1:%d", s.sshPort),
		"--http-addr", fmt.Sprintf("127.0.0.1:%d", s.httpPort))
	s.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "MINIVERCEL_TOOLCHAIN_DIR=" + toolchainDir}, s.env...)
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if err := s.cmd.Start(); err != nil {
		return err
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if s.noHTTP {
			if strings.Contains(s.logText(), "minivercel is ready") {
				return nil
			}
		} else if code, _ := s.get("localhost", "/healthz"); code == 200 {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("server exited before it was ready:\n%s", s.logText())
		default:
		}
		if time.Now().After(deadline) {
			s.cmd.Process.Kill()
			<-s.done
			return fmt.Errorf("server not ready in time:\n%s", s.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM, as an init system would, and waits for a clean exit.
func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done: // it exited by itself (or was stopped before)
	default:
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(60 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
			s.t.Errorf("server did not stop on SIGTERM:\n%s", s.logText())
		}
	}
	if log := s.logText(); strings.Contains(log, "WARNING: DATA RACE") {
		s.t.Errorf("the race detector found a data race in the server:\n%s", log)
	}
}

func (s *server) restart() {
	s.t.Helper()
	s.stop()
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		s.t.Fatalf("server exited with %d:\n%s", code, s.logText())
	}
	s.start()
}

var client = &http.Client{Timeout: 30 * time.Second}

// get fetches path from the edge with the given Host header.
func (s *server) get(host, path string) (int, string) {
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d%s", s.httpPort, path), nil)
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// noFollow is a client that shows redirects instead of following them.
var noFollow = &http.Client{
	Timeout:       client.Timeout,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// fetch GETs path from the edge with the Host header host and the given
// request headers, without following redirects, failing the test when no
// response comes; it returns the response (its body read and closed) and
// the body.
func (s *server) fetch(t testing.TB, host, path string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d%s", s.httpPort, path), nil)
	req.Host = host
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// waitBody waits until host serves a body containing want.
func (s *server) waitBody(host, path, want string) {
	s.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		code, body := s.get(host, path)
		if code == 200 && strings.Contains(body, want) {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s%s never served %q; last %d %q\nserver log:\n%s", host, path, want, code, body, s.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sshCommand is how git reaches the server: OpenSSH with only the given key.
func (s *server) sshCommand(key string) string {
	return fmt.Sprintf("ssh -i %s -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes", key)
}

func (s *server) remote(project string) string {
	return fmt.Sprintf("ssh://git@127.0.0.1:%d/%s.git", s.sshPort, project)
}

// repo is a local working copy.
type repo struct {
	t   testing.TB
	dir string
}

func newRepo(t testing.TB, branch string, files map[string]string) *repo {
	t.Helper()
	r := &repo{t: t, dir: t.TempDir()}
	r.git("init", "-q", "-b", branch)
	r.commit("initial", files)
	return r
}

func (r *repo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = r.dir
	cmd.Env = gitEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func gitEnv() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=t@example.test",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=t@example.test", "GIT_CONFIG_NOSYSTEM=1"}
}

func (r *repo) commit(msg string, files map[string]string) {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	r.git("add", "-A")
	r.git("commit", "-q", "-m", msg)
}

// pushCmd returns an unstarted `git push` of refspec to url with key.
func (s *server) pushCmd(r *repo, key, url string, refspec ...string) *exec.Cmd {
	cmd := exec.Command("git", append([]string{"push", url}, refspec...)...)
	cmd.Dir = r.dir
	cmd.Env = append(gitEnv(), "GIT_SSH_COMMAND="+s.sshCommand(key))
	return cmd
}

// push runs `git push` with the admin's key and returns its output and exit code.
func (s *server) push(r *repo, project string, refspec ...string) (string, int) {
	s.t.Helper()
	if len(refspec) == 0 {
		refspec = []string{"HEAD"}
	}
	return runCmd(s.t, s.pushCmd(r, s.key, s.remote(project), refspec...))
}

// mustPush is push for a push that must succeed: it fails the test otherwise
// and returns the push's output.
func (s *server) mustPush(r *repo, project string, refspec ...string) string {
	s.t.Helper()
	out, code := s.push(r, project, refspec...)
	if code != 0 {
		s.t.Fatalf("push of %s %v exited %d:\n%s", project, refspec, code, out)
	}
	return out
}

// startUntil starts cmd and reads its standard error until a line contains
// want; the reader returned holds the rest of it.
func startUntil(t testing.TB, cmd *exec.Cmd, want string) *bufio.Reader {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewReader(stderr)
	readUntil(t, out, want)
	return out
}

func runCmd(t testing.TB, cmd *exec.Cmd) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	go func() {
		<-ctx.Done()
		if ctx.Err() == context.DeadlineExceeded && cmd.Process != nil {
			cmd.Process.Kill()
		}
	}()
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	return string(out), 0
}

// newGate returns the path of a file that a build can wait for and the test
// creates when the build may go on, so that the test needs no timing guess.
// It is not under /tmp: the sandbox gives each build an empty /tmp of its own.
func newGate(t testing.TB, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("/var/tmp", "mvgate")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // the build user must see the file
		t.Fatal(err)
	}
	return filepath.Join(dir, name)
}

// gatedBuild is an npm project named name whose build prints "waiting for
// the gate", waits until the file gate exists, prints "gate opened: building
// <page>" and writes page as its dist/index.html.
func gatedBuild(name, gate, page string) map[string]string {
	return map[string]string{
		"package.json": fmt.Sprintf(`{"name":%q,"scripts":{"build":"node build.js"}}`, name),
		"build.js": fmt.Sprintf(`const fs = require('fs');
console.log('waiting for the gate');
const t = setInterval(() => {
  if (!fs.existsSync(%q)) return;
  clearInterval(t);
  console.log('gate opened: building ' + %q);
  fs.mkdirSync('dist');
  fs.writeFileSync('dist/index.html', %q);
}, 20);`, gate, page, page),
	}
}

// readUntil reads lines from r until one contains want, returning what it read.
func readUntil(t testing.TB, r *bufio.Reader, want string) string {
	t.Helper()
	var seen strings.Builder
	for {
		line, err := r.ReadString('\n')
		seen.WriteString(line)
		if strings.Contains(line, want) {
			return seen.String()
		}
		if err != nil {
			t.Fatalf("output ended before %q:\n%s", want, seen.String())
		}
	}
}
