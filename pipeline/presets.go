package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"strings"
)

// SPAHint is what a plan knows, before the build, about whether its output is
// a single-page app; ResolveOutput turns it into Plan.SPA.
type SPAHint int

const (
	// SPAAuto decides from the output: a single-page app has index.html at
	// its root, no 404.html and no other .html page anywhere.
	SPAAuto SPAHint = iota
	// SPAYes is a framework whose output is a single-page app (Vite, Create
	// React App) even when it carries other .html files: index.html at the
	// root and no 404.html are enough.
	SPAYes
	// SPANo is a framework whose pages are real HTML files (Astro): unknown
	// paths answer 404 even for a one-page site.
	SPANo
)

// presetLabels are the names people read for Plan.Preset values.
var presetLabels = map[string]string{
	"nextjs":           "Next.js",
	"sveltekit":        "SvelteKit",
	"nuxt":             "Nuxt",
	"nitro":            "Nitro",
	"astro":            "Astro",
	"react-router":     "React Router",
	"remix":            "Remix",
	"vite":             "Vite",
	"create-react-app": "Create React App",
	"express":          "Express",
	"fastify":          "Fastify",
	"hono":             "Hono",
	"koa":              "Koa",
	"nestjs":           "NestJS",
}

// PresetLabel returns the name people read for a Plan.Preset value, or name
// itself when it is not a known preset.
func PresetLabel(name string) string {
	if l, ok := presetLabels[name]; ok {
		return l
	}
	return name
}

// project is what a preset reads to decide: the checkout and its
// package.json.
type project struct {
	root *os.Root
	pkg  packageJSON
}

// firstDep returns the first of names that package.json depends on, "" for
// none.
func (pr project) firstDep(names ...string) string {
	for _, n := range names {
		if pr.pkg.hasDependency(n) {
			return n
		}
	}
	return ""
}

// firstFile returns the first of names that is a file at the root, "" for
// none.
func (pr project) firstFile(names ...string) string {
	for _, n := range names {
		if exists(pr.root, n) {
			return n
		}
	}
	return ""
}

// configMatches reports whether one of the config files matches re. It is a
// text match, not an evaluation, like the Next standalone check: Settings
// fix what it gets wrong. Comment lines are skipped: templates ship options
// commented out.
func (pr project) configMatches(re *regexp.Regexp, files ...string) bool {
	for _, name := range files {
		if data, err := pr.root.ReadFile(name); err == nil && re.Match(uncommented(data)) {
			return true
		}
	}
	return false
}

// uncommented drops the lines of a JavaScript config that are comments
// only (//, /* and * lines).
func uncommented(data []byte) []byte {
	var out []byte
	for line := range bytes.Lines(data) {
		t := bytes.TrimSpace(line)
		if bytes.HasPrefix(t, []byte("//")) || bytes.HasPrefix(t, []byte("/*")) || bytes.HasPrefix(t, []byte("*")) {
			continue
		}
		out = append(out, line...)
	}
	return out
}

// depWithPrefix returns the first, in name order, of the packages
// package.json depends on whose name starts with prefix; "" for none.
func (pr project) depWithPrefix(prefix string) string {
	found := ""
	for _, deps := range []map[string]json.RawMessage{pr.pkg.Dependencies, pr.pkg.DevDependencies} {
		for name := range deps {
			if strings.HasPrefix(name, prefix) && (found == "" || name < found) {
				found = name
			}
		}
	}
	return found
}

// defaultBuild is the build step of a preset: the build script when there
// is one (installPlan set it), else the framework's own command through npx
// --no-install, which never fetches a tool the project did not install.
func defaultBuild(p *Plan, tool ...string) {
	if p.Build == nil {
		p.Build = append([]string{"npx", "--no-install"}, tool...)
	}
}

// A presetRule recognises one framework and plans its build. Rules are
// tried in order after the Procfile and Next.js, and before the generic
// start-script and build-script rules.
type presetRule struct {
	name string
	// match reports whether the project uses the framework, with the reason
	// shown in the push log ("@sveltejs/kit in package.json").
	match func(pr project) (reason string, ok bool)
	// plan completes p, which already has the install step and the build
	// script, and may refine the reason. An error says why the project
	// cannot be served here.
	plan func(pr project, p *Plan) error
}

// depRule matches a project that depends on one of names.
func depRule(names ...string) func(pr project) (string, bool) {
	return func(pr project) (string, bool) {
		if d := pr.firstDep(names...); d != "" {
			return d + " in package.json", true
		}
		return "", false
	}
}

