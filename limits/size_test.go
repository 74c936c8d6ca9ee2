package limits

import (
	"errors"
	"math"
	"testing"

	"pgregory.net/rapid"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "0", want: 0},
		{in: "4096", want: 4096},
		{in: "512M", want: 512 << 20},
		{in: "512m", want: 512 << 20},
		{in: "512MiB", want: 512 << 20},
		{in: "512MB", want: 512 << 20},
		{in: "2G", want: 2 << 30},
		{in: "2 GiB", want: 2 << 30},
		{in: " 1T ", want: 1 << 40},
		{in: "64k", want: 64 << 10},
		{in: "100B", want: 100},
		{in: "8E", bad: true},
		{in: "", bad: true},
		{in: "G", bad: true},
		{in: "-1G", bad: true},
		{in: "1.5G", bad: true},
		{in: "1i", bad: true},
		{in: "1 2G", bad: true},
		{in: "0x10", bad: true},
		{in: "9000000000T", bad: true},
		{in: "99999999999999999999", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSize(tc.in)
			if tc.bad {
				if !errors.Is(err, ErrInvalidSize) {
					t.Fatalf("ParseSize(%q) = %d, %v; want ErrInvalidSize", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestFormatSize(t *testing.T) {
	for _, tc := range []struct {
		in   int64
		want string
	}{
		{0, "0 B"},
		{1000, "1000 B"},
		{64 << 20, "64 MiB"},
		{1536 << 20, "1536 MiB"},
		{2 << 30, "2 GiB"},
		{3 << 40, "3 TiB"},
	} {
		if got := FormatSize(tc.in); got != tc.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestSizeRoundTrip: whatever FormatSize and the flag's String write,
// ParseSize reads back as the same number.
func TestSizeRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		shift := rapid.SampledFrom([]uint{0, 10, 20, 30, 40}).Draw(t, "shift")
		n := rapid.Int64Range(0, math.MaxInt64>>shift).Draw(t, "n") << shift
		got, err := ParseSize(FormatSize(n))
		if err != nil || got != n {
			t.Fatalf("ParseSize(FormatSize(%d)=%q) = %d, %v", n, FormatSize(n), got, err)
		}
		s := Size(n)
		var back Size
		if err := back.Set(s.String()); err != nil || back != s {
			t.Fatalf("Size(%d).String() = %q reads back as %d, %v", n, s.String(), back, err)
		}
	})
}

// TestParseSizeNeverPanics: any text is a size or ErrInvalidSize, never a
// negative number.
func TestParseSizeNeverPanics(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := rapid.StringMatching(`[ 0-9a-zA-Z.-]{0,24}`).Draw(t, "s")
		n, err := ParseSize(s)
		if err != nil && !errors.Is(err, ErrInvalidSize) {
			t.Fatalf("ParseSize(%q): %v is not ErrInvalidSize", s, err)
		}
		if err == nil && n < 0 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
	})
}

func TestLimitsOr(t *testing.T) {
	def := Limits{Memory: 1 << 30, Pids: 256, CPUWeight: 100}
	got := Limits{Memory: 512 << 20}.Or(def)
	want := Limits{Memory: 512 << 20, Pids: 256, CPUWeight: 100}
	if got != want {
		t.Fatalf("Or = %+v, want %+v", got, want)
	}
	if s := want.String(); s != "512 MiB memory, 256 processes, CPU weight 100" {
		t.Fatalf("String = %q", s)
	}
}
