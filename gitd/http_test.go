package gitd

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"pgregory.net/rapid"

	"minivercel/deploy"
	"minivercel/hooks"
)

// httpEnv runs the git HTTP handler for a test.
type httpEnv struct {
	*clientEnv
	userToken  string // the dev user's API token
	otherToken string // the other user's API token
	srv        *httptest.Server
	chunked    atomic.Int32 // receive-pack requests that came chunked
}

// newHTTPEnv runs a hooks.Server with recv and the git HTTP handler on an
// httptest server on 127.0.0.1. maxBody 0 is the handler's default.
func newHTTPEnv(t *testing.T, recv hooks.Receiver, maxBody int64) *httpEnv {
	t.Helper()
	e := &httpEnv{clientEnv: newClientEnv(t, "mvh", recv)}
	e.userToken, e.devID = e.newToken("dev")
	e.otherToken, e.otherID = e.newToken("other")
	h, err := NewHTTPHandler(HTTPConfig{
		ReposDir:     e.reposDir,
		HookCommand:  e.hookCommand(),
		HookSocket:   e.hookSock,
		Logger:       testLogger(t),
		MaxBodyBytes: maxBody,
	}, e.svc, e.svc, e.hooks)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/git-receive-pack") && r.ContentLength == -1 && len(r.TransferEncoding) > 0 {
			e.chunked.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close) // waits for running handlers, so git has exited
	return e
}

// url is the remote URL of a path, with token as the password ("" for
// no credentials).
func (e *httpEnv) url(token, path string) string {
	u := strings.TrimPrefix(e.srv.URL, "http://")
	if token != "" {
		u = "git:" + token + "@" + u
	}
	return "http://" + u + "/" + path
}

func TestHTTPPushCreatesProjectStreamsClonesAndFetches(t *testing.T) {
	t.Parallel()
	calls := make(chan pushCall, 2)
	e := newHTTPEnv(t, announcesBuilds(calls), 0)
	work, sha := e.workTree("blog", page("<h1>hello</h1>\n"))

	out, err := e.git(work, "push", e.url(e.userToken, "blog.git"), "main")
	if err != nil {
		t.Fatalf("git push: %v\n%s", err, out)
	}
	e.checkFirstPush(out, calls, sha)

	// Clone with protocol v2 (git's default) and v0: the advertisement is
	// framed differently.
	for _, version := range []string{"2", "0"} {
		clone := filepath.Join(e.dir, "clone-v"+version)
		e.mustGit(e.dir, "-c", "protocol.version="+version, "clone", "-q", e.url(e.userToken, "blog.git"), clone)
		if b, err := os.ReadFile(filepath.Join(clone, "index.html")); err != nil || string(b) != "<h1>hello</h1>\n" {
			t.Fatalf("protocol v%s: cloned index.html = %q, %v", version, b, err)
		}
	}

	// A second push, then a fetch into the clone sees it.
	if err := os.WriteFile(filepath.Join(work, "about.html"), []byte("about\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.mustGit(work, "add", ".")
	e.mustGit(work, "commit", "-q", "-m", "second")
	sha2 := e.mustGit(work, "rev-parse", "HEAD")
	e.mustGit(work, "push", "-q", e.url(e.userToken, "blog.git"), "main")
	<-calls
	clone := filepath.Join(e.dir, "clone-v2")
	e.mustGit(clone, "fetch", "-q", "origin")
	if got := e.mustGit(clone, "rev-parse", "origin/main"); got != sha2 {
		t.Errorf("fetched origin/main = %s, want %s", got, sha2)
	}

	out, err = e.git(work, "push", e.url(e.otherToken, "blog.git"), "main:other")
	e.checkTeamPush(out, err, calls, sha2)
}

// TestHTTPFailedBuildFailsPush: over HTTP there is no exit status, yet a
// failed build must make `git push` exit non-zero, as over SSH.
func TestHTTPFailedBuildFailsPush(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t, replies(1, "error: npm run build exited with status 2\n"), 0)
	work, sha := e.workTree("app", page("x"))
	cmd := e.gitCmd(work, "push", e.url(e.userToken, "app.git"), "main")
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		t.Fatalf("git push with a failing build: %v, want a non-zero exit\n%s", err, out)
	}
	for _, want := range []string{
		"remote: error: npm run build exited with status 2",
		"remote: error: the push was stored, but its build failed (see above)",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("push output lacks %q:\n%s", want, out)
		}
	}
	if got := e.bareRef("app", "refs/heads/main"); got != sha {
		t.Errorf("refs/heads/main = %q, want %s: the push is stored even when the build fails", got, sha)
	}
}

