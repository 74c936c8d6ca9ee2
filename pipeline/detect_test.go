package pipeline

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// npmCandidates are the output directories an npm build is searched for.
var npmCandidates = []string{"dist", "build", "out", "public"}

// wantNPM is the plan Detect makes for a package.json with a build script:
// install with pm and the install arguments (none: no install step), then
// pm run build.
func wantNPM(pm string, install ...string) Plan {
	p := Plan{Kind: KindNPM, PackageManager: pm, Build: []string{pm, "run", "build"}, OutputCandidates: npmCandidates}
	if len(install) > 0 {
		p.Install = append([]string{pm}, install...)
	}
	return p
}

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
	pkgBuildDeps   = `{"scripts":{"build":"tsc -p ."},"devDependencies":{"typescript":"^5.0.0"}}`
	pkgServerBuild = `{"scripts":{"build":"tsc"},"dependencies":{"express":"^4.19.0"}}`
)

func TestDetect(t *testing.T) {
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
			want:  wantNPM("npm", "ci"),
		},
		{
			name:  "npm shrinkwrap",
			files: map[string]string{"package.json": pkgBuildDeps, "npm-shrinkwrap.json": "{}"},
			want:  wantNPM("npm", "ci"),
		},
		{
			name:  "yarn",
			files: map[string]string{"package.json": pkgBuildDeps, "yarn.lock": ""},
			want:  wantNPM("yarn", "install", "--frozen-lockfile"),
		},
		{
			name:  "pnpm",
			files: map[string]string{"package.json": pkgBuildDeps, "pnpm-lock.yaml": ""},
			want:  wantNPM("pnpm", "install", "--frozen-lockfile"),
		},
		{
			name:  "bun binary lockfile",
			files: map[string]string{"package.json": pkgBuildDeps, "bun.lockb": ""},
			want:  wantNPM("bun", "install", "--frozen-lockfile"),
		},
		{
			name:  "bun text lockfile",
			files: map[string]string{"package.json": pkgBuildDeps, "bun.lock": ""},
			want:  wantNPM("bun", "install", "--frozen-lockfile"),
		},
		{
			name:  "no lockfile",
			files: map[string]string{"package.json": pkgBuildDeps},
			want:  wantNPM("npm", "install"),
		},
		{
			name:  "no dependencies skips install",
			files: map[string]string{"package.json": pkgBuildNoDeps, "index.html": "x"},
			want:  wantNPM("npm"),
		},
		{
			name:  "empty dependency objects skip install",
			files: map[string]string{"package.json": `{"scripts":{"build":"x"},"dependencies":{},"devDependencies":{}}`, "yarn.lock": ""},
			want:  wantNPM("yarn"),
		},
		{
			name:  "workspaces need install",
			files: map[string]string{"package.json": `{"scripts":{"build":"x"},"workspaces":["packages/*"]}`},
			want:  wantNPM("npm", "install"),
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
		// Server apps.
		{
			name: "procfile with package.json",
			files: map[string]string{"Procfile": "web: node dist/server.js\nworker: node dist/worker.js\n",
				"package.json": pkgServerBuild, "package-lock.json": "{}", "index.html": "x"},
			want: Plan{Kind: KindProcfile, PackageManager: "npm", Install: []string{"npm", "ci"},
				Build: []string{"npm", "run", "build"}, Start: "node dist/server.js", OutputDir: ".", OutputCandidates: []string{"."}},
		},
		{
			name:  "procfile without package.json",
			files: map[string]string{"Procfile": "web: ./bin/web --port $PORT", "bin/web": "#!/bin/sh"},
			want:  Plan{Kind: KindProcfile, Start: "./bin/web --port $PORT", OutputDir: ".", OutputCandidates: []string{"."}},
		},
		{
			name:  "procfile comments, blank lines, CRLF and spaces",
			files: map[string]string{"Procfile": "# processes\r\n\r\nrelease: ./migrate\r\nweb :   gunicorn app:app -b $HOST:$PORT  \r\n"},
			want:  Plan{Kind: KindProcfile, Start: "gunicorn app:app -b $HOST:$PORT", OutputDir: ".", OutputCandidates: []string{"."}},
		},
		{
			name: "procfile wins over next",
			files: map[string]string{"Procfile": "web: node custom-server.js",
				"package.json": `{"dependencies":{"next":"14.2.0"}}`},
			want: Plan{Kind: KindProcfile, PackageManager: "npm", Install: []string{"npm", "install"},
				Start: "node custom-server.js", OutputDir: ".", OutputCandidates: []string{"."}},
		},
		{
			name:  "procfile without web falls through to static",
			files: map[string]string{"Procfile": "worker: node worker.js", "index.html": "x"},
			want:  Plan{Kind: KindStatic, OutputDir: ".", OutputCandidates: []string{"."}},
		},
		{
			name:    "procfile without web and nothing else",
			files:   map[string]string{"Procfile": "worker: node worker.js"},
			wantErr: ErrUndetectable,
		},
		{
			name:    "malformed procfile",
			files:   map[string]string{"Procfile": "web: node server.js\nthis is not a process line\n", "index.html": "x"},
			wantErr: ErrInvalidProcfile,
		},
		{
			name:    "procfile web without command",
			files:   map[string]string{"Procfile": "web:\n"},
			wantErr: ErrInvalidProcfile,
		},
		{
			name:    "procfile with two web lines",
			files:   map[string]string{"Procfile": "web: a\nweb: b\n"},
			wantErr: ErrInvalidProcfile,
		},
		{
			name: "next",
			files: map[string]string{"package.json": `{"scripts":{"build":"next build","start":"next start"},"dependencies":{"next":"14.2.0","react":"18.3.0"}}`,
				"yarn.lock": "", "next.config.js": "module.exports = { reactStrictMode: true }"},
			want: Plan{Kind: KindNextJS, PackageManager: "yarn", Install: []string{"yarn", "install", "--frozen-lockfile"},
				Build: []string{"yarn", "run", "build"}, Start: nextStart, OutputDir: ".", OutputCandidates: []string{"."},
				Preset: "nextjs", Reason: "next in package.json"},
		},
		{
			name: "next standalone without build script",
			files: map[string]string{"package.json": `{"devDependencies":{"next":"15.0.0"}}`, "package-lock.json": "{}",
				"next.config.mjs": "export default {\n  output: \"standalone\",\n}\n"},
			want: Plan{Kind: KindNextJS, PackageManager: "npm", Install: []string{"npm", "ci"},
				Build: []string{"npx", "--no-install", "next", "build"}, Start: "node server.js", Standalone: true,
				OutputDir: ".next/standalone", OutputCandidates: []string{".next/standalone"}, Preset: "nextjs", Reason: "next in package.json"},
		},
		{
			name: "next standalone in typescript config",
			files: map[string]string{"package.json": `{"scripts":{"build":"next build"},"dependencies":{"next":"15.0.0"}}`,
				"next.config.ts": "const config: NextConfig = { output:'standalone' };\nexport default config;\n"},
			want: Plan{Kind: KindNextJS, PackageManager: "npm", Install: []string{"npm", "install"},
				Build: []string{"npm", "run", "build"}, Start: "node server.js", Standalone: true,
				OutputDir: ".next/standalone", OutputCandidates: []string{".next/standalone"}, Preset: "nextjs", Reason: "next in package.json"},
		},
		{
			name:  "node start script without dependencies",
			files: map[string]string{"package.json": `{"scripts":{"start":"node server.js"}}`, "server.js": "x"},
			want: Plan{Kind: KindNode, PackageManager: "npm", Start: "node server.js",
				OutputDir: ".", OutputCandidates: []string{"."}},
		},
		{
			name: "node start and build scripts with pnpm",
			files: map[string]string{"package.json": `{"scripts":{"build":"tsc","start":"NODE_OPTIONS=--enable-source-maps node dist/index.js"},"dependencies":{"fastify":"4"}}`,
				"pnpm-lock.yaml": ""},
			want: Plan{Kind: KindNode, PackageManager: "pnpm", Install: []string{"pnpm", "install", "--frozen-lockfile"},
				Build: []string{"pnpm", "run", "build"}, Start: "NODE_OPTIONS=--enable-source-maps node dist/index.js",
				OutputDir: ".", OutputCandidates: []string{"."}, Preset: "fastify", Reason: "fastify in package.json, start script"},
		},
		{
			name:  "development server start script stays a static build",
			files: map[string]string{"package.json": `{"scripts":{"start":"react-scripts start","build":"react-scripts build"},"dependencies":{"react-scripts":"5"}}`},
			want: func() Plan {
				p := wantNPM("npm", "install")
				p.Preset, p.Reason, p.SPAHint = "create-react-app", "react-scripts in package.json", SPAYes
				return p
			}(),
		},
		{
			name:     "start command on a static site",
			files:    map[string]string{"index.html": "x"},
			settings: Settings{StartCommand: "  python3 -m http.server $PORT --bind $HOST "},
			want:     Plan{Kind: KindNode, Start: "python3 -m http.server $PORT --bind $HOST", OutputDir: ".", OutputCandidates: []string{"."}},
		},
		{
			name:     "start command on an npm build",
			files:    map[string]string{"package.json": pkgBuildDeps, "package-lock.json": "{}"},
			settings: Settings{StartCommand: "node serve.js"},
			want: Plan{Kind: KindNode, PackageManager: "npm", Install: []string{"npm", "ci"},
				Build: []string{"npm", "run", "build"}, Start: "node serve.js", OutputDir: ".", OutputCandidates: []string{"."}},
		},
		{
			name:     "every override on a next app",
			files:    map[string]string{"package.json": `{"dependencies":{"next":"14.2.0"}}`, "next.config.js": `module.exports = {output: 'standalone'}`},
			settings: Settings{InstallCommand: "npm ci --omit=optional", BuildCommand: "npm run build:prod", StartCommand: "node apps/web/server.js", OutputDir: ".next/standalone"},
			want: Plan{Kind: KindNextJS, PackageManager: "npm", Install: []string{"sh", "-c", "npm ci --omit=optional"},
				Build: []string{"sh", "-c", "npm run build:prod"}, Start: "node apps/web/server.js", Standalone: true,
				OutputDir: ".next/standalone", OutputCandidates: []string{".next/standalone"}, Preset: "nextjs", Reason: "next in package.json"},
		},
		{
			name:     "framework node takes a development start script",
			files:    map[string]string{"package.json": `{"scripts":{"start":"vite"}}`},
			settings: Settings{Framework: "Node"},
			want:     Plan{Kind: KindNode, PackageManager: "npm", Start: "vite", OutputDir: ".", OutputCandidates: []string{"."}},
		},
		{
			name:     "framework nextjs without next dependency",
			files:    map[string]string{"package.json": `{"dependencies":{"react":"18"}}`},
			settings: Settings{Framework: "nextjs"},
			want: Plan{Kind: KindNextJS, PackageManager: "npm", Install: []string{"npm", "install"},
				Build: []string{"npx", "--no-install", "next", "build"}, Start: nextStart, OutputDir: ".", OutputCandidates: []string{"."}},
		},
		{
			name:     "framework static ignores procfile and start script",
			files:    map[string]string{"Procfile": "not a procfile", "package.json": `{"scripts":{"start":"node server.js"}}`, "index.html": "x"},
			settings: Settings{Framework: "static"},
			want:     Plan{Kind: KindStatic, OutputDir: ".", OutputCandidates: []string{"."}},
		},
		{
			name:     "framework procfile with start command and no procfile",
			files:    map[string]string{"app.py": "x"},
			settings: Settings{Framework: "procfile", StartCommand: "python3 app.py"},
			want:     Plan{Kind: KindProcfile, Start: "python3 app.py", OutputDir: ".", OutputCandidates: []string{"."}},
		},
		{
			name:     "node output directory override",
			files:    map[string]string{"package.json": `{"scripts":{"start":"node index.js"}}`},
			settings: Settings{OutputDir: "./server/"},
			want: Plan{Kind: KindNode, PackageManager: "npm", Start: "node index.js",
				OutputDir: "server", OutputCandidates: []string{"server"}},
		},
		{
			name:     "framework procfile without procfile",
			files:    map[string]string{"index.html": "x"},
			settings: Settings{Framework: "procfile"},
			wantErr:  ErrInvalidSettings,
		},
		{
			name:     "framework node without start",
			files:    map[string]string{"package.json": pkgBuildDeps},
			settings: Settings{Framework: "node"},
			wantErr:  ErrInvalidSettings,
		},
		{
			name:     "start command with framework static",
			files:    map[string]string{"index.html": "x"},
			settings: Settings{Framework: "static", StartCommand: "node server.js"},
			wantErr:  ErrInvalidSettings,
		},
		{
			name:     "start command with framework npm",
			files:    map[string]string{"package.json": pkgBuildDeps},
			settings: Settings{Framework: "npm", StartCommand: "node server.js"},
			wantErr:  ErrInvalidSettings,
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
		{"procfile without web", map[string]string{"Procfile": "worker: node w.js"},
			[]string{"no index.html", "the Procfile has no web process"}},
		{"procfile line", map[string]string{"Procfile": "# ok\nweb node server.js\n"},
			[]string{"Procfile:2:", `"name: command"`, "web node server.js"}},
		{"nothing at all", map[string]string{"README.md": "x"},
			[]string{"no index.html", "no package.json or Procfile"}},
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
		{KindNextJS, "nextjs", true},
		{KindNode, "node", true},
		{KindProcfile, "procfile", true},
		{Kind(0), "Kind(0)", false},
		{Kind(99), "Kind(99)", false},
	}
	for _, tc := range cases {
		if tc.k.String() != tc.name || tc.k.Valid() != tc.valid {
			t.Errorf("Kind(%d): String %q Valid %v; want %q %v", int(tc.k), tc.k.String(), tc.k.Valid(), tc.name, tc.valid)
		}
	}
}

