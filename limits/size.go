package limits

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Limits are the resources one process tree may use: a build command with
// everything it starts, or one process of an app with its children.
type Limits struct {
	// Memory caps the tree's memory in bytes: what its processes use plus
	// the page cache they cause, in a cgroup; each process's data segment
	// with rlimits. Zero: no cap.
	Memory int64
	// Pids caps the processes and threads the tree may have at once; with
	// rlimits, those of the tree's user. Zero: no cap.
	Pids int64
	// CPUWeight is the tree's share of CPU time when the CPUs are busy, on
	// cgroup v2's scale of 1 to 10000 where 100 is an ordinary process. It
	// has no effect with rlimits. Zero: 100.
	CPUWeight int64
}

// Or returns l with each zero field taken from def: a project's own limits
// over the server's defaults.
func (l Limits) Or(def Limits) Limits {
	if l.Memory == 0 {
		l.Memory = def.Memory
	}
	if l.Pids == 0 {
		l.Pids = def.Pids
	}
	if l.CPUWeight == 0 {
		l.CPUWeight = def.CPUWeight
	}
	return l
}

// String describes the limits for a log line: "2 GiB memory, 512
// processes, CPU weight 50".
func (l Limits) String() string {
	var parts []string
	if l.Memory > 0 {
		parts = append(parts, FormatSize(l.Memory)+" memory")
	}
	if l.Pids > 0 {
		parts = append(parts, strconv.FormatInt(l.Pids, 10)+" processes")
	}
	if l.CPUWeight > 0 {
		parts = append(parts, "CPU weight "+strconv.FormatInt(l.CPUWeight, 10))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

var units = []struct {
	suffix string
	shift  uint
}{{"T", 40}, {"G", 30}, {"M", 20}, {"K", 10}}

// ParseSize parses a size in bytes: a whole number, optionally followed by
// K, M, G or T (powers of 1024, in either case, with an optional "i" and
// "B", and spaces before it: 512M, 512MiB, 2g, 2GB, "2 GiB" all mean the
// same), or "0" for none. A size that does not fit in an int64 is an error.
func ParseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(t, "B")
	t, binary := strings.CutSuffix(t, "I")
	var shift uint
	for _, u := range units {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, shift = rest, u.shift
			break
		}
	}
	t = strings.TrimRight(t, " ")
	if t == "" || strings.TrimLeft(t, "0123456789") != "" || (binary && shift == 0) {
		return 0, fmt.Errorf("%w %q: want a number with an optional K, M, G or T, such as 512M", ErrInvalidSize, s)
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("%w %q: too large", ErrInvalidSize, s)
	}
	return n << shift, nil
}

// FormatSize writes n bytes in the largest binary unit that divides it
// ("2 GiB", "1536 MiB"), or in bytes; ParseSize reads it back.
func FormatSize(n int64) string {
	if n != 0 {
		for _, u := range units {
			if n%(1<<u.shift) == 0 {
				return strconv.FormatInt(n>>u.shift, 10) + " " + u.suffix + "iB"
			}
		}
	}
	return strconv.FormatInt(n, 10) + " B"
}

// Size is a size in bytes as a command-line flag (flag.Value): it is set
// from text ParseSize reads and printed by FormatSize.
type Size int64

// Set implements flag.Value.
func (s *Size) Set(v string) error {
	n, err := ParseSize(v)
	if err != nil {
		return err
	}
	*s = Size(n)
	return nil
}

// String implements flag.Value.
func (s *Size) String() string {
	if s == nil {
		return "0"
	}
	return strings.ReplaceAll(FormatSize(int64(*s)), " ", "")
}
