package pipeline

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"strings"
	"syscall"
)

// Kind is what Detect decided a project is.
type Kind int

const (
	// KindStatic is a site served as committed: no install, no build.
	KindStatic Kind = iota + 1
	// KindNPM is a project built by a package manager's `run build` (Vite,
	// Create React App, Astro…) or by a build command from the settings,
	// whose output is served as static files.
	KindNPM
	// KindNextJS is a Next.js app served by Next's own server.
	KindNextJS
	// KindNode is a Node server started by package.json's start script or
	// by a start command from the settings.
	KindNode
	// KindProcfile is an app whose web process is the Procfile's web line.
	KindProcfile
)

var kindNames = map[Kind]string{
	KindStatic:   "static",
	KindNPM:      "npm",
	KindNextJS:   "nextjs",
	KindNode:     "node",
	KindProcfile: "procfile",
}

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

// Framework is a value a project's Settings.Framework can take, with its
// name for people: a kind, which forces how the project is served and
// turns detection off, or a preset, which plans the project as that
// framework even when its detection would not match.
type Framework struct {
	// Name is the Settings.Framework value: Kind.String() for a kind, the
	// preset's name (Plan.Preset) for a preset.
	Name string
	// Kind is the kind forced; zero for a preset, which chooses it.
	Kind  Kind
	Label string
}

// Frameworks are the kinds and presets a project can force, in the order
// the panel offers them: the one list every front end shows and validates
// against.
var Frameworks = []Framework{
	{"static", KindStatic, "Static site"},
	{"npm", KindNPM, "npm build (single-page app)"},
	{"nextjs", KindNextJS, "Next.js"},
	{"node", KindNode, "Node server"},
	{"procfile", KindProcfile, "Procfile"},
	{"sveltekit", 0, "SvelteKit"},
	{"nuxt", 0, "Nuxt"},
	{"nitro", 0, "Nitro"},
	{"astro", 0, "Astro"},
	{"react-router", 0, "React Router (framework mode)"},
	{"remix", 0, "Remix"},
}

// ValidFramework reports whether name is a Settings.Framework value: a
// kind's or a preset's name, or "" (detect).
func ValidFramework(name string) bool {
	_, ok := frameworkNamed(name)
	return ok || name == ""
}

// ServerFramework reports whether a project forced to name may have a start
// command: any kind that runs a process, any preset (a start command makes
// it a server app), or "" (detect, which turns a project with a start
// command into a server app).
func ServerFramework(name string) bool {
	f, ok := frameworkNamed(name)
	return name == "" || ok && serverFramework(f)
}

func serverFramework(f Framework) bool { return f.Kind != KindStatic && f.Kind != KindNPM }

// FrameworkNames lists the framework names for messages: "static, npm, …".
func FrameworkNames() string { return frameworkNames(func(Framework) bool { return true }) }

// ServerFrameworkNames lists the frameworks that may have a start command.
func ServerFrameworkNames() string { return frameworkNames(serverFramework) }

func frameworkNames(keep func(Framework) bool) string {
	var names []string
	for _, f := range Frameworks {
		if keep(f) {
			names = append(names, f.Name)
		}
	}
	return strings.Join(names, ", ")
}

// frameworkNamed finds a framework by name, in any letter case.
func frameworkNamed(name string) (Framework, bool) {
	for _, f := range Frameworks {
		if strings.EqualFold(name, f.Name) {
			return f, true
		}
	}
	return Framework{}, false
}

// Settings are a project's build overrides. The zero value means: detect
// everything. Every field wins over what Detect would find.
type Settings struct {
	// Framework forces the kind by its Kind.String name: "static", "npm",
	// "nextjs", "node" or "procfile", or a preset by its name ("sveltekit",
	// "nuxt", "nitro", "astro", "react-router", "remix"), in any letter
	// case; see Frameworks. Empty means detect.
	Framework string
	// InstallCommand replaces the detected install step (a static site has
	// none). It is run as `sh -c InstallCommand`: shell syntax is allowed,
	// and safe because the command runs in the sandbox as the unprivileged
	// build user. Empty means detect.
	InstallCommand string
	// BuildCommand replaces the detected build step, run as `sh -c` like
	// InstallCommand. Setting it makes a project that would be static
	// KindNPM even without a package.json build script. Empty means detect.
	BuildCommand string
	// StartCommand replaces the detected start command of a server app (see
	// Plan.Start). Setting it makes a project that would be static or
	// KindNPM a KindNode server app; with Framework "static" or "npm" it is
	// an error. Empty means detect.
	StartCommand string
	// OutputDir is the directory to pack, relative to the project root (for
	// example "dist" or "."): the files served for a static kind, the
	// directory the web process starts in for a server kind. Empty means
	// detect.
	OutputDir string
}

