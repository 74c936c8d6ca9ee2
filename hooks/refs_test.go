package hooks

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

const (
	zero40 = "0000000000000000000000000000000000000000"
	sha40a = "1111111111111111111111111111111111111111"
	sha40b = "abcdefabcdefabcdefabcdefabcdefabcdef0123"
	sha64a = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	sha64b = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

func TestParseRefUpdates(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []RefUpdate
	}{
		{"empty", "", nil},
		{"one branch", sha40a + " " + sha40b + " refs/heads/main\n",
			[]RefUpdate{{sha40a, sha40b, "refs/heads/main"}}},
		{"no final newline", sha40a + " " + sha40b + " refs/heads/main",
			[]RefUpdate{{sha40a, sha40b, "refs/heads/main"}}},
		{"sha256 and tag", sha64a + " " + sha64b + " refs/tags/v1.0\n" + sha64b + " " + sha64a + " refs/heads/feat/x\n",
			[]RefUpdate{{sha64a, sha64b, "refs/tags/v1.0"}, {sha64b, sha64a, "refs/heads/feat/x"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRefUpdates(strings.NewReader(tt.input))
			if err != nil {
				t.Fatalf("ParseRefUpdates: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestParseRefUpdatesRejects(t *testing.T) {
	tests := []struct {
		name  string
		input string
	}{
		{"short id", "1234 " + sha40b + " refs/heads/main\n"},
		{"upper hex", strings.ToUpper(sha40b) + " " + sha40a + " refs/heads/main\n"},
		{"non hex", strings.Repeat("g", 40) + " " + sha40a + " refs/heads/main\n"},
		{"mixed lengths", sha40a + " " + sha64a + " refs/heads/main\n"},
		{"two fields", sha40a + " " + sha40b + "\n"},
		{"double space", sha40a + "  " + sha40b + " refs/heads/main\n"},
		{"space in ref", sha40a + " " + sha40b + " refs/heads/my branch\n"},
		{"dot dot", sha40a + " " + sha40b + " refs/heads/../../etc\n"},
		{"control char", sha40a + " " + sha40b + " refs/heads/ma\x01in\n"},
		{"carriage return", sha40a + " " + sha40b + " refs/heads/main\r\n"},
		{"not under refs", sha40a + " " + sha40b + " HEAD\n"},
		{"lock suffix", sha40a + " " + sha40b + " refs/heads/main.lock\n"},
		{"empty component", sha40a + " " + sha40b + " refs/heads//main\n"},
		{"hidden component", sha40a + " " + sha40b + " refs/heads/.x\n"},
		{"empty line", "\n"},
		{"too long", sha40a + " " + sha40b + " refs/heads/" + strings.Repeat("a", 5000) + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRefUpdates(strings.NewReader(tt.input))
			if !errors.Is(err, ErrBadRefUpdate) {
				t.Fatalf("ParseRefUpdates(%q) = %v, want ErrBadRefUpdate", tt.input, err)
			}
		})
	}
}

func TestRefUpdateMethods(t *testing.T) {
	u := RefUpdate{Old: zero40, New: sha40a, Name: "refs/heads/feat/login"}
	if b, ok := u.Branch(); !ok || b != "feat/login" {
		t.Fatalf("Branch() = %q, %v", b, ok)
	}
	if !u.IsCreate() || u.IsDelete() {
		t.Fatalf("create: IsCreate=%v IsDelete=%v", u.IsCreate(), u.IsDelete())
	}
	d := RefUpdate{Old: sha40a, New: zero40, Name: "refs/tags/v1"}
	if _, ok := d.Branch(); ok {
		t.Fatal("a tag is not a branch")
	}
	if !d.IsDelete() || d.IsCreate() {
		t.Fatalf("delete: IsCreate=%v IsDelete=%v", d.IsCreate(), d.IsDelete())
	}
}

func genRefUpdate() *rapid.Generator[RefUpdate] {
	return rapid.Custom(func(t *rapid.T) RefUpdate {
		n := rapid.SampledFrom([]int{40, 64}).Draw(t, "idlen")
		id := rapid.StringOfN(rapid.SampledFrom([]rune("0123456789abcdef")), n, n, -1)
		comps := rapid.SliceOfN(rapid.StringMatching(`[a-zA-Z0-9_+-][a-zA-Z0-9_.+-]{0,10}[a-zA-Z0-9_+-]`), 1, 4).Draw(t, "comps")
		top := rapid.SampledFrom([]string{"heads", "tags", "notes"}).Draw(t, "top")
		return RefUpdate{
			Old:  id.Draw(t, "old"),
			New:  id.Draw(t, "new"),
			Name: "refs/" + top + "/" + strings.Join(comps, "/"),
		}
	}).Filter(func(u RefUpdate) bool {
		return checkRefName(u.Name) == nil
	})
}

func TestRefUpdatesRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		in := rapid.SliceOfN(genRefUpdate(), 0, 8).Draw(t, "updates")
		out, err := ParseRefUpdates(strings.NewReader(FormatRefUpdates(in)))
		if err != nil {
			t.Fatalf("parse formatted %q: %v", FormatRefUpdates(in), err)
		}
		if len(in) == 0 && len(out) == 0 {
			return
		}
		if !reflect.DeepEqual(in, out) {
			t.Fatalf("round trip: got %#v, want %#v", out, in)
		}
	})
}

func TestParseRefUpdatesArbitraryInput(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := rapid.SliceOf(rapid.Byte()).Draw(t, "input")
		updates, err := ParseRefUpdates(strings.NewReader(string(b)))
		if err != nil {
			if !errors.Is(err, ErrBadRefUpdate) {
				t.Fatalf("error %v does not wrap ErrBadRefUpdate", err)
			}
			return
		}
		// Whatever is accepted must be valid and survive a round trip.
		for _, u := range updates {
			if err := u.validate(); err != nil {
				t.Fatalf("accepted invalid update %#v: %v", u, err)
			}
		}
		again, err := ParseRefUpdates(strings.NewReader(FormatRefUpdates(updates)))
		if err != nil || len(again) != len(updates) {
			t.Fatalf("re-parse: %v, %d != %d", err, len(again), len(updates))
		}
	})
}
