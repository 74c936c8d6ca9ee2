package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultMaxCacheEntryBytes bounds one kept cache entry (a branch's
// node_modules, or its framework caches together): a bigger one is not kept.
const DefaultMaxCacheEntryBytes = 2 << 30

// maxCacheSlots is how many branches of a project keep caches of each kind;
// past it the oldest goes (the production branch's is kept first).
const maxCacheSlots = 4

// The kinds of per-branch cache entries under <CacheDir>/<project id>.
const (
	modulesCache    = "modules"    // <slot>/key.json and <slot>/node_modules
	frameworksCache = "frameworks" // <slot>/<each frameworkCaches path>
)

// frameworkCaches are the directories, relative to the project root, that
// frameworks keep between builds to build faster: Next's compiler cache,
// Vite's pre-bundled dependencies, Astro's and SvelteKit's generated files
// (SvelteKit regenerates .svelte-kit on every build: keeping it is harmless).
var frameworkCaches = []string{".next/cache", "node_modules/.vite", ".astro", ".svelte-kit"}

// depsKey is what an installed node_modules depends on: the same key, the
// same tree. It is kept as JSON beside the tree, so that a miss can say
// what changed.
type depsKey struct {
	Lockfile  string `json:"lockfile"`
	LockSHA   string `json:"lockfile_sha256"`
	PM        string `json:"package_manager"`
	PMVersion string `json:"package_manager_version"`
	Node      string `json:"node"`
	Install   string `json:"install"`
	Platform  string `json:"platform"`
	// Files are the sha256 of each package manager configuration file
	// (.npmrc, .yarnrc, .yarnrc.yml, pnpm-workspace.yaml) and each file
	// under patches/ (patch-package), by name.
	Files map[string]string `json:"files,omitempty"`
	// Env are the sha256 of the values of the build's variables that
	// configure a package manager (NPM_CONFIG_*, YARN_*, PNPM_*), by name:
	// never a value itself.
	Env map[string]string `json:"env,omitempty"`
}

// changed says why node_modules installed under old does not fit k, or ""
// when it does.
func (k depsKey) changed(old depsKey) string {
	switch {
	case k.Lockfile != old.Lockfile:
		return fmt.Sprintf("the lockfile is now %s (was %s)", k.Lockfile, old.Lockfile)
	case k.LockSHA != old.LockSHA:
		return k.Lockfile + " changed"
	case k.PM != old.PM || k.PMVersion != old.PMVersion:
		return fmt.Sprintf("%s %s, was %s %s", k.PM, k.PMVersion, old.PM, old.PMVersion)
	case k.Node != old.Node:
		return fmt.Sprintf("Node %s, was %s", k.Node, old.Node)
	case k.Install != old.Install:
		return "the install command changed"
	case k.Platform != old.Platform:
		return "the platform changed"
	}
	if name := mapChange(k.Files, old.Files); name != "" {
		return name + " changed"
	}
	if name := mapChange(k.Env, old.Env); name != "" {
		return "the variable " + name + " changed"
	}
	return ""
}

// mapChange returns the first name, in order, whose hash differs between
// a and b (one that is in only one of them too), or "".
func mapChange(a, b map[string]string) string {
	var names []string
	for n, v := range a {
		if w, ok := b[n]; !ok || w != v {
			names = append(names, n)
		}
	}
	for n := range b {
		if _, ok := a[n]; !ok {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return ""
	}
	return slices.Min(names)
}

// buildCache is what one build takes from its project's per-branch caches
// and gives back. The entries live under <CacheDir>/<project id>, beside the
// HOME, so that a project's build only ever reads what its own builds left
// (see restoreCache), and go with the project. Entries move by rename into
// the workspace and back; one a build took is the build's until it ends, so
// that a build failing after a restore leaves no entry rather than a tree
// its failure may have spoiled, and a failed build never saves.
type buildCache struct {
	q       *Queue
	project int64
	build   int64
	// slot names this branch's entries, prod the production branch's (the
	// same for a production build).
	slot, prod string
	// off says why the cache is not used at all by this build, or "".
	off string
	// key is node_modules' key; nil when node_modules is not cached.
	key *depsKey
	// hit says node_modules came from the cache: the install is skipped.
	hit bool
	// staged are the entries saved by this build, each a directory of
	// its kind's, put in place when the build succeeds (commit).
	staged map[string]string
}

// noCacheUnisolated is why builds without bubblewrap use no cache: the
// cache code runs as the server (root) on paths inside the checkout,
// which the build user owns; without bubblewrap's PID namespace, a
// process of the build user could outlive its command and swap such a
// path for a symlink between a check and its use.
const noCacheUnisolated = "the build sandbox (bubblewrap) is not available here"

// newBuildCache returns the cache of one build of a project on branch;
// production says branch is the production branch. The cache is used only
// when sb is isolated (see noCacheUnisolated).
func (q *Queue) newBuildCache(projectID, buildID int64, branch string, production bool, sb Sandbox) *buildCache {
	c := &buildCache{q: q, project: projectID, build: buildID, slot: "production", prod: "production", staged: map[string]string{}}
	if !production {
		// The name is hashed: a branch name has slashes and any length.
		sum := sha256.Sum256([]byte(branch))
		c.slot = "branch-" + hex.EncodeToString(sum[:8])
	}
	if !sb.Isolated() {
		c.off = noCacheUnisolated
	}
	return c
}

func (c *buildCache) enabled() bool { return c.q.cfg.CacheDir != "" && c.off == "" }

func (c *buildCache) dir(kind, slot string) string {
	return filepath.Join(c.q.cfg.CacheDir, strconv.FormatInt(c.project, 10), kind, slot)
}

// lock serialises, between the builds of the project on this server, the
// reading of an entry's key with the taking of the entry, and the putting
// in place of entries: a build never takes a tree another build put in
// place after it read the key. It returns the unlock.
func (c *buildCache) lock() func() {
	m, _ := c.q.cacheLocks.LoadOrStore(c.project, new(sync.Mutex))
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// restoreModules decides whether the project's cached node_modules fits
// this install (see depsKey), says so in the log, and on a hit moves it
// into src and hands it to the build user. The branch's own entry is taken;
// a branch without one gets a copy of the production branch's, which stays
// the production branch's. Without a lockfile nothing is cached: the same
// package.json may install different trees; nor when the install does more
// than the key covers (see uncacheable).
func (c *buildCache) restoreModules(ctx context.Context, sb Sandbox, src string, env []string, plan Plan, out *buildLog) error {
	if c.q.cfg.CacheDir != "" && c.off != "" {
		out.detail("Dependencies: no cache: " + c.off)
		return nil
	}
	if !c.enabled() || len(plan.Install) == 0 || plan.PackageManager == "" {
		return nil
	}
	if why := uncacheable(src); why != "" {
		out.detail("Dependencies: no cache: " + why)
		return nil
	}
	key, err := c.depsKey(ctx, sb, src, env, plan)
	if err != nil {
		out.detail(fmt.Sprintf("Dependencies: not cached: %v", err))
		return nil
	}
	if key == nil {
		out.detail("Dependencies: no lockfile: install runs every time")
		return nil
	}
	if key.PM == "yarn" && !strings.HasPrefix(key.PMVersion, "1.") && !yarnNodeModules(src) {
		out.detail("Dependencies: no cache: Yarn " + key.PMVersion + " installs with Plug'n'Play (no nodeLinker: node-modules in .yarnrc.yml)")
		return nil
	}
	c.key = key
	reason := "no cache yet"
	for _, slot := range slices.Compact([]string{c.slot, c.prod}) {
		took, why, err := c.takeModules(slot, *key, src)
		if err != nil {
			c.q.log.Warn("restore node_modules", "project", c.project, "err", err)
			continue
		}
		if why != "" && (slot == c.slot || reason == "no cache yet") {
			reason = why
		}
		if !took {
			continue
		}
		if err := sb.Prepare(filepath.Join(src, "node_modules")); err != nil {
			return err
		}
		c.hit = true
		note := ""
		if slot != c.slot {
			note = ", from the production branch's build"
		}
		out.detail(fmt.Sprintf("Dependencies: cache hit (%s unchanged, %s %s, Node %s%s): install skipped",
			key.Lockfile, key.PM, key.PMVersion, key.Node, note))
		return nil
	}
	out.detail("Dependencies: cache miss: " + reason)
	return nil
}

// takeModules puts slot's cached node_modules in place in src when its key
// is key. The branch's own entry is taken whole (its key and its tree move
// together, by one rename, out of other builds' reach, and the key is read
// again from what was taken); another branch's is copied, and stays. The
// checkout's own node_modules (a committed one) is replaced. It reports
// false with why when the entry is there but does not fit, and false with
// "" when there is none.
func (c *buildCache) takeModules(slot string, key depsKey, src string) (took bool, why string, err error) {
	unlock := c.lock()
	defer unlock()
	entry := c.dir(modulesCache, slot)
	old, ok := readDepsKey(entry)
	if !ok {
		return false, "", nil
	}
	if why := key.changed(old); why != "" {
		return false, why, nil
	}
	if slot != c.slot {
		return c.putModules(filepath.Join(entry, "node_modules"), true, src)
	}
	taken := filepath.Join(filepath.Dir(entry), fmt.Sprintf(".take-%d", c.build))
	_ = os.RemoveAll(taken)
	if err := os.Rename(entry, taken); err != nil {
		return false, "", err
	}
	// The entry is this build's now, whatever happens.
	defer os.RemoveAll(taken)
	if old, ok := readDepsKey(taken); !ok || key.changed(old) != "" {
		return false, "the cached tree changed while it was taken", nil
	}
	return c.putModules(filepath.Join(taken, "node_modules"), false, src)
}

// putModules moves (or with copy copies) the tree from to src/node_modules.
func (c *buildCache) putModules(from string, copy bool, src string) (bool, string, error) {
	if fi, err := os.Lstat(from); err != nil || !fi.IsDir() {
		return false, "", nil
	}
	root, err := openSrc(src)
	if err != nil {
		return false, "", err
	}
	defer root.Close()
	if err := root.RemoveAll("node_modules"); err != nil {
		return false, "", err
	}
	if copy {
		tmp := filepath.Join(filepath.Dir(filepath.Dir(from)), fmt.Sprintf(".copy-%d", c.build))
		_ = os.RemoveAll(tmp)
		if err := cpTree(from, tmp, false); err != nil {
			return false, "", err
		}
		defer os.RemoveAll(tmp)
		from = tmp
	}
	if err := renameInto(from, root, "node_modules"); err != nil {
		return false, "", err
	}
	return true, "", nil
}

// openSrc opens the checkout src as a root, through its workspace (which
// the server made, in a directory only the server writes): src itself is
// the build user's, who could have made it a symlink to anywhere.
func openSrc(src string) (*os.Root, error) {
	ws, err := os.OpenRoot(filepath.Dir(src))
	if err != nil {
		return nil, err
	}
	defer ws.Close()
	return ws.OpenRoot(filepath.Base(src))
}

// renameInto renames from, a path in the cache (only the server writes
// there), to rel inside root, relative to the directory root opened (no
// path the build user could change is resolved outside root, and a symlink
// at rel itself is replaced, never followed).
func renameInto(from string, root *os.Root, rel string) error {
	dir, err := root.Open(filepath.Dir(rel))
	if err != nil {
		return err
	}
	defer dir.Close()
	if err := syscall.Renameat(unixCwd, from, int(dir.Fd()), filepath.Base(rel)); err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: rel, Err: err}
	}
	return nil
}

// renameOut renames rel inside root to to, a path in the cache (see
// renameInto).
func renameOut(root *os.Root, rel, to string) error {
	dir, err := root.Open(filepath.Dir(rel))
	if err != nil {
		return err
	}
	defer dir.Close()
	if err := syscall.Renameat(int(dir.Fd()), filepath.Base(rel), unixCwd, to); err != nil {
		return &os.LinkError{Op: "rename", Old: rel, New: to, Err: err}
	}
	return nil
}

// unixCwd is AT_FDCWD: an absolute path is used as it is.
const unixCwd = -100

// lifecycleScripts are the root package.json scripts package managers run
// during an install: their effects are outside node_modules, or depend on
// more than the lockfile.
var lifecycleScripts = []string{"preinstall", "install", "postinstall", "prepare"}

// uncacheable says why node_modules of the checkout in src is not to be
// cached, or "": an install of workspaces links packages whose sources are
// the checkout's, Plug'n'Play keeps no node_modules, and install scripts
// of the root package do what no key covers.
func uncacheable(src string) string {
	root, err := openSrc(src)
	if err != nil {
		return fmt.Sprintf("cannot read the checkout: %v", err)
	}
	defer root.Close()
	if _, err := root.Lstat("pnpm-workspace.yaml"); err == nil {
		return "the project has pnpm workspaces (pnpm-workspace.yaml)"
	}
	if _, err := root.Lstat(".pnp.cjs"); err == nil {
		return "the project uses Yarn Plug'n'Play (.pnp.cjs)"
	}
	pkg, _, err := readPackageJSON(root)
	if err != nil {
		return fmt.Sprintf("cannot read package.json: %v", err)
	}
	if w := strings.TrimSpace(string(pkg.Workspaces)); w != "" && w != "null" && w != "[]" && w != "{}" {
		return "the project has workspaces (package.json workspaces)"
	}
	for _, s := range lifecycleScripts {
		if pkg.script(s) != "" {
			return fmt.Sprintf("package.json has a %s script, which the install runs", s)
		}
	}
	return ""
}

// nodeLinkerRe finds Yarn's setting that installs a node_modules tree.
var nodeLinkerRe = regexp.MustCompile(`(?m)^\s*nodeLinker\s*:\s*["']?node-modules["']?\s*(#.*)?$`)

// yarnNodeModules reports whether .yarnrc.yml in src makes Yarn 2+ install
// a node_modules tree rather than Plug'n'Play.
func yarnNodeModules(src string) bool {
	root, err := openSrc(src)
	if err != nil {
		return false
	}
	defer root.Close()
	data, err := root.ReadFile(".yarnrc.yml")
	return err == nil && nodeLinkerRe.Match(data)
}

// keyFiles are the package managers' configuration files of the checkout
// that change what an install does.
var keyFiles = []string{".npmrc", ".yarnrc", ".yarnrc.yml", "pnpm-workspace.yaml"}

// keyEnvPrefixes start the names of the variables that configure a package
// manager (compared in upper case).
var keyEnvPrefixes = []string{"NPM_CONFIG_", "YARN_", "PNPM_"}

// configHashes returns the sha256 of each of keyFiles in root and of each
// file under patches/, by name.
func configHashes(root *os.Root) (map[string]string, error) {
	files := map[string]string{}
	add := func(name string) error {
		data, err := root.ReadFile(name)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		sum := sha256.Sum256(data)
		files[name] = hex.EncodeToString(sum[:])
		return nil
	}
	for _, f := range keyFiles {
		if err := add(f); err != nil {
			return nil, err
		}
	}
	if fi, err := root.Lstat("patches"); err == nil && fi.IsDir() {
		err := fs.WalkDir(root.FS(), "patches", func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				return add(p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read patches: %w", err)
		}
	}
	return files, nil
}

// envHashes returns the sha256 of the value of each variable of env that
// configures a package manager, by name.
func envHashes(env []string) map[string]string {
	vars := map[string]string{}
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		up := strings.ToUpper(name)
		if slices.ContainsFunc(keyEnvPrefixes, func(p string) bool { return strings.HasPrefix(up, p) }) {
			sum := sha256.Sum256([]byte(value))
			vars[name] = hex.EncodeToString(sum[:])
		}
	}
	return vars
}

// depsKey returns the key of plan's install in src, or nil when the
// project has no lockfile. The versions are asked of the tools themselves,
// in the sandbox with the build's own PATH: what the install would run.
func (c *buildCache) depsKey(ctx context.Context, sb Sandbox, src string, env []string, plan Plan) (*depsKey, error) {
	root, err := openSrc(src)
	if err != nil {
		return nil, fmt.Errorf("read the lockfile: %w", err)
	}
	defer root.Close()
	for _, lf := range lockfiles {
		f, err := root.Open(lf.file)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", lf.file, err)
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", lf.file, err)
		}
		files, err := configHashes(root)
		if err != nil {
			return nil, err
		}
		node, err := toolVersion(ctx, sb, src, env, "node")
		if err != nil {
			return nil, err
		}
		pmv, err := toolVersion(ctx, sb, src, env, plan.PackageManager)
		if err != nil {
			return nil, err
		}
		return &depsKey{
			Lockfile: lf.file, LockSHA: hex.EncodeToString(h.Sum(nil)),
			PM: plan.PackageManager, PMVersion: pmv, Node: node,
			Install: strings.Join(plan.Install, "\x00"), Platform: runtime.GOOS + "/" + runtime.GOARCH,
			Files: files, Env: envHashes(env),
		}, nil
	}
	return nil, nil
}