func TestHTTPAuthRequired(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t, refuses(t, "without valid credentials"), 0)
	work, _ := e.workTree("site", page("x"))
	e.revokeTokensOf(e.otherID)
	for _, tt := range []struct{ name, token, want string }{
		// git asks for credentials, and may not prompt.
		{"no credentials", "", "could not read Username"},
		{"unknown token", "mvt_nope", "remote: error: this API token is unknown or revoked"},
		{"revoked token", e.otherToken, "remote: error: this API token is unknown or revoked"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := e.git(work, "push", e.url(tt.token, "site.git"), "main")
			if err == nil || !strings.Contains(out, tt.want) {
				t.Errorf("push: %v, want %q\n%s", err, tt.want, out)
			}
			out, err = e.git(e.dir, "ls-remote", e.url(tt.token, "site.git"))
			if err == nil || !strings.Contains(out, tt.want) {
				t.Errorf("ls-remote: %v, want %q\n%s", err, tt.want, out)
			}

			req, _ := http.NewRequest("GET", e.srv.URL+"/site.git/info/refs?service=git-upload-pack", nil)
			if tt.token != "" {
				req.SetBasicAuth("git", tt.token)
			}
			resp, err := http.DefaultClient.Do(req)
			readBody(t, resp, err)
			if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Basic realm="minivercel"` {
				t.Errorf("status %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
	if got, ps := e.repoEntries(), e.projects(); len(got) != 0 || len(ps) != 0 {
		t.Errorf("refused pushes created %v, %v", got, ps)
	}
}

// revokeTokensOf revokes a user's API tokens, as `minivercel admin token
// revoke` does.
func (e *httpEnv) revokeTokensOf(userID int64) {
	e.t.Helper()
	ctx := context.Background()
	ts, err := e.svc.Tokens(ctx, deploy.Operator)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, tok := range ts {
		if tok.UserID == userID {
			if err := e.svc.RevokeToken(ctx, deploy.Operator, tok.ID); err != nil {
				e.t.Fatal(err)
			}
		}
	}
}

// rawRequest sends a request line exactly as given, so that no client
// library cleans the path first.
func rawRequest(t *testing.T, addr, method, target string, header http.Header, body []byte) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: %d\r\n", method, target, addr, len(body))
	header.Write(&b)
	b.WriteString("\r\n")
	b.Write(body)
	if _, err := conn.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	return resp, readBody(t, resp, err)
}

// readBody fails the test if the request failed (err) or its body cannot
// be read; it returns the whole body, closed.
func readBody(t *testing.T, resp *http.Response, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func authHeader(token string) http.Header {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth("git", token)
	return r.Header
}

func TestHTTPRefusedPaths(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t, refuses(t, "for a refused path"), 0)
	_, evilErr := os.Stat("/tmp/evil.git")
	addr := strings.TrimPrefix(e.srv.URL, "http://")
	tests := []struct {
		name, method, target string
		status               int
	}{
		{"parent dir", "GET", "/../x.git/info/refs?service=git-receive-pack", 404},
		{"escape root", "GET", "/../../tmp/evil.git/info/refs?service=git-receive-pack", 404},
		{"encoded parent", "GET", "/%2e%2e/x.git/info/refs?service=git-receive-pack", 404},
		{"encoded slash", "GET", "/..%2f..%2ftmp%2fevil.git/info/refs?service=git-receive-pack", 404},
		{"nested", "GET", "/a/b.git/info/refs?service=git-receive-pack", 404},
		{"post escape", "POST", "/../../tmp/evil.git/git-receive-pack", 404},
		{"no .git", "GET", "/blog/info/refs?service=git-receive-pack", 404},
		{"upper case", "GET", "/Blog.git/info/refs?service=git-receive-pack", 404},
		{"reserved", "GET", "/git.git/info/refs?service=git-receive-pack", 404},
		{"dumb client", "GET", "/blog.git/info/refs", 404},
		{"unknown service", "GET", "/blog.git/info/refs?service=git-upload-archive", 404},
		{"dumb file", "GET", "/blog.git/HEAD", 404},
		{"objects", "GET", "/blog.git/objects/info/packs", 404},
		{"root", "GET", "/", 404},
		{"wrong method", "GET", "/blog.git/git-receive-pack", 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := rawRequest(t, addr, tt.method, tt.target, authHeader(e.userToken), nil)
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d (%q)", resp.StatusCode, tt.status, body)
			}
		})
	}
	e.checkNothingCreated(evilErr)

	// git itself shows why: a bad name and a missing project.
	out, err := e.git(e.dir, "clone", e.url(e.userToken, "nope.git"), filepath.Join(e.dir, "nope"))
	if err == nil || !strings.Contains(out, `remote: error: project "nope" does not exist`) || !strings.Contains(out, "not found") {
		t.Errorf("clone of a missing project: %v\n%s", err, out)
	}
	out, err = e.git(e.dir, "ls-remote", e.url(e.userToken, "Bad_Name.git"))
	if err == nil || !strings.Contains(out, "remote: error: invalid project name") {
		t.Errorf("ls-remote of a bad name: %v\n%s", err, out)
	}
	if len(e.projects()) != 0 || len(e.repoEntries()) != 0 {
		t.Error("refused fetches created something")
	}
}