// presetRules are the frameworks Detect knows beyond Next.js, most specific
// first: the meta-frameworks all depend on vite too.
var presetRules = []presetRule{
	{name: "sveltekit", match: depRule("@sveltejs/kit"), plan: planSvelteKit},
	{name: "nuxt", match: depRule("nuxt", "nuxt3", "nuxt-nightly"), plan: planNuxt},
	{name: "astro", match: depRule("astro"), plan: planAstro},
	{name: "react-router", match: matchReactRouter, plan: planReactRouter},
	{name: "remix", match: depRule("@remix-run/dev"), plan: planRemix},
	{name: "nitro", match: depRule("nitropack", "nitro"), plan: planNitro},
}

var (
	svelteConfigs = []string{"svelte.config.js", "svelte.config.mjs", "svelte.config.ts", "svelte.config.cjs"}
	astroConfigs  = []string{"astro.config.mjs", "astro.config.ts", "astro.config.js", "astro.config.cjs", "astro.config.mts"}
	rrConfigs     = []string{"react-router.config.ts", "react-router.config.js", "react-router.config.mjs"}
	viteConfigs   = []string{"vite.config.ts", "vite.config.js", "vite.config.mjs", "vite.config.mts", "vite.config.cjs"}
)

// Text matches in framework configs, read as the frameworks' documentation
// writes them.
var (
	// adapterOutRe finds adapter-node's out option; its default is build.
	// The directory goes into the start command: only plain path
	// characters are taken.
	adapterOutRe = regexp.MustCompile(`\bout\s*:\s*['"]([A-Za-z0-9._/-]+)['"]`)
	// adapterPagesRe finds adapter-static's pages option; default build.
	adapterPagesRe = regexp.MustCompile(`\bpages\s*:\s*['"]([A-Za-z0-9._/-]+)['"]`)
	// astroMiddlewareRe finds @astrojs/node's mode: 'middleware', whose
	// entry exports a handler for the user's own server instead of
	// listening.
	astroMiddlewareRe = regexp.MustCompile(`\bmode\s*:\s*['"]middleware['"]`)
	// ssrFalseRe finds React Router's ssr: false (SPA mode).
	ssrFalseRe = regexp.MustCompile(`\bssr\s*:\s*false\b`)
	// rrViteRe finds React Router's Vite plugin in a vite config.
	rrViteRe = regexp.MustCompile(`@react-router/dev/vite`)
	// generateRe finds a build script that prerenders a Nuxt site.
	generateRe = regexp.MustCompile(`\bnux[ti]\s+generate\b`)
)

// configOption returns the first group re finds in the first config file
// that has it, or def.
func (pr project) configOption(re *regexp.Regexp, def string, files ...string) string {
	for _, name := range files {
		data, err := pr.root.ReadFile(name)
		if err != nil {
			continue
		}
		if m := re.FindSubmatch(uncommented(data)); m != nil {
			if v := path.Clean(string(m[1])); checkRelPath(v) == nil {
				return v
			}
		}
	}
	return def
}

// serverApp makes p a Node server run from the whole project, with a
// production start script taking precedence over the framework's own
// command: the user wrote it for a custom server.
func serverApp(pr project, p *Plan, start, entry string) {
	p.Kind, p.OutputDir, p.OutputCandidates = KindNode, ".", []string{"."}
	if s := pr.pkg.serverStart(); s != "" {
		p.Start = s
		p.Reason += ", start script"
		return
	}
	p.Start, p.Entry = start, entry
}

// addDep names a second dependency in the reason: "@sveltejs/kit and
// @sveltejs/adapter-node in package.json".
func addDep(p *Plan, dep string) {
	if r, ok := strings.CutSuffix(p.Reason, " in package.json"); ok {
		p.Reason = r + " and " + dep + " in package.json"
		return
	}
	p.Reason += ", " + dep + " in package.json"
}

// staticApp makes p a build whose output directory is served as files.
func staticApp(p *Plan, spa SPAHint, candidates ...string) {
	p.Kind, p.SPAHint, p.OutputCandidates = KindNPM, spa, candidates
}