// toolVersion runs `name --version` as a build command would and returns
// the version it prints, without a leading v.
func toolVersion(ctx context.Context, sb Sandbox, dir string, env []string, name string) (string, error) {
	var buf bytes.Buffer
	if err := sb.Run(ctx, dir, []string{name, "--version"}, env, &buf); err != nil {
		return "", fmt.Errorf("ask %s its version: %w", name, err)
	}
	v := strings.TrimPrefix(strings.TrimSpace(buf.String()), "v")
	if v == "" || len(v) > 64 || strings.ContainsAny(v, " \n") {
		return "", fmt.Errorf("ask %s its version: unexpected answer %q", name, buf.String())
	}
	return v, nil
}

// readDepsKey reads an entry's key; false when there is none.
func readDepsKey(entry string) (depsKey, bool) {
	var k depsKey
	data, err := os.ReadFile(filepath.Join(entry, "key.json"))
	if err != nil || json.Unmarshal(data, &k) != nil {
		return k, false
	}
	return k, true
}

// restoreFrameworks moves the branch's framework caches into src before
// the build runs (after the install, which would remove node_modules/.vite)
// and hands them to the build user. Only real directories on the way are
// used: the checkout or the install may have put a symlink at .next.
func (c *buildCache) restoreFrameworks(sb Sandbox, src string) ([]string, error) {
	if !c.enabled() {
		return nil, nil
	}
	entry := c.dir(frameworksCache, c.slot)
	defer os.RemoveAll(entry) // the build's now, whatever it does
	if _, err := os.Lstat(entry); err != nil {
		return nil, nil
	}
	root, err := openSrc(src)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	var restored []string
	for _, rel := range frameworkCaches {
		from := filepath.Join(entry, rel)
		if fi, err := os.Lstat(from); err != nil || !fi.IsDir() {
			continue
		}
		top, ok := makeParents(root, rel)
		if !ok {
			continue
		}
		if err := root.RemoveAll(rel); err != nil {
			return restored, err
		}
		if err := renameInto(from, root, rel); err != nil {
			return restored, err
		}
		if err := sb.Prepare(filepath.Join(src, top)); err != nil {
			return restored, err
		}
		restored = append(restored, rel)
	}
	return restored, nil
}