func TestPlanServerAndDescribe(t *testing.T) {
	cases := []struct {
		plan   Plan
		server bool
		want   string
	}{
		{Plan{Kind: KindNextJS, PackageManager: "npm", Install: []string{"npm", "ci"}, Start: "node server.js", Standalone: true},
			true, "Next.js app (standalone), start: node server.js"},
		{Plan{Kind: KindNextJS, PackageManager: "npm", Install: []string{"npm", "ci"}, Start: nextStart},
			true, `Next.js app, start: node_modules/.bin/next start -p "$PORT" -H "$HOST"`},
		{Plan{Kind: KindNode, PackageManager: "npm", Install: []string{"npm", "ci"}, Start: "node server.js"},
			true, "Node server, start: node server.js"},
		{Plan{Kind: KindNode, PackageManager: "npm", Start: "node server.js"},
			true, "Node server, start: node server.js; no dependencies, install skipped"},
		{Plan{Kind: KindProcfile, Start: "./bin/web --port $PORT"},
			true, "Procfile web process: ./bin/web --port $PORT"},
		{Plan{Kind: KindStatic, OutputDir: "public"}, false, "static site (public)"},
		{Plan{Kind: KindNPM, PackageManager: "npm", Install: []string{"npm", "ci"}, OutputDir: "dist"},
			false, "npm build (npm), output dist"},
		{Plan{Kind: KindNPM, PackageManager: "yarn", OutputCandidates: []string{"dist", "build"}},
			false, "npm build (yarn), output first of dist, build; no dependencies, install skipped"},
		{Plan{Kind: KindNPM, Build: []string{"sh", "-c", "make"}, OutputDir: "site"},
			false, "npm build (custom command), output site"},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			if got := tc.plan.Describe(); got != tc.want {
				t.Errorf("Describe = %q, want %q", got, tc.want)
			}
			if tc.plan.Server() != tc.server {
				t.Errorf("Server = %v, want %v", tc.plan.Server(), tc.server)
			}
		})
	}
}

