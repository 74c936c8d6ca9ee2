package hooks

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"minivercel/internal/testenv"
	"minivercel/internal/testwait"
)

// receiverFunc adapts a function to Receiver.
type receiverFunc func(ctx context.Context, p Push, updates []RefUpdate, out io.Writer) int

func (f receiverFunc) Receive(ctx context.Context, p Push, updates []RefUpdate, out io.Writer) int {
	return f(ctx, p, updates, out)
}

// startServer runs a hook server on a short socket path (t.TempDir paths
// can exceed the 108-byte socket limit) and shuts it down after the test.
func startServer(t *testing.T, r Receiver) (*Server, string) {
	t.Helper()
	dir := testenv.ShortDir(t, "mvh")
	sock := filepath.Join(dir, "hook.sock")
	srv, err := NewServer(ServerConfig{SocketPath: sock}, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return srv, sock
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// chanWriter sends every Write to a channel, so a test can observe output
// as it arrives rather than at the end.
type chanWriter chan string

func (w chanWriter) Write(p []byte) (int, error) {
	w <- string(p)
	return len(p), nil
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

var testUpdates = []RefUpdate{
	{Old: zero40, New: sha40a, Name: "refs/heads/main"},
	{Old: sha40a, New: sha40b, Name: "refs/heads/feat"},
}

func TestHookStreamsOutputAsItArrives(t *testing.T) {
	proceed := make(chan struct{})
	type call struct {
		push    Push
		updates []RefUpdate
	}
	calls := make(chan call, 1)
	srv, sock := startServer(t, receiverFunc(func(ctx context.Context, p Push, updates []RefUpdate, out io.Writer) int {
		calls <- call{p, updates}
		io.WriteString(out, "-----> Building main\n")
		<-proceed // the client must have shown line 1 before we go on
		io.WriteString(out, "       done\n")
		return 3
	}))
	token, release := srv.Register(Push{Project: "blog", UserID: 7})
	defer release()

	stdout := make(chanWriter, 10)
	var stderr syncBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- RunPostReceive(context.Background(), strings.NewReader(FormatRefUpdates(testUpdates)), stdout, &stderr,
			env(map[string]string{EnvHookSocket: sock, EnvPushToken: token}))
	}()

	if got := testwait.Recv(t, stdout, "first line"); got != "-----> Building main\n" {
		t.Fatalf("first output = %q", got)
	}
	close(proceed)
	if got := testwait.Recv(t, stdout, "second line"); got != "       done\n" {
		t.Fatalf("second output = %q", got)
	}
	if code := testwait.Recv(t, exit, "exit"); code != 3 {
		t.Fatalf("exit code = %d, want 3 (stderr %q)", code, stderr.String())
	}
	c := testwait.Recv(t, calls, "receive call")
	if c.push != (Push{Project: "blog", UserID: 7}) {
		t.Fatalf("push = %+v", c.push)
	}
	if len(c.updates) != 2 || c.updates[1] != testUpdates[1] {
		t.Fatalf("updates = %+v", c.updates)
	}
}

func TestHookRefusesUnknownToken(t *testing.T) {
	called := make(chan struct{}, 1)
	srv, sock := startServer(t, receiverFunc(func(ctx context.Context, p Push, updates []RefUpdate, out io.Writer) int {
		called <- struct{}{}
		return 0
	}))
	token, release := srv.Register(Push{Project: "blog", UserID: 1})

	tests := []struct {
		name  string
		token string
	}{
		{"made up", strings.Repeat("ab", 32)},
		{"released", token},
	}
	release()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr syncBuffer
			code := RunPostReceive(context.Background(), strings.NewReader(FormatRefUpdates(testUpdates)), &stdout, &stderr,
				env(map[string]string{EnvHookSocket: sock, EnvPushToken: tt.token}))
			if code == 0 {
				t.Fatal("exit code 0 for an unknown token")
			}
			if !strings.HasPrefix(stdout.String()+stderr.String(), "error: ") {
				t.Fatalf("output %q does not start with an error: line", stdout.String()+stderr.String())
			}
		})
	}
	select {
	case <-called:
		t.Fatal("Receiver called for an unknown token")
	default:
	}
}

func TestHookTokenIsSingleUse(t *testing.T) {
	srv, sock := startServer(t, receiverFunc(func(ctx context.Context, p Push, updates []RefUpdate, out io.Writer) int {
		return 0
	}))
	token, release := srv.Register(Push{Project: "blog", UserID: 1})
	defer release()
	vars := env(map[string]string{EnvHookSocket: sock, EnvPushToken: token})
	var out syncBuffer
	if code := RunPostReceive(context.Background(), strings.NewReader(FormatRefUpdates(testUpdates)), &out, &out, vars); code != 0 {
		t.Fatalf("first use: exit %d, output %q", code, out.String())
	}
	if code := RunPostReceive(context.Background(), strings.NewReader(FormatRefUpdates(testUpdates)), &out, &out, vars); code == 0 {
		t.Fatal("second use of a token accepted")
	}
}

func TestHookDisconnectCancelsReceiver(t *testing.T) {
	canceled := make(chan struct{})
	srv, sock := startServer(t, receiverFunc(func(ctx context.Context, p Push, updates []RefUpdate, out io.Writer) int {
		io.WriteString(out, "started\n")
		<-ctx.Done()
		close(canceled)
		return 0
	}))
	token, release := srv.Register(Push{Project: "blog", UserID: 1})
	defer release()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout := make(chanWriter, 10)
	var stderr syncBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- RunPostReceive(ctx, strings.NewReader(FormatRefUpdates(testUpdates)), stdout, &stderr,
			env(map[string]string{EnvHookSocket: sock, EnvPushToken: token}))
	}()
	testwait.Recv(t, stdout, "first line")
	cancel() // the pusher pressed Ctrl-C
	testwait.Recv(t, canceled, "the Receiver's context to be canceled")
	if code := testwait.Recv(t, exit, "exit"); code == 0 {
		t.Fatal("interrupted hook exited 0")
	}
}

func TestHookServerUnreachable(t *testing.T) {
	dir, err := os.MkdirTemp("", "mvh")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	var stdout, stderr syncBuffer
	code := RunPostReceive(context.Background(), strings.NewReader(FormatRefUpdates(testUpdates)), &stdout, &stderr,
		env(map[string]string{EnvHookSocket: filepath.Join(dir, "none.sock"), EnvPushToken: "x"}))
	if code != 1 {
		t.Fatalf("exit = %d, want 1", code)
	}
	if got := stderr.String(); got != unreachableMsg+"\n" {
		t.Fatalf("stderr = %q", got)
	}
}

func TestHookClientInputErrors(t *testing.T) {
	tests := []struct {
		name  string
		stdin string
		vars  map[string]string
	}{
		{"no env", FormatRefUpdates(testUpdates), nil},
		{"bad stdin", "not a ref update\n", map[string]string{EnvHookSocket: "/nonexistent.sock", EnvPushToken: "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr syncBuffer
			if code := RunPostReceive(context.Background(), strings.NewReader(tt.stdin), &stdout, &stderr, env(tt.vars)); code != 1 {
				t.Fatalf("exit = %d, want 1", code)
			}
			if !strings.HasPrefix(stderr.String(), "error: ") {
				t.Fatalf("stderr = %q, want an error: line", stderr.String())
			}
		})
	}
}

func TestHookSocketMode(t *testing.T) {
	_, sock := startServer(t, receiverFunc(func(ctx context.Context, p Push, updates []RefUpdate, out io.Writer) int {
		return 0
	}))
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("socket mode = %o, want 600", perm)
	}
}
