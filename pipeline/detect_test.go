package pipeline

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// tree writes files (path -> content) under a new temp dir; a path ending
// in "/" is an empty directory.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		writeFile(t, p, content, 0o644)
	}
	return dir
}

const (
	pkgBuildNoDeps = `{"scripts":{"build":"node build.js"}}`
	pkgBuildDeps   = `{"scripts":{"build":"vite build"},"devDependencies":{"vite":"^5.0.0"}}`
)

func TestDetect(t *testing.T) {
	npmCandidates := []string{"dist", "build", "out", "public"}
	cases := []struct {
		name     string
		files    map[string]string
		settings Settings
		want     Plan
		wantErr  error
	}{
		{
			name:  "static root",
			files: map[string]string{"index.html": "x"},
			want:  Plan{Kind: KindStatic, OutputDir: ".", OutputCandidates: []string{"."}},
		},
		{
			name:  "static public",
			files: map[string]string{"public/index.html": "x", "README.md": "x"},
			want:  Plan{Kind: KindStatic, OutputDir: "public", OutputCandidates: []string{"public"}},
		},
		{
			name:  "package.json without build script is static",
			files: map[string]string{"package.json": `{"scripts":{"start":"serve"}}`, "index.html": "x"},
			want:  Plan{Kind: KindStatic, OutputDir: ".", OutputCandidates: []string{"."}},
		},
		{
			name:  "npm lockfile",
			files: map[string]string{"package.json": pkgBuildDeps, "package-lock.json": "{}"},
			want: Plan{Kind: KindNPM, PackageManager: "npm", Install: []string{"npm", "ci"},
				Build: []string{"npm", "run", "build"}, OutputCandidates: npmCandidates},
		},
		{
			name:  "npm shrinkwrap",
			files: map[string]string{"package.json": pkgBuildDeps, "npm-shrinkwrap.json": "{}"},
			want: Plan{Kind: KindNPM, PackageManager: "npm", Install: []string{"npm", "ci"},
				Build: []string{"npm", "run", "build"}, OutputCandidates: npmCandidates},
		},
		{
			name:  "yarn",
			files: map[string]string{"package.json": pkgBuildDeps, "yarn.lock": ""},
			want: Plan{Kind: KindNPM, PackageManager: "yarn", Install: []string{"yarn", "install", "--frozen-lockfile"},
				Build: []string{"yarn", "run", "build"}, OutputCandidates: npmCandidates},
		},
		{
			name:  "pnpm",
			files: map[string]string{"package.json": pkgBuildDeps, "pnpm-lock.yaml": ""},
			want: Plan{Kind: KindNPM, PackageManager: "pnpm", Install: []string{"pnpm", "install", "--frozen-lockfile"},
				Build: []string{"pnpm", "run", "build"}, OutputCandidates: npmCandidates},
		},
		{
			name:  "bun binary lockfile",
			files: map[string]string{"package.json": pkgBuildDeps, "bun.lockb": ""},
			want: Plan{Kind: KindNPM, PackageManager: "bun", Install: []string{"bun", "install", "--frozen-lockfile"},
				Build: []string{"bun", "run", "build"}, OutputCandidates: npmCandidates},
		},
		{
			name:  "bun text lockfile",
			files: map[string]string{"package.json": pkgBuildDeps, "bun.lock": ""},
			want: Plan{Kind: KindNPM, PackageManager: "bun", Install: []string{"bun", "install", "--frozen-lockfile"},
				Build: []string{"bun", "run", "build"}, OutputCandidates: npmCandidates},
		},
		{
			name:  "no lockfile",
			files: map[string]string{"package.json": pkgBuildDeps},
			want: Plan{Kind: KindNPM, PackageManager: "npm", Install: []string{"npm", "install"},
				Build: []string{"npm", "run", "build"}, OutputCandidates: npmCandidates},
		},
		{
			name:  "no dependencies skips install",
			files: map[string]string{"package.json": pkgBuildNoDeps, "index.html": "x"},
			want: Plan{Kind: KindNPM, PackageManager: "npm",
				Build: []string{"npm", "run", "build"}, OutputCandidates: npmCandidates},
		},
		{
			name:  "empty dependency objects skip install",
			files: map[string]string{"package.json": `{"scripts":{"build":"x"},"dependencies":{},"devDependencies":{}}`, "yarn.lock": ""},
			want: Plan{Kind: KindNPM, PackageManager: "yarn",
				Build: []string{"yarn", "run", "build"}, OutputCandidates: npmCandidates},
		},
		{
			name:  "workspaces need install",
			files: map[string]string{"package.json": `{"scripts":{"build":"x"},"workspaces":["packages/*"]}`},
			want: Plan{Kind: KindNPM, PackageManager: "npm", Install: []string{"npm", "install"},
				Build: []string{"npm", "run", "build"}, OutputCandidates: npmCandidates},
		},
		{
			name:     "settings override commands and output",
			files:    map[string]string{"package.json": pkgBuildDeps, "package-lock.json": "{}"},
			settings: Settings{InstallCommand: "npm i --legacy-peer-deps", BuildCommand: "npm run build:prod", OutputDir: "site/"},
			want: Plan{Kind: KindNPM, PackageManager: "npm", Install: []string{"sh", "-c", "npm i --legacy-peer-deps"},
				Build: []string{"sh", "-c", "npm run build:prod"}, OutputDir: "site", OutputCandidates: []string{"site"}},
		},
		{
			name:     "build command without package.json",
			files:    map[string]string{"Makefile": "all:"},
			settings: Settings{BuildCommand: "make"},
			want:     Plan{Kind: KindNPM, Build: []string{"sh", "-c", "make"}, OutputCandidates: npmCandidates},
		},
		{
			name:     "framework static wins over build script",
			files:    map[string]string{"package.json": pkgBuildDeps, "index.html": "x"},
			settings: Settings{Framework: "static"},
			want:     Plan{Kind: KindStatic, OutputDir: ".", OutputCandidates: []string{"."}},
		},
		{
			name:     "static output override",
			files:    map[string]string{"site/index.html": "x"},
			settings: Settings{OutputDir: "site"},
			want:     Plan{Kind: KindStatic, OutputDir: "site", OutputCandidates: []string{"site"}},
		},
		{
			name:    "nothing to serve",
			files:   map[string]string{"README.md": "x"},
			wantErr: ErrUndetectable,
		},
		{
			name:    "package.json without build script or index",
			files:   map[string]string{"package.json": `{"name":"x"}`},
			wantErr: ErrUndetectable,
		},
		{
			name:    "malformed package.json",
			files:   map[string]string{"package.json": "{\n  \"scripts\": {\"build\": \"x\",}\n}", "index.html": "x"},
			wantErr: ErrInvalidPackageJSON,
		},
		{
			name:    "package.json scripts of the wrong type",
			files:   map[string]string{"package.json": `{"scripts":"build"}`},
			wantErr: ErrInvalidPackageJSON,
		},
		{
			name:     "unknown framework",
			files:    map[string]string{"index.html": "x"},
			settings: Settings{Framework: "rails"},
			wantErr:  ErrInvalidSettings,
		},
		{
			name:     "output outside the project",
			files:    map[string]string{"index.html": "x"},
			settings: Settings{OutputDir: "../etc"},
			wantErr:  ErrInvalidSettings,
		},
		{
			name:     "framework npm without build",
			files:    map[string]string{"package.json": `{"name":"x"}`},
			settings: Settings{Framework: "npm"},
			wantErr:  ErrInvalidSettings,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := tree(t, tc.files)
			got, err := Detect(dir, tc.settings)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Detect error = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Detect: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Detect =\n %+v\nwant\n %+v", got, tc.want)
			}
			if !got.Kind.Valid() {
				t.Errorf("Kind %v not valid", got.Kind)
			}
		})
	}
}

