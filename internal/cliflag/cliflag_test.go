package cliflag

import (
	"flag"
	"io"
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		follow bool
		lines  int
		words  []string
	}{
		{"flags first", []string{"-f", "--lines", "3", "blog"}, true, 3, []string{"blog"}},
		{"flags last", []string{"blog", "-f", "--lines=3"}, true, 3, []string{"blog"}},
		{"flags between", []string{"a", "-f", "b"}, true, 0, []string{"a", "b"}},
		{"double dash", []string{"a", "--", "-f", "b"}, false, 0, []string{"a", "-f", "b"}},
		{"no flags", []string{"a", "b"}, false, 0, []string{"a", "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			follow := fs.Bool("f", false, "")
			lines := fs.Int("lines", 0, "")
			if err := Parse(fs, tc.args); err != nil {
				t.Fatal(err)
			}
			if *follow != tc.follow || *lines != tc.lines || !slices.Equal(fs.Args(), tc.words) {
				t.Fatalf("got -f=%v --lines=%d %q", *follow, *lines, fs.Args())
			}
		})
	}
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := Parse(fs, []string{"a", "--nope"}); err == nil {
		t.Fatal("an unknown flag was accepted")
	}
}