// planSvelteKit follows the adapter: adapter-node is a Node server started
// with `node build`, adapter-static a static site; adapter-auto and the
// adapters of other hosts build for a platform this is not, and their
// output must not be published as files.
func planSvelteKit(pr project, p *Plan) error {
	defaultBuild(p, "vite", "build")
	switch a := pr.firstDep("@sveltejs/adapter-node", "@sveltejs/adapter-static"); a {
	case "@sveltejs/adapter-node":
		addDep(p, a)
		out := pr.configOption(adapterOutRe, "build", svelteConfigs...)
		serverApp(pr, p, "node "+out, out+"/index.js")
	case "@sveltejs/adapter-static":
		addDep(p, a)
		staticApp(p, SPAAuto, pr.configOption(adapterPagesRe, "build", svelteConfigs...))
	default:
		adapter := pr.depWithPrefix("@sveltejs/adapter-")
		if adapter == "" {
			adapter = "no adapter"
		}
		return fmt.Errorf("detect: SvelteKit with %s builds nothing this server can run: "+
			"install @sveltejs/adapter-node (a Node server) or @sveltejs/adapter-static (static files) "+
			"and use it in svelte.config.js: %w", adapter, ErrUnservable)
	}
	return nil
}

// planNuxt: `nuxt build` writes a self-contained Node server to .output
// (its own node_modules included), so only .output is packed; a build
// script running `nuxt generate` prerenders a static site to
// .output/public.
func planNuxt(pr project, p *Plan) error {
	defaultBuild(p, "nuxt", "build")
	if generateRe.MatchString(pr.pkg.script("build")) {
		p.Reason += ", build script runs nuxt generate"
		staticApp(p, SPAAuto, ".output/public")
		return nil
	}
	nitroServer(pr, p)
	return nil
}

// planNitro is a plain Nitro server: the same .output as Nuxt's.
func planNitro(pr project, p *Plan) error {
	defaultBuild(p, "nitro", "build")
	nitroServer(pr, p)
	return nil
}

// nitroServer makes p the node-server output of Nitro. A production start
// script runs from the whole project instead.
func nitroServer(pr project, p *Plan) {
	if pr.pkg.serverStart() != "" {
		serverApp(pr, p, "", "")
		return
	}
	p.Kind, p.OutputDir, p.OutputCandidates = KindNode, ".output", []string{".output"}
	p.Start, p.Entry = "node server/index.mjs", ".output/server/index.mjs"
}

// planAstro: Astro writes real HTML pages to dist/, never a single-page
// app; with @astrojs/node in standalone mode dist/server/entry.mjs is a
// server that honours HOST and PORT.
func planAstro(pr project, p *Plan) error {
	defaultBuild(p, "astro", "build")
	if pr.firstDep("@astrojs/node") == "" {
		// Another host's adapter (Cloudflare, Vercel, Netlify, Deno)
		// builds server code for that host, with private values inlined:
		// served as files it would publish them.
		if a := pr.otherAstroAdapter(); a != "" {
			return fmt.Errorf("detect: Astro with %s builds for that host, which this server is not: "+
				"use @astrojs/node (mode: 'standalone') for a server, or no adapter for a static site: %w", a, ErrUnservable)
		}
		staticApp(p, SPANo, "dist")
		return nil
	}
	addDep(p, "@astrojs/node")
	if pr.pkg.serverStart() == "" && pr.configMatches(astroMiddlewareRe, astroConfigs...) {
		return fmt.Errorf("detect: @astrojs/node in middleware mode exports a handler for your own server: "+
			"add a start script that runs it, or use mode: 'standalone': %w", ErrUnservable)
	}
	serverApp(pr, p, "node ./dist/server/entry.mjs", "dist/server/entry.mjs")
	return nil
}

// astroAdapters are Astro's adapters for other hosts.
var astroAdapters = []string{"@astrojs/cloudflare", "@astrojs/vercel", "@astrojs/netlify", "@deno/astro-adapter"}

// otherAstroAdapter names the first of astroAdapters in package.json, ""
// for none.
func (pr project) otherAstroAdapter() string {
	for _, a := range astroAdapters {
		if pr.pkg.hasDependency(a) {
			return a
		}
	}
	return ""
}

// matchReactRouter recognises React Router's framework mode: its dev
// package, its config file, or its Vite plugin.
func matchReactRouter(pr project) (string, bool) {
	if pr.pkg.hasDependency("@react-router/dev") {
		return "@react-router/dev in package.json", true
	}
	if f := pr.firstFile(rrConfigs...); f != "" {
		return f + " at the root", true
	}
	for _, f := range viteConfigs {
		if pr.configMatches(rrViteRe, f) {
			return f + " uses @react-router/dev/vite", true
		}
	}
	return "", false
}

