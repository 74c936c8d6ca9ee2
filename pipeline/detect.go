package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
)

// Kind is what Detect decided a project is.
type Kind int

const (
	// KindStatic is a site served as committed: no install, no build.
	KindStatic Kind = iota + 1
	// KindNPM is a project built by a package manager's `run build` (Vite,
	// Create React App, Astro…) or by a build command from the settings.
	KindNPM
)

var kindNames = map[Kind]string{KindStatic: "static", KindNPM: "npm"}

// String returns the kind's name as used in Settings.Framework and logs.
func (k Kind) String() string {
	if n, ok := kindNames[k]; ok {
		return n
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Valid reports whether k is one of the declared kinds; the zero Kind is not.
func (k Kind) Valid() bool {
	_, ok := kindNames[k]
	return ok
}

// Settings are a project's build overrides. The zero value means: detect
// everything.
type Settings struct {
	// Framework forces the kind: "static" or "npm" (Kind.String names).
	// Empty means detect.
	Framework string
	// InstallCommand replaces the detected install step of a KindNPM plan
	// (a static site has none). It is run as
	// `sh -c InstallCommand`: shell syntax is allowed, and safe because the
	// command runs in the sandbox as the unprivileged build user. Empty means
	// detect.
	InstallCommand string
	// BuildCommand replaces the detected build step, run as `sh -c` like
	// InstallCommand. Setting it makes the project KindNPM even without a
	// package.json build script. Empty means detect.
	BuildCommand string
	// OutputDir is the directory to serve, relative to the project root (for
	// example "dist" or "."). Empty means detect.
	OutputDir string
}

// Plan is how to build and serve one checkout, as decided by Detect.
type Plan struct {
	// Kind is what the project was detected (or configured) as.
	Kind Kind
	// PackageManager is "npm", "yarn", "pnpm" or "bun" for a KindNPM project
	// with a package.json, and empty otherwise.
	PackageManager string
	// Install is the install command's argv. Nil means no install step: a
	// static site, or a package.json with no dependencies at all (the
	// caller should say "skipped: no dependencies" in the log).
	Install []string
	// Build is the build command's argv; nil for KindStatic.
	Build []string
	// OutputDir is the directory to pack, relative to the project root.
	// It is "" for a KindNPM plan until ResolveOutput finds it after the
	// build, unless Settings.OutputDir fixed it.
	OutputDir string
	// OutputCandidates are the directories ResolveOutput tries, in order,
	// when OutputDir is empty.
	OutputCandidates []string
	// SPA reports a single-page app whose unknown paths should be served
	// index.html: an npm build output with index.html and no 404.html. It
	// is decided by ResolveOutput.
	SPA bool
}

// npmOutputCandidates are the output directories of common frameworks:
// Vite, Create React App, Next.js export, and plain public/ builds.
var npmOutputCandidates = []string{"dist", "build", "out", "public"}

// lockfiles maps a lockfile to its package manager and frozen install
// command, in order of precedence when a repository has several.
var lockfiles = []struct {
	file    string
	pm      string
	install []string
}{
	{"package-lock.json", "npm", []string{"npm", "ci"}},
	{"npm-shrinkwrap.json", "npm", []string{"npm", "ci"}},
	{"yarn.lock", "yarn", []string{"yarn", "install", "--frozen-lockfile"}},
	{"pnpm-lock.yaml", "pnpm", []string{"pnpm", "install", "--frozen-lockfile"}},
	{"bun.lockb", "bun", []string{"bun", "install", "--frozen-lockfile"}},
	{"bun.lock", "bun", []string{"bun", "install", "--frozen-lockfile"}},
}

// packageJSON is the part of package.json that detection reads.
type packageJSON struct {
	Scripts              map[string]json.RawMessage `json:"scripts"`
	Dependencies         map[string]json.RawMessage `json:"dependencies"`
	DevDependencies      map[string]json.RawMessage `json:"devDependencies"`
	OptionalDependencies map[string]json.RawMessage `json:"optionalDependencies"`
	Workspaces           json.RawMessage            `json:"workspaces"`
}

func (p *packageJSON) buildScript() bool {
	var s string
	return json.Unmarshal(p.Scripts["build"], &s) == nil && strings.TrimSpace(s) != ""
}

// needsInstall is false only when there is provably nothing to install;
// workspaces need an install to link their packages even without
// dependencies.
func (p *packageJSON) needsInstall() bool {
	return len(p.Dependencies) > 0 || len(p.DevDependencies) > 0 ||
		len(p.OptionalDependencies) > 0 || len(p.Workspaces) > 0
}

// Detect decides how to build and serve the checkout in dir, applying the
// overrides in s. In order:
//
//   - a package.json with a "build" script (or a Settings.BuildCommand) is
//     KindNPM; the lockfile picks the package manager and a frozen install,
//     no lockfile means `npm install`, and no dependencies at all means no
//     install step; the build is `<pm> run build`;
//   - otherwise index.html at the root is KindStatic served from ".", and
//     public/index.html is KindStatic served from "public";
//   - otherwise the error wraps ErrUndetectable.
//
// A malformed package.json is an error wrapping ErrInvalidPackageJSON with
// the line and column of the problem; unusable settings wrap
// ErrInvalidSettings.
func Detect(dir string, s Settings) (Plan, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Plan{}, fmt.Errorf("detect: %w", err)
	}
	defer root.Close()

	var forced Kind
	if s.Framework != "" {
		for k, n := range kindNames {
			if strings.EqualFold(s.Framework, n) {
				forced = k
			}
		}
		if !forced.Valid() {
			return Plan{}, fmt.Errorf("detect: framework %q is not one of static, npm: %w", s.Framework, ErrInvalidSettings)
		}
	}
	if s.OutputDir != "" {
		clean := path.Clean(s.OutputDir)
		if clean != "." && checkRelPath(clean) != nil {
			return Plan{}, fmt.Errorf("detect: output directory %q must be inside the project: %w", s.OutputDir, ErrInvalidSettings)
		}
		s.OutputDir = clean
	}

	pkg, hasPkg, err := readPackageJSON(root)
	if err != nil {
		return Plan{}, err
	}

	build := forced == KindNPM || s.BuildCommand != "" || (hasPkg && pkg.buildScript())
	if forced == KindStatic {
		build = false
	}
	if build {
		return npmPlan(root, pkg, hasPkg, s)
	}
	return staticPlan(root, hasPkg, s)
}

func npmPlan(root *os.Root, pkg packageJSON, hasPkg bool, s Settings) (Plan, error) {
	p := Plan{Kind: KindNPM, OutputDir: s.OutputDir}
	if p.OutputDir == "" {
		p.OutputCandidates = append([]string(nil), npmOutputCandidates...)
	} else {
		p.OutputCandidates = []string{p.OutputDir}
	}
	if hasPkg {
		p.PackageManager = "npm"
		p.Install = []string{"npm", "install"}
		for _, lf := range lockfiles {
			if exists(root, lf.file) {
				p.PackageManager, p.Install = lf.pm, append([]string(nil), lf.install...)
				break
			}
		}
		if !pkg.needsInstall() {
			p.Install = nil
		}
		if pkg.buildScript() {
			p.Build = []string{p.PackageManager, "run", "build"}
		}
	}
	if s.InstallCommand != "" {
		p.Install = []string{"sh", "-c", s.InstallCommand}
	}
	if s.BuildCommand != "" {
		p.Build = []string{"sh", "-c", s.BuildCommand}
	}
	if p.Build == nil {
		return Plan{}, fmt.Errorf("detect: framework npm needs a build script in package.json or a build command: %w", ErrInvalidSettings)
	}
	return p, nil
}

func staticPlan(root *os.Root, hasPkg bool, s Settings) (Plan, error) {
	p := Plan{Kind: KindStatic}
	switch {
	case s.OutputDir != "":
		if !isDir(root, s.OutputDir) {
			return Plan{}, fmt.Errorf("detect: output directory %s/ does not exist: %w", s.OutputDir, ErrInvalidSettings)
		}
		p.OutputDir = s.OutputDir
	case exists(root, "index.html"):
		p.OutputDir = "."
	case exists(root, "public/index.html"):
		p.OutputDir = "public"
	case hasPkg:
		return Plan{}, fmt.Errorf("detect: no index.html at the root or in public/, and package.json has no build script: %w", ErrUndetectable)
	default:
		return Plan{}, fmt.Errorf("detect: no index.html at the root or in public/, and no package.json with a build script: %w", ErrUndetectable)
	}
	p.OutputCandidates = []string{p.OutputDir}
	return p, nil
}

// ResolveOutput finds the build output after the build ran in dir: p's
// OutputDir if set, else the first of p.OutputCandidates that is a
// directory. It sets p.OutputDir, and p.SPA for KindNPM outputs that have an
// index.html and no 404.html. A missing output wraps ErrNoOutput and lists
// the directories looked for.
//
// The tree was just written by the build, so it is read through os.Root: a
// symlink such as dist -> /etc is not followed out of dir.
func ResolveOutput(dir string, p *Plan) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("resolve output: %w", err)
	}
	defer root.Close()

	candidates := p.OutputCandidates
	if p.OutputDir != "" {
		candidates = []string{p.OutputDir}
	}
	found := ""
	for _, c := range candidates {
		if isDir(root, c) {
			found = c
			break
		}
	}
	if found == "" {
		looked := make([]string, len(candidates))
		for i, c := range candidates {
			looked[i] = c + "/"
		}
		return fmt.Errorf("resolve output: looked for %s: %w", strings.Join(looked, ", "), ErrNoOutput)
	}
	p.OutputDir = found
	p.SPA = p.Kind == KindNPM &&
		exists(root, path.Join(found, "index.html")) &&
		!exists(root, path.Join(found, "404.html"))
	return nil
}