// TestHTTPLargePush: git sends a pack larger than http.postBuffer (1 MiB)
// chunked, without Content-Length.
func TestHTTPLargePush(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t, replies(0, "-----> got it\n"), 0)
	files := map[string][]byte{}
	for i := range 5 {
		b := make([]byte, 1<<20)
		rand.Read(b)
		files[fmt.Sprintf("blob%d.bin", i)] = b
	}
	work, sha := e.workTree("big", files)
	out, err := e.git(work, "push", e.url(e.userToken, "big.git"), "main")
	if err != nil || !strings.Contains(out, "remote: -----> got it") {
		t.Fatalf("git push: %v\n%s", err, out)
	}
	if got := e.bareRef("big", "refs/heads/main"); got != sha {
		t.Errorf("refs/heads/main = %q, want %s", got, sha)
	}
	if e.chunked.Load() == 0 {
		t.Error("no receive-pack request came chunked: the test did not test chunked bodies")
	}
	clone := filepath.Join(e.dir, "big-clone")
	e.mustGit(e.dir, "clone", "-q", e.url(e.userToken, "big.git"), clone)
	for name, want := range files {
		if b, err := os.ReadFile(filepath.Join(clone, name)); err != nil || !bytes.Equal(b, want) {
			t.Errorf("cloned %s differs (%v)", name, err)
		}
	}
}

// TestHTTPBodyLimit: a push larger than MaxBodyBytes is refused and leaves
// the refs alone.
func TestHTTPBodyLimit(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t, refuses(t, "for a push over the limit"), 64<<10)
	b := make([]byte, 256<<10)
	rand.Read(b)
	work, _ := e.workTree("fat", map[string][]byte{"blob.bin": b})
	out, err := e.git(work, "push", e.url(e.userToken, "fat.git"), "main")
	if err == nil {
		t.Fatalf("push over the limit succeeded:\n%s", out)
	}
	if got := e.bareRef("fat", "refs/heads/main"); got != "" {
		t.Errorf("refs/heads/main = %s after a refused push", got)
	}
}

// do sends one request as git would, with user 1's token (under a user
// name git would not use: it is ignored) and protocol as Git-Protocol. A
// POST body is a gzip-encoded upload-pack request.
func (e *httpEnv) do(t *testing.T, method, path, protocol string, gzipBody []byte) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(gzipBody))
	req.SetBasicAuth("anyone", e.userToken)
	if method == "POST" {
		req.Header.Set("Content-Type", "application/x-git-upload-pack-request")
		req.Header.Set("Content-Encoding", "gzip")
	}
	if protocol != "" {
		req.Header.Set("Git-Protocol", protocol)
	}
	resp, err := http.DefaultClient.Do(req)
	return resp, readBody(t, resp, err)
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestHTTPGzipRequest sends hand-made gzip-encoded upload-pack requests,
// as git does for large fetch negotiations.
func TestHTTPGzipRequest(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t, replies(0, ""), 0)
	work, sha := e.workTree("zip", page("x"))
	e.mustGit(work, "push", "-q", e.url(e.userToken, "zip.git"), "main")

	flush := "0000"
	tests := []struct {
		name     string
		protocol string
		body     string
		want     string
	}{
		{"v0 want done", "", string(pktLine("want "+sha+"\n")) + flush + string(pktLine("done\n")), "0008NAK\nPACK"},
		{"v2 ls-refs", "version=2", string(pktLine("command=ls-refs\n")) + "0001" + flush, sha + " refs/heads/main"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, got := e.do(t, "POST", "/zip.git/git-upload-pack", tt.protocol, gzipped(t, []byte(tt.body)))
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-git-upload-pack-result" {
				t.Fatalf("status %d, content type %q: %q", resp.StatusCode, resp.Header.Get("Content-Type"), got)
			}
			if !strings.Contains(string(got), tt.want) {
				t.Errorf("response lacks %q: %q", tt.want, got)
			}
		})
	}

	if resp, _ := e.do(t, "POST", "/zip.git/git-upload-pack", "", []byte("not gzip")); resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("a body that is not gzip: status %d", resp.StatusCode)
	}
}

