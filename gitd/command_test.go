package gitd

import (
	"errors"
	"path/filepath"
	"testing"

	"minivercel/schema"

	"pgregory.net/rapid"
)

func TestParseCommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		raw     string
		svc     service
		project string
		wantErr error
	}{
		{"receive quoted slash", "git-receive-pack '/blog.git'", receivePack, "blog", nil},
		{"receive scp style", "git-receive-pack 'blog.git'", receivePack, "blog", nil},
		{"upload no suffix", "git-upload-pack '/blog'", uploadPack, "blog", nil},
		{"space spelling", "git receive-pack 'my-app.git'", receivePack, "my-app", nil},
		{"unquoted", "git-upload-pack /blog.git", uploadPack, "blog", nil},
		{"parent", "git-receive-pack '../x.git'", "", "", schema.ErrInvalidName},
		{"escape", "git-receive-pack '/../../tmp/evil.git'", "", "", schema.ErrInvalidName},
		{"home", "git-receive-pack '~root/x.git'", "", "", schema.ErrInvalidName},
		{"absolute", "git-upload-pack '/etc/passwd'", "", "", schema.ErrInvalidName},
		{"nested", "git-upload-pack 'a/b.git'", "", "", schema.ErrInvalidName},
		{"quote injection", "git-upload-pack 'a'\\''b.git'", "", "", schema.ErrInvalidName},
		{"two paths", "git-upload-pack 'a.git' 'b.git'", "", "", schema.ErrInvalidName},
		{"double slash", "git-upload-pack '//a.git'", "", "", schema.ErrInvalidName},
		{"upper", "git-upload-pack 'Blog.git'", "", "", schema.ErrInvalidName},
		{"reserved", "git-receive-pack 'api.git'", "", "", schema.ErrInvalidName},
		{"empty path", "git-receive-pack ''", "", "", schema.ErrInvalidName},
		{"shell", "", "", "", errNotGit},
		{"other command", "rm -rf /", "", "", errNotGit},
		{"archive", "git-upload-archive 'blog.git'", "", "", errNotGit},
		{"no path", "git-receive-pack", "", "", errNotGit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, project, err := parseCommand(tt.raw)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("parseCommand(%q) = %q, %q, %v; want %v", tt.raw, svc, project, err, tt.wantErr)
				}
				return
			}
			if err != nil || svc != tt.svc || project != tt.project {
				t.Fatalf("parseCommand(%q) = %q, %q, %v; want %q, %q", tt.raw, svc, project, err, tt.svc, tt.project)
			}
		})
	}
}

// TestParseCommandStaysInReposDir: whatever the client sends, an accepted
// command names a repository directly inside the repos directory.
func TestParseCommandStaysInReposDir(t *testing.T) {
	t.Parallel()
	const reposDir = "/srv/repos"
	rapid.Check(t, func(t *rapid.T) {
		path := rapid.OneOf(
			rapid.String(),
			rapid.StringMatching(`'?/?[a-z0-9./~'-]{0,20}(\.git)?'?`),
		).Draw(t, "path")
		verb := rapid.SampledFrom([]string{"git-receive-pack ", "git upload-pack "}).Draw(t, "verb")
		_, name, err := parseCommand(verb + path)
		if err != nil {
			return
		}
		dir := filepath.Join(reposDir, name+".git")
		if filepath.Dir(dir) != reposDir || filepath.Base(dir) != name+".git" {
			t.Fatalf("command %q escapes to %q", verb+path, dir)
		}
	})
}