// Plan is how to build and serve one checkout, as decided by Detect.
type Plan struct {
	// Kind is what the project was detected (or configured) as.
	Kind Kind
	// PackageManager is "npm", "yarn", "pnpm" or "bun" for a project with
	// a package.json that gets installed or built, and empty otherwise.
	PackageManager string
	// Install is the install command's argv. Nil means no install step: a
	// static site, or a package.json with no dependencies at all (the
	// caller should say "skipped: no dependencies" in the log).
	Install []string
	// Build is the build command's argv; nil when nothing is built (always
	// for KindStatic, and for a server app without a build script).
	Build []string
	// Start is the shell command that starts a server app's web process,
	// empty for the static kinds. The runtime runs it as `sh -c Start` in
	// the extracted artifact (the packed OutputDir) with PORT, HOST and
	// <artifact>/node_modules/.bin first in PATH. For KindNode it is the
	// start script's raw text rather than `npm start`, so the process tree
	// is just `sh -c <script>`: npm would add a process, a second or so of
	// start-up, and its own handling of signals.
	Start string
	// Standalone reports a KindNextJS app built with output: 'standalone':
	// ResolveOutput completes .next/standalone with the static assets, and
	// only that directory is packed.
	Standalone bool
	// OutputDir is the directory to pack, relative to the project root.
	// It is "" for a KindNPM plan until ResolveOutput finds it after the
	// build, unless Settings.OutputDir fixed it; "." for a server app
	// (the whole app, node_modules included) or ".next/standalone".
	OutputDir string
	// OutputCandidates are the directories ResolveOutput tries, in order,
	// when OutputDir is empty.
	OutputCandidates []string
	// SPA reports a single-page app whose unknown paths should be served
	// index.html. ResolveOutput decides it from SPAHint and the output of a
	// KindNPM build; a multi-page site answers its own 404.html or a
	// default 404 page instead.
	SPA bool
	// SPAHint is what the framework says about SPA before the build: the
	// zero value SPAAuto lets the output decide.
	SPAHint SPAHint
	// Preset names the framework Detect recognised ("sveltekit", "nuxt",
	// "astro", "vite"…, see PresetLabel), "" for none or for a kind forced
	// by the settings.
	Preset string
	// Reason says why Detect chose the preset, for the push log:
	// "@sveltejs/kit and @sveltejs/adapter-node in package.json".
	Reason string
	// Entry is a file, relative to the project root, that the build must
	// write for Start to work (a framework's server entry such as
	// build/index.js); ResolveOutput fails naming it when it is missing.
	// Empty means no such check.
	Entry string
}

// Server reports whether the plan starts a web process: Start is set.
func (p Plan) Server() bool { return p.Start != "" }

// Describe returns the one line the push log shows for the plan, such as
// "Next.js (next in package.json) → Next.js app (standalone), start: node
// server.js" or "static site (public)": the preset and its reason first,
// when Detect recognised a framework.
func (p Plan) Describe() string {
	d := p.describeKind()
	if p.Preset != "" {
		d = PresetLabel(p.Preset) + " (" + p.Reason + ") → " + d
	}
	return d
}

func (p Plan) describeKind() string {
	var d string
	switch p.Kind {
	case KindStatic:
		d = "static site (" + p.OutputDir + ")"
	case KindNPM:
		using := p.PackageManager
		if using == "" {
			using = "custom command"
		}
		out := p.OutputDir
		switch {
		case out != "":
		case len(p.OutputCandidates) == 1:
			out = p.OutputCandidates[0]
		default:
			out = "first of " + strings.Join(p.OutputCandidates, ", ")
		}
		d = "npm build (" + using + "), output " + out
	case KindNextJS:
		d = "Next.js app"
		if p.Standalone {
			d += " (standalone)"
		}
		d += ", start: " + p.Start
	case KindNode:
		d = "Node server, start: " + p.Start
	case KindProcfile:
		d = "Procfile web process: " + p.Start
	default:
		d = p.Kind.String()
	}
	if p.PackageManager != "" && len(p.Install) == 0 {
		d += "; no dependencies, install skipped"
	}
	return d
}