// makeParents makes the directories of rel's parents in root that are
// missing, and reports false when one is there but is not a directory (a
// symlink is never followed). top is the first directory it made, or rel
// itself: what is then handed to the build user.
func makeParents(root *os.Root, rel string) (top string, ok bool) {
	parts := strings.Split(rel, "/")
	p := ""
	for _, part := range parts[:len(parts)-1] {
		p = path.Join(p, part)
		fi, err := root.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := root.Mkdir(p, 0o755); err != nil {
				return "", false
			}
			if top == "" {
				top = p
			}
		case err != nil || !fi.IsDir():
			return "", false
		}
	}
	if top == "" {
		top = rel
	}
	return top, true
}

// realDirIn reports whether rel is a directory inside root reached through
// directories only, no symlink.
func realDirIn(root *os.Root, rel string) bool {
	p := ""
	for part := range strings.SplitSeq(rel, "/") {
		p = path.Join(p, part)
		if fi, err := root.Lstat(p); err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}

// save stages what a successful build leaves for the next one: its
// framework caches (moved out of src, so that they are not packed), then
// node_modules, moved, or copied as hard links when keep says the artifact
// needs it (a server app, an output directory of "."). It runs once every
// build command has ended, so nothing of the build's changes src
// meanwhile. Entries bigger than the size bound are dropped; commit puts
// the rest in place once the whole build succeeded.
func (c *buildCache) save(src string, keep bool, out *buildLog) {
	if !c.enabled() {
		return
	}
	root, err := openSrc(src)
	if err != nil {
		c.q.log.Warn("save build cache", "project", c.project, "err", err)
		return
	}
	defer root.Close()
	limit := c.q.cfg.MaxCacheEntryBytes
	stage := func(kind string) (string, error) {
		dir := filepath.Join(c.q.cfg.CacheDir, strconv.FormatInt(c.project, 10), kind, fmt.Sprintf(".build-%d", c.build))
		_ = os.RemoveAll(dir)
		return dir, os.MkdirAll(dir, 0o700)
	}
	fw, err := stage(frameworksCache)
	if err != nil {
		c.q.log.Warn("save framework caches", "project", c.project, "err", err)
		return
	}
	var saved []string
	for _, rel := range frameworkCaches {
		if !realDirIn(root, rel) {
			continue
		}
		to := filepath.Join(fw, rel)
		if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
			continue
		}
		if err := renameOut(root, rel, to); err == nil {
			saved = append(saved, rel)
		}
	}
	c.keepIf(frameworksCache, fw, len(saved) > 0, limit, "Framework cache ("+strings.Join(saved, ", ")+")", out)

	if c.key == nil || !realDirIn(root, "node_modules") {
		return
	}
	mods, err := stage(modulesCache)
	if err != nil {
		c.q.log.Warn("save node_modules", "project", c.project, "err", err)
		return
	}
	to := filepath.Join(mods, "node_modules")
	if keep {
		// Moved out, copied back as hard links: the copy reads a tree
		// in the cache, where no path is the build user's.
		if err = renameOut(root, "node_modules", to); err == nil {
			back := filepath.Join(mods, "back")
			if err = cpTree(to, back, true); err == nil {
				err = renameInto(back, root, "node_modules")
			}
			if err == nil {
				err = unshareMetadata(to)
			}
		}
	} else {
		err = renameOut(root, "node_modules", to)
	}
	if err == nil {
		err = writeDepsKey(mods, *c.key)
	}
	if err != nil {
		c.q.log.Warn("save node_modules", "project", c.project, "err", err)
		_ = os.RemoveAll(mods)
		return
	}
	c.keepIf(modulesCache, mods, true, limit, "Dependencies (node_modules)", out)
}

