package pipeline

import (
	"cmp"
	"fmt"
)

// Defaults of how much command output one build's log keeps (see Config).
const (
	DefaultMaxLogLines = 20_000
	DefaultMaxLogBytes = 8 << 20
)

// tailLines is how many of the last lines past the budget a build still
// shows when its command ends: the error that stopped a build is at the
// end of its output.
const tailLines = 100

// logBudget bounds the command output one build keeps: its first maxLines
// lines or maxBytes bytes, whichever ends first, then only a count of the
// lines past that and the last tailLines of them. The platform's own lines
// (stages, the result, the URLs) are not counted. A build that prints two
// million lines can then neither grow the server's memory, the database or
// a follower's stream without bound nor lose its result.
//
// It is used by one build's goroutines one at a time (the LineWriter's
// lock), and needs no lock of its own.
type logBudget struct {
	maxLines, maxBytes int
	lines, bytes       int // command output kept so far

	dropped int      // lines past the budget since the last notice
	tail    []string // ring of the last tailLines of them
	next    int      // where the ring's next line goes
}

func newLogBudget(maxLines, maxBytes int) *logBudget {
	return &logBudget{maxLines: cmp.Or(maxLines, DefaultMaxLogLines), maxBytes: cmp.Or(maxBytes, DefaultMaxLogBytes)}
}

// keep reports whether line fits the budget and should be published; a
// line that does not is counted and kept in the tail.
func (b *logBudget) keep(line string) bool {
	if b.dropped == 0 && b.lines < b.maxLines && b.bytes+len(line)+1 <= b.maxBytes {
		b.lines++
		b.bytes += len(line) + 1
		return true
	}
	b.dropped++
	if len(b.tail) < tailLines {
		b.tail = append(b.tail, line)
	} else {
		b.tail[b.next] = line
		b.next = (b.next + 1) % tailLines
	}
	return false
}

// endOfOutput publishes, when lines were left out, a notice of how many and
// then the last of them in order; call it when a command ends.
func (b *logBudget) endOfOutput(publish func(string)) {
	if b.dropped == 0 {
		return
	}
	shown := len(b.tail)
	if b.dropped > shown {
		publish(fmt.Sprintf("[%d lines of output left out: a build's log keeps %d lines or %s; the last %d follow]",
			b.dropped-shown, b.maxLines, humanBytes(int64(b.maxBytes)), shown))
	}
	for i := range shown {
		publish(b.tail[(b.next+i)%len(b.tail)])
	}
	b.dropped, b.tail, b.next = 0, nil, 0
}
