package sshcmd

import (
	"errors"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
		err      error
	}{
		{"empty", "", nil, nil},
		{"spaces only", "  \t\n ", nil, nil},
		{"words", "logs blog -f", []string{"logs", "blog", "-f"}, nil},
		{"runs of blanks", "  env\tlist \n blog ", []string{"env", "list", "blog"}, nil},
		{"single quotes", `env set blog 'A=b c'`, []string{"env", "set", "blog", "A=b c"}, nil},
		{"single quotes keep backslashes", `'a\b' '\'`, []string{`a\b`, `\`}, nil},
		{"double quotes", `"a b" "say \"hi\"" "back\\slash" "\n"`, []string{"a b", `say "hi"`, `back\slash`, `\n`}, nil},
		{"quotes join a word", `A='b c'"d e"f`, []string{"A=b cd ef"}, nil},
		{"empty quotes are a word", `'' ""`, []string{"", ""}, nil},
		{"backslash outside quotes", `a\ b \'c`, []string{"a b", "'c"}, nil},
		{"trailing backslash is literal", `a\`, []string{`a\`}, nil},
		{"nothing is expanded", "$HOME ~ * $(id) `id` ; | & > <", []string{"$HOME", "~", "*", "$(id)", "`id`", ";", "|", "&", ">", "<"}, nil},
		{"unterminated single", "env set 'a", nil, ErrUnterminatedQuote},
		{"unterminated double", `env set "a\"`, nil, ErrUnterminatedQuote},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Split(tc.in)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !errors.Is(err, ErrUsage) {
					t.Fatalf("Split(%q) = %q, %v; want %v", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("Split(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
	if _, err := Split(string(make([]byte, maxCommandBytes+1))); !errors.Is(err, ErrUsage) {
		t.Fatalf("an over-long command: %v", err)
	}
}

// TestSplitJoinProperty: splitting the quoted join of any words gives the
// words back, whatever bytes they hold.
func TestSplitJoinProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		words := rapid.SliceOf(rapid.OneOf(
			rapid.String(),
			rapid.StringMatching(`[a-z'" \\$\t-]{0,8}`),
		)).Draw(t, "words")
		line := Join(words)
		got, err := Split(line)
		if err != nil {
			t.Fatalf("Split(%q): %v", line, err)
		}
		if len(words) == 0 {
			words = nil
		}
		if !slices.Equal(got, words) {
			t.Fatalf("Split(Join(%q)) = %q (line %q)", words, got, line)
		}
	})
}