// npmOutputCandidates are the output directories of common frameworks:
// Vite, Create React App, Next.js export, and plain public/ builds.
var npmOutputCandidates = []string{"dist", "build", "out", "public"}

// nextStandaloneDir is where `next build` writes the standalone server
// when next.config sets output: 'standalone'.
const nextStandaloneDir = ".next/standalone"

// nextConfigs are the file names Next reads its configuration from.
var nextConfigs = []string{"next.config.js", "next.config.mjs", "next.config.ts", "next.config.cjs"}

// standaloneRe finds output: 'standalone' in a Next config. It is a text
// match, not an evaluation: a config that computes the value is not seen,
// and Settings can fix what the match gets wrong.
var standaloneRe = regexp.MustCompile(`\boutput\s*:\s*['"]standalone['"]`)

// nextStart serves a non-standalone Next build from the whole app. The
// binary path rather than `npx next` saves npx's start-up; the runtime
// runs Start in the artifact directory, where node_modules is.
const nextStart = `node_modules/.bin/next start -p "$PORT" -H "$HOST"`

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

// devServers are commands that, as a start script, run a front-end
// development or static file server rather than an app's production
// server: Create React App's `"start": "react-scripts start"` next to its
// build script must stay a static build, not be served by its dev server.
var devServers = map[string]bool{
	"react-scripts": true, "vite": true, "ng": true, "vue-cli-service": true,
	"webpack": true, "webpack-dev-server": true, "parcel": true, "gatsby": true,
	"astro": true, "docusaurus": true, "eleventy": true, "serve": true,
	"http-server": true, "live-server": true,
}

// packageJSON is the part of package.json that detection reads.
type packageJSON struct {
	Scripts              map[string]json.RawMessage `json:"scripts"`
	Dependencies         map[string]json.RawMessage `json:"dependencies"`
	DevDependencies      map[string]json.RawMessage `json:"devDependencies"`
	OptionalDependencies map[string]json.RawMessage `json:"optionalDependencies"`
	Workspaces           json.RawMessage            `json:"workspaces"`
}

// script returns the trimmed text of a script, "" when it is missing or
// not a string.
func (p *packageJSON) script(name string) string {
	var s string
	if json.Unmarshal(p.Scripts[name], &s) != nil {
		return ""
	}
	return strings.TrimSpace(s)
}

func (p *packageJSON) buildScript() bool { return p.script("build") != "" }

// serverStart is the start script when it starts a production server,
// and "" when there is none or it runs a development server.
func (p *packageJSON) serverStart() string {
	s := p.script("start")
	if s == "" || devServers[scriptCommand(s)] {
		return ""
	}
	return s
}

func (p *packageJSON) hasDependency(name string) bool {
	_, dep := p.Dependencies[name]
	_, dev := p.DevDependencies[name]
	return dep || dev
}

// needsInstall is false only when there is provably nothing to install;
// workspaces need an install to link their packages even without
// dependencies.
func (p *packageJSON) needsInstall() bool {
	return len(p.Dependencies) > 0 || len(p.DevDependencies) > 0 ||
		len(p.OptionalDependencies) > 0 || len(p.Workspaces) > 0
}

// scriptCommand returns the program a script runs: its first word after
// variable assignments and the env, cross-env and npx wrappers, without
// its directory.
func scriptCommand(script string) string {
	for _, w := range strings.Fields(script) {
		if strings.Contains(w, "=") || w == "env" || w == "cross-env" || w == "npx" || strings.HasPrefix(w, "-") {
			continue
		}
		return path.Base(w)
	}
	return ""
}