// TestDetectMessages checks the words a user reads after a failed push.
func TestDetectMessages(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"undetectable", map[string]string{"package.json": `{}`},
			[]string{"no index.html at the root or in public/", "package.json has no build script"}},
		{"syntax error position", map[string]string{"package.json": "{\n  \"scripts\": {\"build\": \"x\",}\n}"},
			[]string{"package.json:2:", "invalid character '}'"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Detect(tree(t, tc.files), Settings{})
			if err == nil {
				t.Fatal("Detect succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestResolveOutput(t *testing.T) {
	npm := func() Plan {
		return Plan{Kind: KindNPM, OutputCandidates: []string{"dist", "build", "out", "public"}}
	}
	cases := []struct {
		name    string
		files   map[string]string
		plan    Plan
		wantDir string
		wantSPA bool
		wantErr error
	}{
		{"dist spa", map[string]string{"dist/index.html": "x", "public/favicon.ico": "x"}, npm(), "dist", true, nil},
		{"build with 404", map[string]string{"build/index.html": "x", "build/404.html": "x"}, npm(), "build", false, nil},
		{"out without index", map[string]string{"out/app.js": "x"}, npm(), "out", false, nil},
		{"public last", map[string]string{"public/index.html": "x"}, npm(), "public", true, nil},
		{"dist wins over public", map[string]string{"dist/": "", "public/index.html": "x"}, npm(), "dist", false, nil},
		{"fixed output", map[string]string{"site/index.html": "x", "dist/index.html": "x"},
			Plan{Kind: KindNPM, OutputDir: "site", OutputCandidates: []string{"site"}}, "site", true, nil},
		{"static is never spa", map[string]string{"index.html": "x"},
			Plan{Kind: KindStatic, OutputDir: ".", OutputCandidates: []string{"."}}, ".", false, nil},
		{"nothing built", map[string]string{"src/main.js": "x"}, npm(), "", false, ErrNoOutput},
		{"file not dir", map[string]string{"dist": "x"}, npm(), "", false, ErrNoOutput},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.plan
			err := ResolveOutput(tree(t, tc.files), &p)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("ResolveOutput error = %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), "dist/, build/, out/, public/") {
					t.Errorf("error %q does not list what was looked for", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ResolveOutput: %v", err)
			}
			if p.OutputDir != tc.wantDir || p.SPA != tc.wantSPA {
				t.Errorf("OutputDir, SPA = %q, %v; want %q, %v", p.OutputDir, p.SPA, tc.wantDir, tc.wantSPA)
			}
		})
	}

	t.Run("symlink out of the project", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Symlink("/etc", filepath.Join(dir, "dist")); err != nil {
			t.Fatal(err)
		}
		p := npm()
		if err := ResolveOutput(dir, &p); !errors.Is(err, ErrNoOutput) {
			t.Fatalf("ResolveOutput followed dist -> /etc: err = %v, OutputDir = %q", err, p.OutputDir)
		}
	})
}

func TestKind(t *testing.T) {
	cases := []struct {
		k     Kind
		name  string
		valid bool
	}{
		{KindStatic, "static", true},
		{KindNPM, "npm", true},
		{Kind(0), "Kind(0)", false},
		{Kind(99), "Kind(99)", false},
	}
	for _, tc := range cases {
		if tc.k.String() != tc.name || tc.k.Valid() != tc.valid {
			t.Errorf("Kind(%d): String %q Valid %v; want %q %v", int(tc.k), tc.k.String(), tc.k.Valid(), tc.name, tc.valid)
		}
	}
}