// planReactRouter: ssr: false is a single-page app in build/client;
// otherwise build/server/index.js is served by react-router-serve or by the
// project's own start script.
func planReactRouter(pr project, p *Plan) error {
	defaultBuild(p, "react-router", "build")
	if pr.configMatches(ssrFalseRe, rrConfigs...) {
		p.Reason += ", ssr: false"
		staticApp(p, SPAAuto, "build/client")
		return nil
	}
	return serveBuild(pr, p, "@react-router/serve", "react-router-serve", ", or ssr: false in react-router.config.ts for a static site")
}

// planRemix is Remix v2, React Router's predecessor: remix-serve runs its
// server build.
func planRemix(pr project, p *Plan) error {
	if pr.firstFile(viteConfigs...) != "" {
		defaultBuild(p, "remix", "vite:build")
	} else {
		defaultBuild(p, "remix", "build")
	}
	return serveBuild(pr, p, "@remix-run/serve", "remix-serve", "")
}

// serveBuild makes p a server app run by the framework's serve package, or
// by a start script; with neither, nothing could run build/server and the
// build is refused rather than published.
func serveBuild(pr project, p *Plan, pkg, bin, staticHint string) error {
	if pr.pkg.serverStart() == "" && !pr.pkg.hasDependency(pkg) {
		return fmt.Errorf("detect: %s builds a server (build/server/index.js) and nothing in package.json runs it: "+
			"add %s or a start script%s: %w", PresetLabel(p.Preset), pkg, staticHint, ErrUnservable)
	}
	if pr.pkg.serverStart() == "" {
		addDep(p, pkg)
	}
	// The binary path rather than npx, like nextStart.
	serverApp(pr, p, "node_modules/.bin/"+bin+" ./build/server/index.js", "build/server/index.js")
	return nil
}

// serverFrameworks name the framework of a start-script server, for the
// push log only.
var serverFrameworks = []struct{ dep, preset string }{
	{"express", "express"},
	{"fastify", "fastify"},
	{"hono", "hono"},
	{"koa", "koa"},
	{"@nestjs/core", "nestjs"},
}

// spaFrameworks are the build tools whose output is a single-page app.
var spaFrameworks = []struct{ dep, preset string }{
	{"react-scripts", "create-react-app"},
	{"vite", "vite"},
}

// presetRuleNamed returns the rule of a preset a project's settings can
// force, nil for any other name.
func presetRuleNamed(name string) *presetRule {
	for i := range presetRules {
		if presetRules[i].name == name {
			return &presetRules[i]
		}
	}
	return nil
}

// applyPreset runs forced, or else the first preset rule that matches. ok
// is false when none does.
func applyPreset(pr project, p *Plan, forced *presetRule) (ok bool, err error) {
	if forced != nil {
		p.Preset, p.Reason = forced.name, "framework "+forced.name+" in the project settings"
		return true, forced.plan(pr, p)
	}
	for _, r := range presetRules {
		reason, match := r.match(pr)
		if !match {
			continue
		}
		p.Preset, p.Reason = r.name, reason
		return true, r.plan(pr, p)
	}
	return false, nil
}

// nameFramework fills Preset and Reason of a plan made by the generic
// rules, when a known framework explains it.
func nameFramework(pr project, p *Plan) {
	var list []struct{ dep, preset string }
	switch p.Kind {
	case KindNode:
		list = serverFrameworks
	case KindNPM:
		list = spaFrameworks
	default:
		return
	}
	for _, f := range list {
		if pr.pkg.hasDependency(f.dep) {
			p.Preset, p.Reason = f.preset, f.dep+" in package.json"
			if p.Kind == KindNPM {
				p.SPAHint = SPAYes
			} else {
				p.Reason += ", start script"
			}
			return
		}
	}
}