// Detect decides how to build and serve the checkout in dir, applying the
// overrides in s. Settings win over everything below; without them the
// first matching rule decides:
//
//  1. a Procfile at the root with a web line is KindProcfile, started with
//     that line's command;
//  2. a package.json with next in dependencies or devDependencies is
//     KindNextJS (preset "nextjs"), built with the build script or `next
//     build`, and started with `node server.js` in .next/standalone when
//     next.config sets output: 'standalone', else with `next start` in the
//     whole app;
//  3. a framework preset (SvelteKit, Nuxt, Astro, React Router, Remix,
//     Nitro: see presetRules) plans the build the framework's
//     documentation describes, as a server app or a static build, and
//     sets Preset and Reason; a framework whose output nothing here can
//     run (SvelteKit's adapter-auto) is an error wrapping ErrUnservable;
//  4. a package.json with a start script is KindNode, started with the
//     script's text, unless the script runs a front-end development server
//     (react-scripts, vite, serve…) which says the app is static;
//  5. a package.json with a build script (or a Settings.BuildCommand) is
//     KindNPM, whose output is served as files; Vite and Create React App
//     name their preset and make it a single-page app;
//  6. index.html at the root is KindStatic served from ".", and
//     public/index.html is KindStatic served from "public";
//  7. otherwise the error wraps ErrUndetectable.
//
// For every kind with a package.json, the lockfile picks the package
// manager and a frozen install; no lockfile means `npm install`, and no
// dependencies at all means no install step. A build script is run as
// `<pm> run build`. Server apps pack the whole project (OutputDir ".",
// node_modules included) except a standalone Next app.
//
// A malformed package.json is an error wrapping ErrInvalidPackageJSON with
// the line and column of the problem, a malformed Procfile one wrapping
// ErrInvalidProcfile; unusable settings wrap ErrInvalidSettings.
func Detect(dir string, s Settings) (Plan, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Plan{}, fmt.Errorf("detect: %w", err)
	}
	defer root.Close()

	var forced Kind
	var preset *presetRule // forced by the settings
	if s.Framework != "" {
		f, ok := frameworkNamed(s.Framework)
		if !ok {
			return Plan{}, fmt.Errorf("detect: framework %q is not one of %s: %w", s.Framework, FrameworkNames(), ErrInvalidSettings)
		}
		if forced = f.Kind; forced == 0 {
			preset = presetRuleNamed(f.Name)
		}
	}
	if s.OutputDir != "" {
		clean := path.Clean(s.OutputDir)
		if clean != "." && checkRelPath(clean) != nil {
			return Plan{}, fmt.Errorf("detect: output directory %q must be inside the project: %w", s.OutputDir, ErrInvalidSettings)
		}
		s.OutputDir = clean
	}
	s.StartCommand = strings.TrimSpace(s.StartCommand)
	if s.StartCommand != "" && (forced == KindStatic || forced == KindNPM) {
		return Plan{}, fmt.Errorf("detect: a start command needs a server framework (%s), not %s: %w", ServerFrameworkNames(), forced, ErrInvalidSettings)
	}

	pkg, hasPkg, err := readPackageJSON(root)
	if err != nil {
		return Plan{}, err
	}
	// A forced kind or preset ignores the Procfile, so that a broken one
	// cannot block a build the settings describe completely.
	var web string
	var hasProcfile bool
	if preset == nil && (forced == 0 || forced == KindProcfile) {
		if web, hasProcfile, err = readProcfile(root); err != nil {
			return Plan{}, err
		}
	}

	if preset != nil || forced == 0 && web == "" && hasPkg && !pkg.hasDependency("next") {
		if p, ok, err := presetPlan(root, pkg, s, preset); ok {
			return p, err
		}
	}

	kind := forced
	if kind == 0 {
		switch {
		case web != "":
			kind = KindProcfile
		case hasPkg && pkg.hasDependency("next"):
			kind = KindNextJS
		case hasPkg && pkg.serverStart() != "", s.StartCommand != "":
			kind = KindNode
		case s.BuildCommand != "" || (hasPkg && pkg.buildScript()):
			kind = KindNPM
		default:
			kind = KindStatic
		}
	}

	switch kind {
	case KindStatic:
		return staticPlan(root, hasPkg, hasProcfile, s)
	case KindNPM:
		p, err := npmPlan(root, pkg, hasPkg, s)
		if err == nil && forced == 0 && hasPkg {
			nameFramework(project{root, pkg}, &p)
		}
		return p, err
	}
	p := serverPlan(root, kind, pkg, hasPkg, s)
	switch kind {
	case KindProcfile:
		p.Start = web
	case KindNextJS:
		p.Standalone = nextStandalone(root)
		p.Start = nextStart
		if p.Standalone {
			p.Start = "node server.js"
			if s.OutputDir == "" {
				p.OutputDir = nextStandaloneDir
				p.OutputCandidates = []string{p.OutputDir}
			}
		}
		if p.Build == nil {
			// next build works without a build script; --no-install keeps
			// npx from fetching a Next the project did not ask for.
			p.Build = []string{"npx", "--no-install", "next", "build"}
		}
	case KindNode:
		p.Start = pkg.serverStart()
		if p.Start == "" && forced == KindNode {
			// Forced: the user says it is a server, dev server or not.
			p.Start = pkg.script("start")
		}
	}
	if forced == 0 && kind == KindNextJS {
		p.Preset, p.Reason = "nextjs", "next in package.json"
	}
	if forced == 0 && kind == KindNode && s.StartCommand == "" {
		nameFramework(project{root, pkg}, &p)
	}
	if s.StartCommand != "" {
		p.Start = s.StartCommand
	}
	if s.BuildCommand != "" {
		p.Build = []string{"sh", "-c", s.BuildCommand}
	}
	if p.Start == "" {
		switch kind {
		case KindProcfile:
			return Plan{}, fmt.Errorf("detect: framework procfile needs a Procfile with a web line or a start command: %w", ErrInvalidSettings)
		default:
			return Plan{}, fmt.Errorf("detect: framework node needs a start script in package.json or a start command: %w", ErrInvalidSettings)
		}
	}
	return p, nil
}