func TestHTTPInfoRefsResponse(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t, replies(0, ""), 0)
	work, _ := e.workTree("refs", page("x"))
	e.mustGit(work, "push", "-q", e.url(e.userToken, "refs.git"), "main")
	tests := []struct {
		name, service, protocol, wantStart string
	}{
		{"upload-pack v0", "git-upload-pack", "", "001e# service=git-upload-pack\n0000"},
		{"upload-pack v2", "git-upload-pack", "version=2", "000eversion 2\n"},
		{"receive-pack", "git-receive-pack", "", "001f# service=git-receive-pack\n0000"},
		{"receive-pack asked for v2", "git-receive-pack", "version=2", "001f# service=git-receive-pack\n0000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.do(t, "GET", "/refs.git/info/refs?service="+tt.service, tt.protocol, nil)
			if ct := resp.Header.Get("Content-Type"); ct != "application/x-"+tt.service+"-advertisement" {
				t.Errorf("Content-Type = %q", ct)
			}
			if cc := resp.Header.Get("Cache-Control"); !strings.HasPrefix(cc, "no-cache") {
				t.Errorf("Cache-Control = %q", cc)
			}
			if !strings.HasPrefix(string(body), tt.wantStart) {
				t.Errorf("body starts %q, want %q", body[:min(len(body), 60)], tt.wantStart)
			}
		})
	}
}

// TestHTTPClientDisconnectStopsReceivePack: the pusher presses Ctrl-C while
// the hook streams a lot of output. receive-pack and the hook get SIGTERM
// rather than hang, the refs stay updated, and the Receiver's context is
// canceled (the build it started goes on: that is the Receiver's side).
func TestHTTPClientDisconnectStopsReceivePack(t *testing.T) {
	t.Parallel()
	canceled := make(chan struct{})
	e := newHTTPEnv(t, streamsUntilCanceled(canceled), 0)
	work, sha := e.workTree("slow", page("x"))
	cmd := e.gitCmd(work, "push", "--progress", e.url(e.userToken, "slow.git"), "main")
	ctrlCDuringHook(t, cmd, canceled, e.reposDir)
	if got := e.bareRef("slow", "refs/heads/main"); got != sha {
		t.Errorf("refs/heads/main = %q, want %s", got, sha)
	}
	if _, err := os.Stat(filepath.Join(e.reposDir, "slow.git", "refs", "heads", "main.lock")); err == nil {
		t.Error("a ref lock was left behind")
	}
}

// TestPktTailProperty: whatever the chunking of a pkt-line stream, pktTail
// passes it through unchanged, and with extra packets it puts them just
// before a final flush-pkt.
func TestPktTailProperty(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		var stream []byte
		endsWithFlush := false
		for _, p := range rapid.SliceOf(rapid.SampledFrom([]string{"", "0000", "0001", "0002", "x", "\x02progress\n", strings.Repeat("y", 300)})).Draw(t, "packets") {
			switch p {
			case "0000", "0001", "0002":
				stream = append(stream, p...)
			default:
				stream = append(stream, pktLine(p)...)
			}
			endsWithFlush = p == "0000"
		}
		extra := pktLine("\x03error: failed\n")

		tail := &pktTail{}
		var got []byte
		rest := stream
		for len(rest) > 0 {
			n := rapid.IntRange(1, len(rest)).Draw(t, "chunk")
			got = append(got, tail.feed(rest[:n])...)
			rest = rest[n:]
		}
		got = append(got, tail.finish(extra)...)

		want := stream
		if endsWithFlush {
			want = append(append(append([]byte(nil), stream[:len(stream)-4]...), extra...), flushPkt...)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("got %q\nwant %q", got, want)
		}
	})
}

func TestCapSnifferSideband(t *testing.T) {
	t.Parallel()
	zero := strings.Repeat("0", 40)
	tests := []struct {
		name string
		body string
		want bool
	}{
		{"side-band-64k", string(pktLine(zero+" "+zero+" refs/heads/main\x00report-status side-band-64k agent=git/2.39\n")) + "0000PACK", true},
		{"no sideband", string(pktLine(zero+" "+zero+" refs/heads/main\x00report-status\n")) + "0000", false},
		{"no capabilities", string(pktLine(zero+" "+zero+" refs/heads/main\n")) + "0000", false},
		{"flush only", "0000", false},
		{"garbage", "zzzz", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &capSniffer{r: strings.NewReader(tt.body)}
			if _, err := io.Copy(io.Discard, iotestOneByte{s}); err != nil {
				t.Fatal(err)
			}
			if got := s.sideband(); got != tt.want {
				t.Errorf("sideband() = %v, want %v", got, tt.want)
			}
		})
	}
}

// iotestOneByte reads one byte at a time, the worst chunking for a
// sniffer.
type iotestOneByte struct{ r io.Reader }

func (o iotestOneByte) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}