// writeDepsKey writes the key of the node_modules in entry.
func writeDepsKey(entry string, key depsKey) error {
	data, err := json.Marshal(key)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(entry, "key.json"), data, 0o600)
}

// keepIf stages dir as this build's entry of kind when ok and it fits in
// limit bytes, and removes it otherwise.
func (c *buildCache) keepIf(kind, dir string, ok bool, limit int64, what string, out *buildLog) {
	if !ok {
		_ = os.RemoveAll(dir)
		return
	}
	if used := diskUse(dir, limit); used > limit {
		out.detail(fmt.Sprintf("%s: not cached: more than %s", what, humanBytes(limit)))
		_ = os.RemoveAll(dir)
		return
	}
	c.staged[kind] = dir
}

// commit puts the staged entries in place of the branch's, then bounds the
// project's entries of each kind to maxCacheSlots, the oldest going first
// and the production branch's last.
func (c *buildCache) commit() {
	if len(c.staged) == 0 {
		return
	}
	unlock := c.lock()
	defer unlock()
	for kind, dir := range c.staged {
		dst := c.dir(kind, c.slot)
		_ = os.RemoveAll(dst)
		now := time.Now()
		_ = os.Chtimes(dir, now, now)
		if err := os.Rename(dir, dst); err != nil {
			c.q.log.Warn("save build cache", "project", c.project, "kind", kind, "err", err)
			_ = os.RemoveAll(dir)
			continue
		}
		evictSlots(filepath.Dir(dst), maxCacheSlots)
	}
	c.staged = map[string]string{}
}