// installPlan fills the package manager and install step shared by every
// kind that has a package.json.
func installPlan(root *os.Root, p *Plan, pkg packageJSON) {
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

// serverPlan is the part of a server app's plan common to its kinds: the
// usual install and build, and the whole project as output.
func serverPlan(root *os.Root, kind Kind, pkg packageJSON, hasPkg bool, s Settings) Plan {
	p := Plan{Kind: kind, OutputDir: s.OutputDir}
	if p.OutputDir == "" {
		p.OutputDir = "."
	}
	p.OutputCandidates = []string{p.OutputDir}
	if hasPkg {
		installPlan(root, &p, pkg)
	}
	if s.InstallCommand != "" {
		p.Install = []string{"sh", "-c", s.InstallCommand}
	}
	return p
}

func npmPlan(root *os.Root, pkg packageJSON, hasPkg bool, s Settings) (Plan, error) {
	p := Plan{Kind: KindNPM, OutputDir: s.OutputDir}
	if p.OutputDir == "" {
		p.OutputCandidates = append([]string(nil), npmOutputCandidates...)
	} else {
		p.OutputCandidates = []string{p.OutputDir}
	}
	if hasPkg {
		installPlan(root, &p, pkg)
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

func staticPlan(root *os.Root, hasPkg, hasProcfile bool, s Settings) (Plan, error) {
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
	default:
		var has []string
		if hasPkg {
			has = append(has, "package.json has no build script and no server start script")
		}
		if hasProcfile {
			has = append(has, "the Procfile has no web process")
		}
		if len(has) == 0 {
			has = append(has, "no package.json or Procfile")
		}
		return Plan{}, fmt.Errorf("detect: no index.html at the root or in public/, and %s: %w", strings.Join(has, ", "), ErrUndetectable)
	}
	p.OutputCandidates = []string{p.OutputDir}
	return p, nil
}

// procfileLine is a Procfile entry, "name: command", as Heroku and
// foreman read it.
var procfileLine = regexp.MustCompile(`^([A-Za-z0-9_-]+)[ \t]*:[ \t]*(.*)$`)

// readProcfile returns the command of the root Procfile's web process,
// "" when it has none; found is false when there is no Procfile. Blank
// lines and # comments are skipped; any other line that is not
// "name: command" is an error wrapping ErrInvalidProcfile, because
// silently skipping a mistyped web line would deploy something else.
func readProcfile(root *os.Root) (web string, found bool, err error) {
	data, err := root.ReadFile("Procfile")
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read Procfile: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := procfileLine.FindStringSubmatch(line)
		switch {
		case m == nil:
			return "", true, fmt.Errorf("parse Procfile:%d: want \"name: command\", got %q: %w", n, line, ErrInvalidProcfile)
		case m[1] != "web":
		case strings.TrimSpace(m[2]) == "":
			return "", true, fmt.Errorf("parse Procfile:%d: the web process has no command: %w", n, ErrInvalidProcfile)
		case web != "":
			return "", true, fmt.Errorf("parse Procfile:%d: a second web process: %w", n, ErrInvalidProcfile)
		default:
			web = strings.TrimSpace(m[2])
		}
	}
	if err := sc.Err(); err != nil {
		return "", true, fmt.Errorf("read Procfile: %w", err)
	}
	return web, true, nil
}

// nextStandalone reports whether a Next config asks for the standalone
// output.
func nextStandalone(root *os.Root) bool {
	for _, name := range nextConfigs {
		data, err := root.ReadFile(name)
		if err == nil && standaloneRe.Match(data) {
			return true
		}
	}
	return false
}

// ResolveOutput finds the build output after the build ran in dir: p's
// OutputDir if set, else the first of p.OutputCandidates that is a
// directory. It sets p.OutputDir, and p.SPA for KindNPM outputs as
// singlePageApp decides. A missing output, or a missing p.Entry, wraps
// ErrNoOutput and lists what was looked for. A KindNPM output holding a
// server bundle (see serverBundle) wraps ErrUnservable: it would be
// published as files with nothing to run it.
//
// For a standalone Next app it also does what Next's documentation leaves
// to the deployer: copy .next/static to .next/standalone/.next/static and
// public to .next/standalone/public, since the standalone server serves
// them from there. A standalone build without .next/standalone/server.js
// wraps ErrNoOutput.
//
// The tree was just written by the build, so it is read and written
// through os.Root: a symlink such as dist -> /etc is not followed out of
// dir, neither for reading nor for the copies.
func ResolveOutput(dir string, p *Plan) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("resolve output: %w", err)
	}
	defer root.Close()

	if p.Entry != "" && !exists(root, p.Entry) {
		return fmt.Errorf("resolve output: the build wrote no %s, which the start command %q runs: %w", p.Entry, p.Start, ErrNoOutput)
	}
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
		hint := ""
		if p.Standalone {
			hint = " (next build did not write its standalone server)"
		}
		return fmt.Errorf("resolve output: looked for %s%s: %w", strings.Join(looked, ", "), hint, ErrNoOutput)
	}
	if p.Standalone {
		if err := completeStandalone(root); err != nil {
			return fmt.Errorf("resolve output: %w", err)
		}
	}
	if p.Kind == KindNPM {
		if what := serverBundle(root, found); what != "" {
			return fmt.Errorf("resolve output: %s/ holds %s and nothing would run it; serving it as files would publish the server's code: "+
				"set a start command, or configure the framework for a static site: %w", found, what, ErrUnservable)
		}
	}
	p.OutputDir = found
	p.SPA = p.Kind == KindNPM && singlePageApp(root, found, p.SPAHint)
	return nil
}