// TestResolveNextStandalone lays out what `next build` writes with
// output: 'standalone' and checks that ResolveOutput completes the
// standalone server as Next's documentation asks of a deployer.
func TestResolveNextStandalone(t *testing.T) {
	dir := tree(t, map[string]string{
		"package.json":                                 `{"scripts":{"build":"next build"},"dependencies":{"next":"15.0.0"}}`,
		"next.config.js":                               `module.exports = { output: 'standalone' }`,
		".next/standalone/server.js":                   "require('next')",
		".next/standalone/package.json":                "{}",
		".next/standalone/node_modules/next/index.js":  "x",
		".next/standalone/.next/server/app/index.html": "<html>",
		".next/static/chunks/x.js":                     "chunk",
		".next/static/css/a.css":                       "css",
		"public/a.png":                                 "png",
		"public/icons/b.svg":                           "<svg/>",
	})
	writeFile(t, filepath.Join(dir, "public", "run.sh"), "#!/bin/sh\n", 0o700)
	symlink(t, "a.png", filepath.Join(dir, "public", "logo.png"))
	plan, err := Detect(dir, Settings{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ResolveOutput(dir, &plan); err != nil {
		t.Fatalf("ResolveOutput: %v", err)
	}
	if plan.OutputDir != ".next/standalone" || plan.SPA || plan.Start != "node server.js" {
		t.Fatalf("plan = %+v, want output .next/standalone, not SPA, start node server.js", plan)
	}
	want := map[string]string{
		".next/static/chunks/x.js":    "chunk",
		".next/static/css/a.css":      "css",
		"public/a.png":                "png",
		"public/icons/b.svg":          "<svg/>",
		"public/run.sh":               "#!/bin/sh\n",
		".next/server/app/index.html": "<html>",
		"server.js":                   "require('next')",
	}
	standalone := filepath.Join(dir, ".next", "standalone")
	for name, content := range want {
		b, err := os.ReadFile(filepath.Join(standalone, name))
		if err != nil || string(b) != content {
			t.Errorf("%s = %q, %v; want %q", name, b, err, content)
		}
	}
	if fi, err := os.Stat(filepath.Join(standalone, "public", "run.sh")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("public/run.sh copied with %v, %v; want 0755", fi.Mode(), err)
	}
	if l, err := os.Readlink(filepath.Join(standalone, "public", "logo.png")); err != nil || l != "a.png" {
		t.Errorf("public/logo.png = %q, %v; want the symlink to a.png", l, err)
	}
	// The artifact is the completed standalone directory.
	artifact := filepath.Join(t.TempDir(), "next.tar.gz")
	if _, _, err := Pack(filepath.Join(dir, plan.OutputDir), artifact); err != nil {
		t.Fatalf("Pack: %v", err)
	}
	names := map[string]bool{}
	for _, e := range readArchive(t, artifact) {
		names[e.Name] = true
	}
	for _, n := range []string{"server.js", "node_modules/next/index.js", ".next/static/chunks/x.js", "public/a.png", "public/logo.png"} {
		if !names[n] {
			t.Errorf("artifact lacks %s: %v", n, names)
		}
	}

	t.Run("build without standalone output", func(t *testing.T) {
		dir := tree(t, map[string]string{
			"package.json":       `{"dependencies":{"next":"15.0.0"}}`,
			"next.config.mjs":    `export default { output: "standalone" }`,
			".next/static/x.js":  "x",
			".next/standalone/x": "server.js is missing",
		})
		plan, err := Detect(dir, Settings{})
		if err != nil {
			t.Fatal(err)
		}
		err = ResolveOutput(dir, &plan)
		if !errors.Is(err, ErrNoOutput) || !strings.Contains(err.Error(), ".next/standalone/server.js") {
			t.Fatalf("ResolveOutput err = %v, want ErrNoOutput naming .next/standalone/server.js", err)
		}
	})
	t.Run("standalone directory missing", func(t *testing.T) {
		dir := tree(t, map[string]string{
			"package.json":    `{"dependencies":{"next":"15.0.0"}}`,
			"next.config.cjs": `module.exports = { output: "standalone" }`,
		})
		plan, err := Detect(dir, Settings{})
		if err != nil {
			t.Fatal(err)
		}
		if err := ResolveOutput(dir, &plan); !errors.Is(err, ErrNoOutput) || !strings.Contains(err.Error(), "standalone") {
			t.Fatalf("ResolveOutput err = %v, want ErrNoOutput about the standalone server", err)
		}
	})
	t.Run("copies stay inside the project", func(t *testing.T) {
		outside := t.TempDir()
		dir := tree(t, map[string]string{
			"package.json":               `{"dependencies":{"next":"15.0.0"}}`,
			"next.config.js":             `module.exports = { output: 'standalone' }`,
			".next/standalone/server.js": "x",
			"public/a.png":               "png",
		})
		// The build planted a link so that the copy of public/ would
		// write outside the project.
		symlink(t, outside, filepath.Join(dir, ".next", "standalone", "public"))
		plan, err := Detect(dir, Settings{})
		if err != nil {
			t.Fatal(err)
		}
		if err := ResolveOutput(dir, &plan); err == nil {
			t.Error("ResolveOutput wrote through a symlink leaving the project")
		}
		if left, _ := os.ReadDir(outside); len(left) > 0 {
			t.Errorf("files written outside the project: %v", left)
		}
	})
}
