package pipeline

import (
	"context"
	"errors"
	"testing"
	"time"

	"minivercel/limits"
	"minivercel/limits/limitstest"
	"minivercel/schema"
)

// limited returns sb with its commands in cgroups under l, skipping where
// no cgroup is writable. After the test no group of it may be left.
func limited(t *testing.T, sb Sandbox, l limits.Limits) Sandbox {
	t.Helper()
	sb.Cgroups, sb.Limits = limitstest.Manager(t), l
	return sb
}

func requireNoGroups(t *testing.T, sb Sandbox) {
	t.Helper()
	if names, err := sb.Cgroups.Groups(); err != nil || len(names) > 0 {
		t.Fatalf("cgroups left after the command: %v, %v", names, err)
	}
}

// TestRunOutOfMemory: a command that allocates memory in a loop is killed
// by its 64 MiB limit, quickly, and the build's reason says so.
func TestRunOutOfMemory(t *testing.T) {
	forEachSandbox(t, func(t *testing.T, sb Sandbox) {
		sb = limited(t, sb, limits.Limits{Memory: 64 << 20, Pids: 64})
		w := newWorkspace(t, sb)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := w.run(t, ctx, "node", "-e", `const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1))`)
		if !errors.Is(err, ErrCommandFailed) || !errors.Is(err, limits.ErrOutOfMemory) {
			t.Fatalf("err = %v, want a failed command stopped by the memory limit", err)
		}
		if got, want := reasonFor(schema.StageInstall, err), "install failed: killed: out of memory (limit 64 MiB)"; got != want {
			t.Fatalf("reason = %q, want %q", got, want)
		}
		requireNoGroups(t, sb)
	})
}

// TestRunProcessLimit: a command that starts processes in a loop is
// stopped by the process limit; the build fails with that reason and
// nothing it started is left.
func TestRunProcessLimit(t *testing.T) {
	forEachSandbox(t, func(t *testing.T, sb Sandbox) {
		sb = limited(t, sb, limits.Limits{Pids: 32})
		w := newWorkspace(t, sb)
		marker := newMarker()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := w.run(t, ctx, "sh", "-c", `while true; do sleep `+marker+` & done`)
		if !errors.Is(err, limits.ErrTooManyProcesses) {
			t.Fatalf("err = %v, want the process limit", err)
		}
		if got, want := reasonFor(schema.StageBuild, err), "build failed: stopped: process limit reached (limit 32 processes)"; got != want {
			t.Fatalf("reason = %q, want %q", got, want)
		}
		if left := markedProcs(t, marker); len(left) > 0 {
			t.Fatalf("processes left: %v", left)
		}
		requireNoGroups(t, sb)
	})
}

// TestRunWithinLimits: a command that stays under its limits runs as
// before, and its group is removed.
func TestRunWithinLimits(t *testing.T) {
	sb := limited(t, buildUser(t), limits.Limits{Memory: 256 << 20, Pids: 64, CPUWeight: 50})
	w := newWorkspace(t, sb)
	out, err := w.run(t, context.Background(), "sh", "-c", "echo ok")
	if err != nil || out != "ok\n" {
		t.Fatalf("run = %q, %v", out, err)
	}
	if got := sb.LimitsSummary(); got != "256 MiB memory, 64 processes, CPU weight 50 ("+sb.Cgroups.Mode().String()+")" {
		t.Fatalf("LimitsSummary = %q", got)
	}
	requireNoGroups(t, sb)
}
