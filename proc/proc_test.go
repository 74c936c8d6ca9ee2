package proc

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sh returns a command (from Command) running script with /bin/sh.
func sh(ctx context.Context, stop syscall.Signal, script string) *exec.Cmd {
	cmd := Command(ctx, stop, 5*time.Second, "/bin/sh", "-c", script)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	return cmd
}

func TestStatusAndExitCode(t *testing.T) {
	tests := []struct {
		name   string
		script string
		status Status
		code   int
	}{
		{"success", "exit 0", Status{}, 0},
		{"exit code", "exit 3", Status{Code: 3}, 3},
		{"signal", "kill -TERM $$", Status{Code: -1, Signal: syscall.SIGTERM}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := sh(context.Background(), syscall.SIGTERM, tt.script).Run()
			st, ok := StatusOf(err)
			if !ok || st != tt.status {
				t.Errorf("StatusOf(%v) = %+v, %v; want %+v", err, st, ok, tt.status)
			}
			if got := ExitCode(err); got != tt.code {
				t.Errorf("ExitCode(%v) = %d, want %d", err, got, tt.code)
			}
		})
	}
	notStarted := Command(context.Background(), syscall.SIGTERM, time.Second, "/nonexistent/tool").Run()
	if _, ok := StatusOf(notStarted); ok || ExitCode(notStarted) != 1 {
		t.Errorf("a command that never ran: StatusOf ok=%v ExitCode=%d; want false, 1", ok, ExitCode(notStarted))
	}
}

func TestCommandEnvironmentIsEmpty(t *testing.T) {
	t.Setenv("PROC_TEST_SECRET", "hunter2")
	cmd := Command(context.Background(), syscall.SIGTERM, time.Second, "/usr/bin/env")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if len(strings.TrimSpace(string(out))) != 0 {
		t.Errorf("child environment = %q, want nothing of the server's", out)
	}
}

// TestCancelSignalsTheGroup: when ctx ends, the stop signal reaches the
// leader's children too, not only the leader.
func TestCancelSignalsTheGroup(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The child traps TERM, says so and exits; the leader waits for it.
	cmd := sh(ctx, syscall.SIGTERM, `sh -c 'trap "echo child got TERM; exit 0" TERM; echo ready; while :; do sleep 0.1; done' & wait`)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || sc.Text() != "ready" {
		t.Fatalf("first line %q, want ready", sc.Text())
	}
	cancel()
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	_ = cmd.Wait()
	if !strings.Contains(strings.Join(lines, "\n"), "child got TERM") {
		t.Errorf("output after cancel %q: the child did not get SIGTERM", lines)
	}
}

func TestKillGroupRefusesNonGroups(t *testing.T) {
	for _, pid := range []int{-5, 0, 1} {
		if err := KillGroup(pid, syscall.SIGTERM); !errors.Is(err, ErrNoGroup) {
			t.Errorf("KillGroup(%d) = %v, want ErrNoGroup", pid, err)
		}
	}
	cmd := sh(context.Background(), syscall.SIGTERM, "exit 0")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if err := KillGroup(cmd.Process.Pid, syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("KillGroup of a finished group = %v, want os.ErrProcessDone", err)
	}
}

// TestPipedKeepsOrderAndKillsLeftovers: stdout and stderr arrive in the
// order written, and when the command exits, what it left running in its
// group is killed and its output cut.
func TestPipedKeepsOrderAndKillsLeftovers(t *testing.T) {
	got := runPiped(t, sh(context.Background(), syscall.SIGTERM, `echo out1; echo err1 >&2; echo out2; sleep 1000 & echo "left $!"`))
	if len(got) != 4 || strings.Join(got[:3], ",") != "out1,err1,out2" {
		t.Fatalf("lines %q, want out1, err1, out2 in order, then the leftover's pid", got)
	}
	pid, err := strconv.Atoi(strings.TrimPrefix(got[3], "left "))
	if err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
}

// TestPipedCutsOutputOfEscapees: a process that left the group (setsid)
// and keeps the pipe open cannot make Wait hang.
func TestPipedCutsOutputOfEscapees(t *testing.T) {
	cmd := Command(context.Background(), syscall.SIGTERM, 50*time.Millisecond, "/bin/sh", "-c", `setsid sleep 1000 & echo "escaped $!"`)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	got := runPiped(t, cmd)
	if len(got) != 1 {
		t.Fatalf("lines %q", got)
	}
	pid, err := strconv.Atoi(strings.TrimPrefix(got[0], "escaped "))
	if err != nil {
		t.Fatal(err)
	}
	// Not ours to leave behind: it escaped the group on purpose here.
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// runPiped runs cmd with StartPiped and Wait(0) and returns its output lines.
func runPiped(t *testing.T, cmd *exec.Cmd) []string {
	t.Helper()
	var got []string
	lines := NewLineWriter(100, func(s string) { got = append(got, s) })
	p, err := StartPiped(cmd, lines)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(0); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	lines.Flush()
	return got
}

// waitGone waits until pid has exited (a zombie counts: it runs nothing).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return
		}
		if _, after, ok := strings.Cut(string(b), ") "); ok && strings.HasPrefix(after, "Z") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still runs", pid)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, with a deadline
	}
}