// readPackageJSON reads the root package.json; hasPkg is false when there
// is none.
func readPackageJSON(root *os.Root) (pkg packageJSON, hasPkg bool, err error) {
	data, err := root.ReadFile("package.json")
	if errors.Is(err, fs.ErrNotExist) {
		return pkg, false, nil
	}
	if err != nil {
		return pkg, false, fmt.Errorf("read package.json: %w", err)
	}
	if err := json.Unmarshal(data, &pkg); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		where := "package.json"
		switch {
		case errors.As(err, &syn):
			line, col := lineCol(data, syn.Offset)
			where = fmt.Sprintf("package.json:%d:%d", line, col)
		case errors.As(err, &typ):
			line, col := lineCol(data, typ.Offset)
			where = fmt.Sprintf("package.json:%d:%d", line, col)
		}
		return pkg, false, fmt.Errorf("parse %s: %w: %w", where, ErrInvalidPackageJSON, err)
	}
	return pkg, true, nil
}

// lineCol turns a byte offset into a 1-based line and column, so a user can
// find the mistake in an editor.
func lineCol(data []byte, offset int64) (line, col int) {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	before := data[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(offset) - (bytes.LastIndexByte(before, '\n') + 1)
	return line, col
}

func exists(root *os.Root, name string) bool {
	fi, err := root.Stat(name)
	return err == nil && fi.Mode().IsRegular()
}

func isDir(root *os.Root, name string) bool {
	fi, err := root.Stat(name)
	return err == nil && fi.IsDir()
}