// presetPlan plans a project as the forced preset, or as the one a preset
// rule recognises, with the settings applied over the framework's choices.
// ok is false when no rule matches, or when the settings' start command
// replaces a framework whose own output could not be served.
func presetPlan(root *os.Root, pkg packageJSON, s Settings, forced *presetRule) (p Plan, ok bool, err error) {
	installPlan(root, &p, pkg)
	ok, err = applyPreset(project{root, pkg}, &p, forced)
	switch {
	case !ok, errors.Is(err, ErrUnservable) && s.StartCommand != "":
		return Plan{}, false, nil
	case err != nil:
		return Plan{}, true, err
	}
	if s.InstallCommand != "" {
		p.Install = []string{"sh", "-c", s.InstallCommand}
	}
	if s.BuildCommand != "" {
		p.Build = []string{"sh", "-c", s.BuildCommand}
	}
	if s.StartCommand != "" {
		// As for any build: a start command makes it a server app run
		// from the whole project.
		if p.Kind == KindNPM {
			p.Kind, p.OutputDir, p.OutputCandidates, p.SPAHint = KindNode, ".", []string{"."}, SPAAuto
		}
		p.Start, p.Entry = s.StartCommand, ""
	}
	if s.OutputDir != "" {
		p.OutputDir, p.OutputCandidates = s.OutputDir, []string{s.OutputDir}
	}
	return p, true, nil
}

// maxOutputWalk bounds the entries singlePageApp and serverBundle read
// from an output: a build can write any number of files.
const maxOutputWalk = 100_000

// errStopWalk ends a walk early; it never leaves this file.
var errStopWalk = errors.New("stop walk")

// singlePageApp decides Plan.SPA for the output directory dir: never for
// SPANo; otherwise the output needs index.html at its root and no 404.html
// (the site's own 404 page says it is not an SPA); SPAYes then suffices,
// and SPAAuto also wants no other .html page anywhere, because a site with
// several pages is not routed by one script. An output too large to walk
// is not an SPA: unknown paths then answer 404, the safe mistake.
func singlePageApp(root *os.Root, dir string, hint SPAHint) bool {
	if hint == SPANo || !exists(root, path.Join(dir, "index.html")) || exists(root, path.Join(dir, "404.html")) {
		return false
	}
	if hint == SPAYes {
		return true
	}
	index := path.Join(dir, "index.html")
	n, other := 0, false
	err := fs.WalkDir(root.FS(), dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if n++; n > maxOutputWalk {
			return errStopWalk
		}
		if !d.IsDir() && p != index && strings.EqualFold(path.Ext(p), ".html") {
			other = true
			return errStopWalk
		}
		return nil
	})
	return !other && err == nil
}

// serverBundles are the files by which a framework's server build is
// known, relative to an output directory; all files of one entry must be
// there.
var serverBundles = []struct {
	files []string
	what  string
}{
	{[]string{"index.js", "handler.js"}, "SvelteKit's adapter-node server (index.js, handler.js)"},
	{[]string{"server/index.mjs"}, "a Nitro server (server/index.mjs)"},
	{[]string{"nitro.json"}, "a Nitro build (nitro.json)"},
	{[]string{"server/entry.mjs"}, "an Astro server (server/entry.mjs)"},
	{[]string{"server/index.js"}, "a server build (server/index.js)"},
	{[]string{"_worker.js"}, "a Cloudflare worker (_worker.js)"},
	{[]string{"_worker.js/index.js"}, "a Cloudflare worker (_worker.js/index.js)"},
}

// serverBundle names the server code found in the output directory dir,
// "" for none: a known framework's server entry, source maps of
// JavaScript under server/ (they carry the endpoints' source), or
// JavaScript under a server/ without any HTML page, as Vite's SSR builds
// write it (dist/server/entry-server.js). A server/ with pages is a
// section of a site, its scripts the pages'.
func serverBundle(root *os.Root, dir string) string {
	for _, b := range serverBundles {
		all := true
		for _, f := range b.files {
			all = all && exists(root, path.Join(dir, f))
		}
		if all {
			return b.what
		}
	}
	server := path.Join(dir, "server")
	if !isDir(root, server) {
		return ""
	}
	found, script, pages, n := "", "", false, 0
	fs.WalkDir(root.FS(), server, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if n++; n > maxOutputWalk {
			return errStopWalk
		}
		switch {
		case d.IsDir():
		case strings.HasSuffix(p, ".js.map") || strings.HasSuffix(p, ".mjs.map"):
			found = "server code with source maps (" + strings.TrimPrefix(p, dir+"/") + ")"
			return errStopWalk
		case strings.HasSuffix(p, ".html"):
			pages = true
		case script == "" && (strings.HasSuffix(p, ".js") || strings.HasSuffix(p, ".mjs") || strings.HasSuffix(p, ".cjs")):
			script = strings.TrimPrefix(p, dir+"/")
		}
		return nil
	})
	if found == "" && script != "" && !pages {
		found = "server code (" + script + ")"
	}
	return found
}
