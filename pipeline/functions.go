package pipeline

// Functions, in Vercel's model: every JavaScript or TypeScript file under the
// root api/ folder of a static or npm-built site is a route /api/<path>,
// served beside the static output by one Node process per deployment.
//
// The build stages them into the output, under the reserved directory
// .minivercel/functions/ (FunctionsDir):
//
//	runner.mjs     the Node server that loads and calls the handlers
//	routes.json    the routes, most specific first (functionManifest)
//	api/...        the api/ folder, helpers included, without node_modules
//	package.json   the project's, for "type" and the dependencies
//	node_modules/  the production dependencies only (see stageDependencies)
//
// The edge starts `node .minivercel/functions/runner.mjs` in the extracted
// build when a request for /api/ arrives, and never serves .minivercel/ as
// files.

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"

	"minivercel/proc"
)

// FunctionsDir is where a build's functions live in its output.
const FunctionsDir = reservedOutputDir + "/functions"

// maxFunctionsBytes bounds what staging copies: the api/ files and the
// production dependencies together. Vercel's limit for one function is the
// same 250 MB, unzipped.
const maxFunctionsBytes = 250 << 20

// runnerScript is the Node server staged as FunctionsDir/runner.mjs.
//
//go:embed functions/runner.mjs
var runnerScript []byte

// functionExts are the file extensions that make a route.
var functionExts = []string{".js", ".mjs", ".cjs", ".ts", ".mts"}

// paramRe is a dynamic segment's name: api/users/[id].js gives req.query.id.
var paramRe = regexp.MustCompile(`^\[([A-Za-z_$][A-Za-z0-9_$]*)\]$`)

// RouteSegment is one segment of a function's route: a fixed name or, for a
// file or folder named [name], a parameter matching any one segment.
type RouteSegment struct {
	Static string `json:"static,omitempty"`
	Param  string `json:"param,omitempty"`
}

// FunctionRoute is one function: its route and its file.
type FunctionRoute struct {
	// Path is the route for people: "/api/hello", "/api/users/:id".
	Path string `json:"path"`
	// File is the function's path relative to the project root (and to
	// FunctionsDir once staged): "api/users/[id].js".
	File string `json:"file"`
	// Segments are what the runner matches, "api" first.
	Segments []RouteSegment `json:"segments"`
}

// Functions are the api/ functions of one checkout, as FindFunctions found
// them.
type Functions struct {
	// Routes are most specific first: at every segment a fixed name wins
	// over a parameter, which is the order the runner tries them in.
	Routes []FunctionRoute
	// TypeScript reports a .ts or .mts function, which needs a Node that
	// strips types (CheckNode).
	TypeScript bool
}

// functionManifest is routes.json, read by runner.mjs.
type functionManifest struct {
	Routes []FunctionRoute `json:"routes"`
}

// Describe lists the routes for the push log: "/api/hello, /api/time".
func (f *Functions) Describe() string {
	paths := make([]string, len(f.Routes))
	for i, r := range f.Routes {
		paths[i] = r.Path
	}
	return strings.Join(paths, ", ")
}

// FunctionRouteOf maps a file under api/ (a slash path relative to the
// project root, "api/users/[id].ts") to its route. ok is false for a file
// that is no route: not JavaScript or TypeScript, a type declaration, or a
// helper (a file or folder whose name starts with "_" or "."). A route that
// cannot be served is an error wrapping ErrInvalidFunctions naming the file.
func FunctionRouteOf(file string) (r FunctionRoute, ok bool, err error) {
	rest, found := strings.CutPrefix(file, "api/")
	if !found || rest == "" {
		return r, false, nil
	}
	parts := strings.Split(rest, "/")
	for _, p := range parts {
		if p == "" || strings.HasPrefix(p, "_") || strings.HasPrefix(p, ".") || p == "node_modules" {
			return r, false, nil
		}
	}
	last := parts[len(parts)-1]
	ext := path.Ext(last)
	if !slices.Contains(functionExts, ext) || strings.HasSuffix(last, ".d"+ext) {
		return r, false, nil
	}
	parts[len(parts)-1] = strings.TrimSuffix(last, ext)
	if parts[len(parts)-1] == "index" {
		parts = parts[:len(parts)-1]
	}
	r = FunctionRoute{File: file, Segments: []RouteSegment{{Static: "api"}}}
	shown := []string{"", "api"}
	seen := map[string]bool{}
	for _, p := range parts {
		switch m := paramRe.FindStringSubmatch(p); {
		case m != nil:
			if seen[m[1]] {
				return r, false, fmt.Errorf("%s: the parameter [%s] appears twice in its path: %w", file, m[1], ErrInvalidFunctions)
			}
			seen[m[1]] = true
			r.Segments = append(r.Segments, RouteSegment{Param: m[1]})
			shown = append(shown, ":"+m[1])
		case strings.HasPrefix(p, "[...") || strings.HasPrefix(p, "[[..."):
			return r, false, fmt.Errorf("%s: catch-all segments (%s) are not supported; use [name] for one segment: %w", file, p, ErrInvalidFunctions)
		case strings.ContainsAny(p, "[]"):
			return r, false, fmt.Errorf("%s: %q is not a dynamic segment: write [name] with a name of letters, digits, _ or $: %w", file, p, ErrInvalidFunctions)
		default:
			r.Segments = append(r.Segments, RouteSegment{Static: p})
			shown = append(shown, p)
		}
	}
	r.Path = strings.Join(shown, "/")
	return r, true, nil
}

