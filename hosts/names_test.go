package hosts

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func TestValidateProject(t *testing.T) {
	tests := []struct {
		name  string
		input string
		ok    bool
	}{
		{"simple", "blog", true},
		{"digits and dash", "my-app-2", true},
		{"starts with digit", "1app", true},
		{"single char", "a", true},
		{"63 chars", strings.Repeat("a", 63), true},
		{"empty", "", false},
		{"dot dot", "..", false},
		{"parent path", "../x", false},
		{"tilde", "~root", false},
		{"absolute", "/etc", false},
		{"quote", "a'b", false},
		{"double quote", `a"b`, false},
		{"upper case", "A", false},
		{"double dash", "a--b", false},
		{"trailing dash", "app-", false},
		{"leading dash", "-app", false},
		{"64 chars", strings.Repeat("a", 64), false},
		{"reserved api", "api", false},
		{"reserved www", "www", false},
		{"reserved minivercel", "minivercel", false},
		{"dot git suffix", "app.git", false},
		{"space", "my app", false},
		{"newline", "app\n", false},
		{"nul", "app\x00", false},
		{"non ascii", "café", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateProject(tt.input)
			if tt.ok && err != nil {
				t.Fatalf("ValidateProject(%q) = %v, want nil", tt.input, err)
			}
			if !tt.ok {
				if err == nil {
					t.Fatalf("ValidateProject(%q) = nil, want error", tt.input)
				}
				if !errors.Is(err, ErrInvalidProject) {
					t.Fatalf("ValidateProject(%q) = %v, want it to wrap ErrInvalidProject", tt.input, err)
				}
				if !strings.HasPrefix(err.Error(), "invalid project name") {
					t.Fatalf("error %q should start with %q", err, "invalid project name")
				}
			}
		})
	}
}

// TestValidateProjectSafePath checks the property gitd relies on: any
// accepted name, joined as <root>/<name>.git, stays directly under root.
func TestValidateProjectSafePath(t *testing.T) {
	const root = "/srv/minivercel/repos"
	gen := rapid.OneOf(
		rapid.String(),
		rapid.StringMatching(`[a-z0-9][a-z0-9-]{0,70}`),
		rapid.StringMatching(`[a-z0-9./~'"\\-]{1,10}`),
	)
	rapid.Check(t, func(t *rapid.T) {
		name := gen.Draw(t, "name")
		if ValidateProject(name) != nil {
			return
		}
		p := filepath.Join(root, name+".git")
		if filepath.Dir(p) != root {
			t.Fatalf("name %q: %q is not directly under %q", name, p, root)
		}
		if filepath.Base(p) != name+".git" {
			t.Fatalf("name %q: path %q was rewritten by Join", name, p)
		}
		if strings.ContainsAny(name, "/~'\"`\\") || strings.Contains(name, "..") {
			t.Fatalf("accepted unsafe name %q", name)
		}
	})
}

// TestValidateProjectAcceptsGrammar checks the other direction: every
// name of the documented grammar that is not reserved is accepted.
func TestValidateProjectAcceptsGrammar(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		name := rapid.StringMatching(`[a-z0-9]([a-z0-9]|-[a-z0-9]){0,30}`).Draw(t, "name")
		if reserved[name] {
			return
		}
		if err := ValidateProject(name); err != nil {
			t.Fatalf("ValidateProject(%q) = %v, want nil", name, err)
		}
	})
}

func TestBranchSlug(t *testing.T) {
	for in, want := range map[string]string{
		"main": "main", "feature/Login-Page": "feature-login-page", "fix__bug--42": "fix-bug-42",
		"--x--": "x", "über": "ber", strings.Repeat("a", 50): strings.Repeat("a", 40), "release/v1.2": "release-v1-2",
	} {
		if got := BranchSlug(in); got != want {
			t.Errorf("BranchSlug(%q) = %q, want %q", in, got, want)
		}
	}
}
