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
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
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
	return ""
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
	// key is node_modules' key; nil when node_modules is not cached.
	key *depsKey
	// hit says node_modules came from the cache: the install is skipped.
	hit bool
	// staged are the entries saved by this build, each a directory of
	// its kind's, put in place when the build succeeds (commit).
	staged map[string]string
}

// newBuildCache returns the cache of one build of a project on branch;
// production says branch is the production branch.
func (q *Queue) newBuildCache(projectID, buildID int64, branch string, production bool) *buildCache {
	c := &buildCache{q: q, project: projectID, build: buildID, slot: "production", prod: "production", staged: map[string]string{}}
	if !production {
		// The name is hashed: a branch name has slashes and any length.
		sum := sha256.Sum256([]byte(branch))
		c.slot = "branch-" + hex.EncodeToString(sum[:8])
	}
	return c
}

func (c *buildCache) enabled() bool { return c.q.cfg.CacheDir != "" }

func (c *buildCache) dir(kind, slot string) string {
	return filepath.Join(c.q.cfg.CacheDir, strconv.FormatInt(c.project, 10), kind, slot)
}

// restoreModules decides whether the project's cached node_modules fits
// this install (see depsKey), says so in the log, and on a hit moves it
// into src and hands it to the build user. The branch's own entry is taken;
// a branch without one gets a copy of the production branch's, which stays
// the production branch's. Without a lockfile nothing is cached: the same
// package.json may install different trees.
func (c *buildCache) restoreModules(ctx context.Context, sb Sandbox, src string, env []string, plan Plan, out *buildLog) error {
	if !c.enabled() || len(plan.Install) == 0 || plan.PackageManager == "" {
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
	c.key = key
	reason := "no cache yet"
	for _, slot := range slices.Compact([]string{c.slot, c.prod}) {
		old, ok := readDepsKey(c.dir(modulesCache, slot))
		if !ok {
			continue
		}
		if why := key.changed(old); why != "" {
			if slot == c.slot || reason == "no cache yet" {
				reason = why
			}
			continue
		}
		from := filepath.Join(c.dir(modulesCache, slot), "node_modules")
		took, err := c.take(from, slot != c.slot, filepath.Join(src, "node_modules"))
		if err != nil {
			c.q.log.Warn("restore node_modules", "project", c.project, "err", err)
			continue
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

// take puts the cached tree from in place at to: a rename, or a copy when
// copy is set (the entry is another branch's, which keeps it). The checkout's
// own to (a committed node_modules) is replaced. It reports false when
// there was nothing to take (another build of the branch took it first).
func (c *buildCache) take(from string, copy bool, to string) (bool, error) {
	if fi, err := os.Lstat(from); err != nil || !fi.IsDir() {
		return false, nil
	}
	if err := os.RemoveAll(to); err != nil {
		return false, err
	}
	if copy {
		return true, cpTree(from, to, false)
	}
	if err := os.Rename(from, to); err != nil {
		return false, err
	}
	// The key goes with the tree: the entry is this build's now.
	_ = os.RemoveAll(filepath.Dir(from))
	return true, nil
}

// depsKey returns the key of plan's install in src, or nil when the
// project has no lockfile. The versions are asked of the tools themselves,
// in the sandbox with the build's own PATH: what the install would run.
func (c *buildCache) depsKey(ctx context.Context, sb Sandbox, src string, env []string, plan Plan) (*depsKey, error) {
	root, err := os.OpenRoot(src)
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
	var restored []string
	for _, rel := range frameworkCaches {
		from := filepath.Join(entry, rel)
		if fi, err := os.Lstat(from); err != nil || !fi.IsDir() {
			continue
		}
		top, ok := makeParents(src, rel)
		if !ok {
			continue
		}
		to := filepath.Join(src, rel)
		if err := os.RemoveAll(to); err != nil {
			return restored, err
		}
		if err := os.Rename(from, to); err != nil {
			return restored, err
		}
		if err := sb.Prepare(top); err != nil {
			return restored, err
		}
		restored = append(restored, rel)
	}
	return restored, nil
}

// makeParents makes the directories of rel's parents in src that are
// missing, and reports false when one is there but is not a directory (a
// symlink is never followed). top is the first directory it made, or rel
// itself: what is then handed to the build user.
func makeParents(src, rel string) (top string, ok bool) {
	parts := strings.Split(rel, "/")
	p := src
	for _, part := range parts[:len(parts)-1] {
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(p, 0o755); err != nil {
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
		top = filepath.Join(src, rel)
	}
	return top, true
}

// realDirIn reports whether rel is a directory inside src reached through
// directories only, no symlink.
func realDirIn(src, rel string) bool {
	p := src
	for part := range strings.SplitSeq(rel, "/") {
		p = filepath.Join(p, part)
		if fi, err := os.Lstat(p); err != nil || !fi.IsDir() {
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
		if !realDirIn(src, rel) {
			continue
		}
		to := filepath.Join(fw, rel)
		if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
			continue
		}
		if err := os.Rename(filepath.Join(src, rel), to); err == nil {
			saved = append(saved, rel)
		}
	}
	c.keepIf(frameworksCache, fw, len(saved) > 0, limit, "Framework cache ("+strings.Join(saved, ", ")+")", out)

	if c.key == nil || !realDirIn(src, "node_modules") {
		return
	}
	mods, err := stage(modulesCache)
	if err != nil {
		c.q.log.Warn("save node_modules", "project", c.project, "err", err)
		return
	}
	from, to := filepath.Join(src, "node_modules"), filepath.Join(mods, "node_modules")
	if keep {
		if err = cpTree(from, to, true); err == nil {
			err = unshareMetadata(to)
		}
	} else {
		err = os.Rename(from, to)
	}
	if err == nil {
		var data []byte
		data, err = json.Marshal(c.key)
		if err == nil {
			err = os.WriteFile(filepath.Join(mods, "key.json"), data, 0o600)
		}
	}
	if err != nil {
		c.q.log.Warn("save node_modules", "project", c.project, "err", err)
		_ = os.RemoveAll(mods)
		return
	}
	c.keepIf(modulesCache, mods, true, limit, "Dependencies (node_modules)", out)
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
// saved. A prune that fails leaves the build as it was: the app is packed
// unpruned, from backup (the hard-linked copy the cache kept) when there is
// one.
func pruneDevDependencies(ctx context.Context, sb Sandbox, src string, env []string, plan Plan, backup string, out *buildLog) {
	if !plan.Server() || plan.OutputDir != "." || len(plan.Install) == 0 || !realDirIn(src, "node_modules") {
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
		if err := os.RemoveAll(modules); err != nil {
			out.detail(fmt.Sprintf("error: cannot put node_modules back: %v", err))
			return
		}
		if err := cpTree(backup, modules, true); err != nil {
			out.detail(fmt.Sprintf("error: cannot put node_modules back: %v", err))
		}
		return
	}
	after := diskUse(modules, math.MaxInt64)
	out.detail(fmt.Sprintf("devDependencies pruned: node_modules %s → %s (%s saved)", humanBytes(before), humanBytes(after), humanBytes(max(0, before-after))))
}