// routeKey is what two routes that match the same requests share: their
// fixed names and where their parameters are.
func routeKey(r FunctionRoute) string {
	var b strings.Builder
	for _, s := range r.Segments {
		if s.Param != "" {
			b.WriteString("/\x00")
		} else {
			b.WriteString("/" + s.Static)
		}
	}
	return b.String()
}

// compareRoutes orders routes most specific first: at the first segment
// where two differ, a fixed name comes before a parameter; then shorter
// first; then by name, so the order never depends on the walk.
func compareRoutes(a, b FunctionRoute) int {
	for i := 0; i < len(a.Segments) && i < len(b.Segments); i++ {
		sa, sb := a.Segments[i], b.Segments[i]
		switch {
		case sa.Param == "" && sb.Param != "":
			return -1
		case sa.Param != "" && sb.Param == "":
			return 1
		case sa.Static != sb.Static:
			return strings.Compare(sa.Static, sb.Static)
		}
	}
	if c := len(a.Segments) - len(b.Segments); c != 0 {
		return c
	}
	return strings.Compare(a.File, b.File)
}

// FunctionsApply reports whether a plan serves functions at all: static and
// npm-built sites do. A server app serves its own /api (Next.js has its own
// API routes), so its api/ folder is just its code.
func FunctionsApply(p Plan) bool {
	return !p.Server() && (p.Kind == KindStatic || p.Kind == KindNPM)
}

