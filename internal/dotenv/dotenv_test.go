package dotenv

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	in := `# comment
A=1
export B = two words # trailing comment
C="quoted # not a comment"
D='single $literal'
E="multi
line"
F="esc \"q\" \\ \n"

G=
`
	got, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"A=1", "B=two words", "C=quoted # not a comment", "D=single $literal", "E=multi\nline", "F=esc \"q\" \\ \n", "G="}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	for _, bad := range []string{"NOEQUALS", `X="open`, `Y='open`} {
		if _, err := Parse(strings.NewReader(bad)); err == nil {
			t.Errorf("%q parsed without error", bad)
		}
	}
}