// completeStandalone copies the assets a standalone Next server expects
// next to it; `next build` leaves that to the deployer so that they can go
// to a CDN instead.
func completeStandalone(root *os.Root) error {
	if !exists(root, nextStandaloneDir+"/server.js") {
		return fmt.Errorf("no %s/server.js after next build: %w", nextStandaloneDir, ErrNoOutput)
	}
	for _, c := range []struct{ from, to string }{
		{".next/static", nextStandaloneDir + "/.next/static"},
		{"public", nextStandaloneDir + "/public"},
	} {
		if !isDir(root, c.from) {
			continue // public/ is optional; .next/static is absent without client code
		}
		if err := copyTree(root, c.from, c.to); err != nil {
			return fmt.Errorf("copy %s to %s: %w", c.from, c.to, err)
		}
	}
	return nil
}

// copyTree copies the tree at from to to, both inside root: directories
// (0755), regular files (0644, or 0755 with any execute bit) and symlinks
// as they are; Pack checks later that every symlink stays inside the
// output. Anything else wraps ErrUnsafePath.
func copyTree(root *os.Root, from, to string) error {
	return fs.WalkDir(root.FS(), from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := to + strings.TrimPrefix(p, from)
		switch {
		case d.IsDir():
			if err := root.MkdirAll(dst, 0o755); err != nil {
				return err
			}
			return root.Chmod(dst, 0o755)
		case d.Type().IsRegular():
			return copyFile(root, p, dst)
		case d.Type()&fs.ModeSymlink != 0:
			t, err := root.Readlink(p)
			if err != nil {
				return err
			}
			return root.Symlink(t, dst)
		}
		return fmt.Errorf("%s is a special file (%v): %w", p, d.Type(), ErrUnsafePath)
	})
}

func copyFile(root *os.Root, src, dst string) error {
	in, fi, err := openRegular(root, src)
	if err != nil {
		return err
	}
	defer in.Close()
	mode := fs.FileMode(0o644)
	if fi.Mode().Perm()&0o111 != 0 {
		mode = 0o755
	}
	out, err := root.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, mode)
	if err != nil {
		return err
	}
	if _, err := out.ReadFrom(in); err != nil {
		out.Close()
		return err
	}
	if err := out.Chmod(mode); err != nil {
		out.Close()
		return err
	}
	return out.Close()
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