// FindFunctions finds the functions in the api/ folder at the root of the
// checkout in dir. It returns nil when there are none: no api/ folder, no
// file that is a route, or a plan that does not serve functions
// (FunctionsApply). Two files with the same route, or a route that cannot be
// served, are an error wrapping ErrInvalidFunctions that names the files.
func FindFunctions(dir string, p Plan) (*Functions, error) {
	if !FunctionsApply(p) {
		return nil, nil
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("find functions: %w", err)
	}
	defer root.Close()
	// Lstat: an api that is a symlink is not followed, even inside the
	// checkout.
	if fi, err := root.Lstat("api"); err != nil || !fi.IsDir() {
		return nil, nil
	}
	f := &Functions{}
	byKey := map[string]string{}
	err = fs.WalkDir(root.FS(), "api", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "node_modules" {
			return fs.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		r, ok, err := FunctionRouteOf(p)
		if err != nil || !ok {
			return err
		}
		if other, dup := byKey[routeKey(r)]; dup {
			return fmt.Errorf("%s and %s both answer %s: %w", other, p, r.Path, ErrInvalidFunctions)
		}
		byKey[routeKey(r)] = p
		f.Routes = append(f.Routes, r)
		if ext := path.Ext(p); ext == ".ts" || ext == ".mts" {
			f.TypeScript = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find functions: %w", err)
	}
	if len(f.Routes) == 0 {
		return nil, nil
	}
	slices.SortFunc(f.Routes, compareRoutes)
	return f, nil
}

// CheckNode fails when the functions cannot run on the Node whose `node
// --version` output is version ("v22.11.0"): TypeScript needs type stripping,
// which Node has from 22.6 on. The build fails then, rather than every
// request.
func (f *Functions) CheckNode(version string) error {
	if !f.TypeScript {
		return nil
	}
	major, minor, ok := proc.ParseNodeVersion(version)
	if !ok {
		return fmt.Errorf("check node: cannot read the Node version %q: %w", version, ErrInvalidFunctions)
	}
	if major > 22 || major == 22 && minor >= 6 {
		return nil
	}
	return fmt.Errorf("TypeScript functions need Node 22.6 or later (functions run on Node %s here): set engines.node, or write them in JavaScript: %w",
		strings.TrimPrefix(strings.TrimSpace(version), "v"), ErrInvalidFunctions)
}

// PlanFunctionsInstall gives a static site whose functions have
// dependencies the install step it lacks: a static plan installs nothing,
// but a package.json with dependencies and no build script is how such a
// site declares what its functions import. The lockfile picks the package
// manager, as for every kind; Settings.InstallCommand wins.
func PlanFunctionsInstall(dir string, p *Plan, s Settings) error {
	if p.Kind != KindStatic || len(p.Install) > 0 {
		return nil
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("plan functions install: %w", err)
	}
	defer root.Close()
	pkg, hasPkg, err := readPackageJSON(root)
	if err != nil || !hasPkg {
		return err
	}
	q := Plan{}
	installPlan(root, &q, pkg)
	p.PackageManager, p.Install = q.PackageManager, q.Install
	if s.InstallCommand != "" {
		p.Install = []string{"sh", "-c", s.InstallCommand}
	}
	return nil
}

// stageBudget counts the bytes staging copies against maxFunctionsBytes.
type stageBudget struct {
	used int64
}

func (b *stageBudget) take(name string, n int64) error {
	b.used += n
	if b.used > maxFunctionsBytes {
		return fmt.Errorf("the functions and their production dependencies are larger than %s (at %s): %w",
			humanBytes(maxFunctionsBytes), name, ErrInvalidFunctions)
	}
	return nil
}

// Stage copies the functions into the output: the api/ folder (helpers
// included, its node_modules and symlinks left out), package.json, the
// production dependencies, the runner and routes.json, all under
// <outputDir>/FunctionsDir. dir is the project root and outputDir the
// output relative to it. With the output at the root ("."), api/ and
// node_modules are removed from it afterwards, so the functions' source and
// the build's dependencies are never served as files.
//
// Everything goes through an os.Root of dir and symlinks are never followed
// out of it: the build user wrote this tree.
func (f *Functions) Stage(dir, outputDir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("stage functions: %w", err)
	}
	defer root.Close()
	dst := path.Join(outputDir, FunctionsDir)
	if err := root.RemoveAll(dst); err != nil {
		return fmt.Errorf("stage functions: %w", err)
	}
	if err := root.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("stage functions: %w", err)
	}
	budget := &stageBudget{}
	if err := copyFiles(root, "api", dst+"/api", budget); err != nil {
		return fmt.Errorf("stage functions: %w", err)
	}
	if fi, err := root.Lstat("package.json"); err == nil && fi.Mode().IsRegular() {
		// The build wrote it, and may have made it sparse and huge.
		if err := budget.take("package.json", fi.Size()); err != nil {
			return fmt.Errorf("stage functions: %w", err)
		}
		if err := copyFile(root, "package.json", dst+"/package.json"); err != nil {
			return fmt.Errorf("stage functions: %w", err)
		}
		if err := stageDependencies(root, dst, budget); err != nil {
			return fmt.Errorf("stage functions: %w", err)
		}
	}
	manifest, err := json.MarshalIndent(functionManifest{Routes: f.Routes}, "", "  ")
	if err != nil {
		return fmt.Errorf("stage functions: %w", err)
	}
	for name, data := range map[string][]byte{"routes.json": manifest, "runner.mjs": runnerScript} {
		if err := root.WriteFile(dst+"/"+name, data, 0o644); err != nil {
			return fmt.Errorf("stage functions: %w", err)
		}
	}
	if path.Clean(outputDir) == "." {
		for _, served := range []string{"api", "node_modules"} {
			if err := root.RemoveAll(served); err != nil {
				return fmt.Errorf("stage functions: remove %s/ from the output: %w", served, err)
			}
		}
	}
	return nil
}

// copyFiles copies the directories and regular files of the tree at from
// to to, both inside root, counting bytes in budget. Symlinks are skipped
// (never followed), and so are node_modules folders: dependencies come from
// the root's production closure.
func copyFiles(root *os.Root, from, to string, budget *stageBudget) error {
	return fs.WalkDir(root.FS(), from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := to + strings.TrimPrefix(p, from)
		switch {
		case d.IsDir() && d.Name() == "node_modules" && p != from:
			return fs.SkipDir
		case d.IsDir():
			return root.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			if err := budget.take(p, info.Size()); err != nil {
				return err
			}
			return copyFile(root, p, target)
		}
		return nil
	})
}