// backup is the node_modules this build staged as a hard-linked copy,
// or "".
func (c *buildCache) backup() string {
	dir, ok := c.staged[modulesCache]
	if !ok {
		return ""
	}
	return filepath.Join(dir, "node_modules")
}

// discard removes the staged entries of a build that did not succeed.
func (c *buildCache) discard() {
	for _, dir := range c.staged {
		_ = os.RemoveAll(dir)
	}
	c.staged = map[string]string{}
}

// evictSlots removes the oldest entries of dir past n, the production
// branch's last. Entries being staged (".build-…") are not counted.
func evictSlots(dir string, n int) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	type slot struct {
		name string
		mod  time.Time
	}
	var slots []slot
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") || !e.IsDir() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		mod := fi.ModTime()
		if e.Name() == "production" {
			mod = time.Unix(math.MaxInt32, 0)
		}
		slots = append(slots, slot{e.Name(), mod})
	}
	slices.SortFunc(slots, func(a, b slot) int { return b.mod.Compare(a.mod) })
	for _, s := range slots[min(n, len(slots)):] {
		_ = os.RemoveAll(filepath.Join(dir, s.name))
	}
}

// copyTree copies the directory tree from to to, which must not exist,
// keeping owners, modes and symlinks as they are (never followed); with
// link, files are hard links to from's: no data is copied. cp does it,
// which runs as the server on trees only builds of the project wrote.
func cpTree(from, to string, link bool) error {
	args := []string{"-a", "--no-target-directory"}
	if link {
		args = append(args, "-l")
	}
	out, err := exec.Command("cp", append(args, "--", from, to)...).CombinedOutput()
	if err != nil {
		_ = os.RemoveAll(to)
		return fmt.Errorf("copy %s: %w: %s", from, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// unshareMetadata replaces the hard links of the files at the top of a
// node_modules copy, and of its .pnpm, with copies of their own: package
// managers keep their record of the tree there (.package-lock.json,
// .modules.yaml) and may rewrite it in place when the prune that follows
// changes the tree, which must not change the cached copy's record.
func unshareMetadata(modules string) error {
	for _, dir := range []string{modules, filepath.Join(modules, ".pnpm")} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if !e.Type().IsRegular() {
				continue
			}
			p := filepath.Join(dir, e.Name())
			tmp := filepath.Join(dir, ".unshare-"+e.Name())
			if err := cpTree(p, tmp, false); err != nil {
				return err
			}
			if err := os.Rename(tmp, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// pruneCommands are the commands that remove devDependencies from an
// installed node_modules, for the package managers where that is known to
// leave a working production tree.
var pruneCommands = map[string][]string{
	"npm":  {"npm", "prune", "--omit=dev"},
	"pnpm": {"pnpm", "prune", "--prod"},
}

// pruneDevDependencies removes devDependencies from a server app's
// node_modules before it is packed, and says in the log how much that
// saved. Only an app that Node itself starts is pruned (see startProgram):
// a start command run by a tool (tsx, ts-node, nest, nodemon) may need it
// from devDependencies. A prune that fails leaves the build as it was: the
// app is packed unpruned, from backup (the hard-linked copy the cache kept)
// when there is one.
func pruneDevDependencies(ctx context.Context, sb Sandbox, src string, env []string, plan Plan, backup string, out *buildLog) {
	if !plan.Server() || plan.OutputDir != "." || len(plan.Install) == 0 {
		return
	}
	root, err := openSrc(src)
	if err != nil {
		return
	}
	defer root.Close()
	if !realDirIn(root, "node_modules") {
		return
	}
	if prog := startProgram(root, plan.Start); !runsNode(prog) {
		if prog == "" {
			prog = "nothing known"
		}
		out.detail("devDependencies kept: the start command runs " + prog)
		return
	}
	argv, ok := pruneCommands[plan.PackageManager]
	if !ok {
		out.detail(fmt.Sprintf("devDependencies: kept (pruning is not done for %s)", plan.PackageManager))
		return
	}
	modules := filepath.Join(src, "node_modules")
	before := diskUse(modules, math.MaxInt64)
	out.heading("Pruning devDependencies: " + strings.Join(argv, " "))
	if err := out.run(ctx, sb, src, argv, env); err != nil {
		if backup == "" {
			out.detail(fmt.Sprintf("Pruning failed (%v): packing node_modules as it is", err))
			return
		}
		out.detail(fmt.Sprintf("Pruning failed (%v): packing node_modules unpruned", err))
		if err := putBack(root, backup); err != nil {
			out.detail(fmt.Sprintf("error: cannot put node_modules back: %v", err))
		}
		return
	}
	after := diskUse(modules, math.MaxInt64)
	out.detail(fmt.Sprintf("devDependencies pruned: node_modules %s → %s (%s saved)", humanBytes(before), humanBytes(after), humanBytes(max(0, before-after))))
}

// putBack replaces root's node_modules with a hard-linked copy of backup.
func putBack(root *os.Root, backup string) error {
	if err := root.RemoveAll("node_modules"); err != nil {
		return err
	}
	tmp := backup + ".back"
	_ = os.RemoveAll(tmp)
	if err := cpTree(backup, tmp, true); err != nil {
		return err
	}
	if err := renameInto(tmp, root, "node_modules"); err != nil {
		_ = os.RemoveAll(tmp)
		return err
	}
	return nil
}

// runScripts are the package manager commands that run a package.json
// script, by the words that name it: "npm start", "npm run X".
var runScripts = map[string]bool{"npm": true, "pnpm": true, "yarn": true, "bun": true}

// startProgram returns the program a start command runs first: its first
// word after VAR=value assignments (and exec, env), and for a package
// manager running a package.json script (npm start, npm run X, pnpm
// start, yarn X) the program of that script, followed a few levels.
func startProgram(root *os.Root, start string) string {
	pkg, _, err := readPackageJSON(root)
	if err != nil {
		pkg = packageJSON{}
	}
	for range 4 {
		words := strings.Fields(start)
		for len(words) > 0 && (strings.Contains(words[0], "=") && !strings.HasPrefix(words[0], "=") || words[0] == "exec" || words[0] == "env") {
			words = words[1:]
		}
		if len(words) == 0 {
			return ""
		}
		if !runScripts[path.Base(words[0])] || len(words) < 2 {
			return words[0]
		}
		name := words[1]
		switch {
		case name == "run" || name == "run-script":
			if len(words) < 3 {
				return words[0]
			}
			name = words[2]
		case name == "start" || path.Base(words[0]) == "yarn" && !strings.HasPrefix(name, "-"):
		default:
			return words[0]
		}
		if start = pkg.script(name); start == "" {
			return words[0]
		}
	}
	return ""
}

// runsNode reports whether prog, a start command's program, is Node: node
// itself, or a script Node runs (a path ending .js, .mjs or .cjs).
func runsNode(prog string) bool {
	if path.Base(prog) == "node" {
		return true
	}
	return strings.HasSuffix(prog, ".js") || strings.HasSuffix(prog, ".mjs") || strings.HasSuffix(prog, ".cjs")
}