// dependencyManifest is the part of a package.json that says what a
// package needs at run time.
type dependencyManifest struct {
	Dependencies         map[string]json.RawMessage `json:"dependencies"`
	OptionalDependencies map[string]json.RawMessage `json:"optionalDependencies"`
	PeerDependencies     map[string]json.RawMessage `json:"peerDependencies"`
}

func (m dependencyManifest) names() []string {
	var names []string
	for _, deps := range []map[string]json.RawMessage{m.Dependencies, m.OptionalDependencies, m.PeerDependencies} {
		for name := range deps {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// stageDependencies copies the production dependencies of the root
// package.json, and theirs, from the installed node_modules to
// dst/node_modules: the closure of dependencies, optionalDependencies and
// peerDependencies, resolved the way Node resolves them (the nearest
// node_modules up the tree), never devDependencies. A build tool such as
// Vite and its hundreds of packages stay out of the artifact.
//
// A package directory that is a symlink (pnpm's layout) is staged as that
// symlink and the directory it points to inside the project, and its
// dependencies are resolved from there, as Node does; symlinks within
// packages (node_modules/.bin) are left out. A dependency that is not installed (an
// optional one for another platform) is skipped: Node reports it at run
// time if a function imports it.
func stageDependencies(root *os.Root, dst string, budget *stageBudget) error {
	var top dependencyManifest
	if err := readManifest(root, "package.json", &top); err != nil {
		return err
	}
	type pending struct{ from, name string }
	queue := []pending{}
	for _, n := range top.names() {
		queue = append(queue, pending{".", n})
	}
	copied := map[string]bool{}
	for len(queue) > 0 {
		next := queue[0]
		queue = queue[1:]
		found := resolvePackage(root, next.from, next.name)
		if found == "" {
			continue
		}
		pkg, links, ok := followLinks(root, found)
		if !ok {
			continue
		}
		for _, l := range links {
			if err := stageLink(root, dst+"/"+l.name, l.target); err != nil {
				return fmt.Errorf("copy dependency %s: %w", found, err)
			}
		}
		if copied[pkg] {
			continue
		}
		copied[pkg] = true
		if err := copyFiles(root, pkg, dst+"/"+pkg, budget); err != nil {
			return fmt.Errorf("copy dependency %s: %w", pkg, err)
		}
		var m dependencyManifest
		if err := readManifest(root, pkg+"/package.json", &m); err != nil {
			return err
		}
		for _, n := range m.names() {
			queue = append(queue, pending{pkg, n})
		}
	}
	return nil
}

// pkgLink is one link met on the way to a package's real directory.
type pkgLink struct{ name, target string }

// maxLinks bounds a chain of symlinks, as the kernel's ELOOP does.
const maxLinks = 8

// followLinks returns the real directory of the package at p (a path in
// root) and the symlinks that lead there, when p itself is one: a link
// whose target is absolute or leaves root ends the walk with ok false.
func followLinks(root *os.Root, p string) (real string, links []pkgLink, ok bool) {
	for range maxLinks {
		fi, err := root.Lstat(p)
		if err != nil {
			return "", nil, false
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return p, links, fi.IsDir()
		}
		t, err := root.Readlink(p)
		if err != nil || path.IsAbs(t) {
			return "", nil, false
		}
		next := path.Join(path.Dir(p), t)
		if next == ".." || strings.HasPrefix(next, "../") {
			return "", nil, false
		}
		links = append(links, pkgLink{p, t})
		p = next
	}
	return "", nil, false
}

// stageLink makes name a symlink to target, unless it is one already.
func stageLink(root *os.Root, name, target string) error {
	if t, err := root.Readlink(name); err == nil && t == target {
		return nil
	}
	if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
		return err
	}
	return root.Symlink(target, name)
}

// resolvePackage returns where Node finds package name when it is required
// from the package directory from ("." for the project): from's own
// node_modules, then each enclosing node_modules up to the root's. It
// returns "" when the package is not installed.
func resolvePackage(root *os.Root, from, name string) string {
	if !validPackageName(name) {
		return ""
	}
	bases := []string{from}
	parts := strings.Split(from, "/")
	for i := len(parts) - 1; i >= 0; i-- {
		if parts[i] == "node_modules" {
			bases = append(bases, strings.Join(parts[:i], "/"))
		}
	}
	for _, base := range bases {
		candidate := path.Join(base, "node_modules", name)
		if exists(root, candidate+"/package.json") {
			return candidate
		}
	}
	return ""
}

// validPackageName accepts "name" and "@scope/name" with no path tricks:
// the names come from package.json files the build could have written.
func validPackageName(name string) bool {
	parts := strings.Split(name, "/")
	if len(parts) == 2 && !strings.HasPrefix(parts[0], "@") || len(parts) > 2 {
		return false
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." || p == "@" || strings.ContainsAny(p, "\\\x00") {
			return false
		}
	}
	return true
}

// maxManifestBytes bounds one package.json read while staging.
const maxManifestBytes = 4 << 20

// readManifest reads the dependency fields of a package.json; one that is
// missing reads as no dependencies, one that is not JSON is an error naming
// it.
//
// The build wrote every one of them: each is opened without blocking (a
// FIFO is refused, not waited on) and read up to maxManifestBytes, so the
// server, which runs this as root, neither hangs nor runs out of memory.
func readManifest(root *os.Root, name string, m *dependencyManifest) error {
	f, _, err := openRegular(root, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxManifestBytes+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	if len(data) > maxManifestBytes {
		return fmt.Errorf("read %s: larger than %d bytes", name, maxManifestBytes)
	}
	if err := json.Unmarshal(data, m); err != nil {
		return fmt.Errorf("parse %s: %w", name, err)
	}
	return nil
}

// detectFunctions finds the checkout's functions after Detect, says which
// in the push log, and gives a static site the install step its functions'
// dependencies need. It returns nil when there are none.
func detectFunctions(src string, s Settings, p *Plan, out *buildLog) (*Functions, error) {
	fns, err := FindFunctions(src, *p)
	if err != nil || fns == nil {
		return nil, err
	}
	out.detail("Functions: " + fns.Describe())
	if err := PlanFunctionsInstall(src, p, s); err != nil {
		return nil, err
	}
	return fns, nil
}

// checkFunctionsNode fails the build when fns cannot run on the build's
// Node: TypeScript needs a Node that strips types. version is the fetched
// Node's version, known without running it (a downloaded binary never runs
// as root outside the sandbox); "" means the system's, which is asked. No
// functions, or no TypeScript, pass.
func checkFunctionsNode(ctx context.Context, fns *Functions, version string) error {
	if fns == nil || !fns.TypeScript {
		return nil
	}
	if version == "" {
		var err error
		if version, err = nodeVersion(ctx, "node"); err != nil {
			return err
		}
	}
	return fns.CheckNode(version)
}

// nodeVersion asks a Node binary, looked up in the builds' PATH, for its
// version.
func nodeVersion(ctx context.Context, node string) (string, error) {
	bin, err := lookPathEnv(node, []string{"PATH=" + sandboxPath})
	if err != nil {
		return "", fmt.Errorf("find node for the functions: %w", err)
	}
	_, _, printed, err := proc.NodeVersion(ctx, bin)
	return printed, err
}

// functionsOnlyDir is the output of a project that is only functions: an
// empty directory made for it in the checkout.
const functionsOnlyDir = ".minivercel-no-static-files"

// FunctionsOnlyPlan is the plan for a checkout in dir in which Detect found
// nothing to serve (detectErr wraps ErrUndetectable) but whose api/ folder
// has functions: as Vercel deploys an API-only project, a static site with
// no files, whose functions answer /api and everything else 404. Any other
// detectErr, or no functions, gives detectErr back.
func FunctionsOnlyPlan(dir string, detectErr error) (Plan, error) {
	if !errors.Is(detectErr, ErrUndetectable) {
		return Plan{}, detectErr
	}
	p := Plan{Kind: KindStatic, OutputDir: functionsOnlyDir, OutputCandidates: []string{functionsOnlyDir}}
	fns, err := FindFunctions(dir, p)
	if err != nil {
		return Plan{}, err
	}
	if fns == nil {
		return Plan{}, detectErr
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Plan{}, fmt.Errorf("plan functions only: %w", err)
	}
	defer root.Close()
	// Whatever the repository had under this name is not the site.
	if err := root.RemoveAll(functionsOnlyDir); err != nil {
		return Plan{}, fmt.Errorf("plan functions only: %w", err)
	}
	if err := root.Mkdir(functionsOnlyDir, 0o755); err != nil {
		return Plan{}, fmt.Errorf("plan functions only: %w", err)
	}
	return p, nil
}
