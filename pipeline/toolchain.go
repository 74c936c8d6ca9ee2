package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"minivercel/toolchain"
)

// buildTools is the Node and package manager one build runs with.
type buildTools struct {
	// path is the build's PATH: the package manager's launchers and the
	// Node's bin directory first.
	path string
	// nodeVersion is recorded on the build so its app runs on the same
	// Node; empty for the system's Node.
	nodeVersion string
	// caFile is npm's cafile, empty for none.
	caFile string
}

// environ returns a build's env with the toolchain's PATH, which wins over
// a project's variable, and npm's cafile as NODE_EXTRA_CA_CERTS, which a
// project's own variable overrides: yarn 2+, bun and build scripts then
// trust what npm trusts (a TLS-inspecting proxy's certificate, say).
// MinimalEnv keeps one entry per name, the last given: a second PATH would
// be ignored by the C library's getenv.
func (t buildTools) environ(home string, env []string) []string {
	var first []string
	if t.caFile != "" {
		first = []string{"NODE_EXTRA_CA_CERTS=" + t.caFile}
	}
	return MinimalEnv(home, append(append(first, env...), "PATH="+t.path)...)
}

// maxToolchainFile bounds the project files read to choose versions
// (.nvmrc, package.json, the head of a lockfile).
const maxToolchainFile = 1 << 20

// yarnFrozen is the install Detect plans for every yarn.lock; yarn 2 and
// later spell it --immutable.
var yarnFrozen = []string{"yarn", "install", "--frozen-lockfile"}

// prepareTools chooses, fetches and reports the Node and the package
// manager of the checkout in src, and adjusts plan's install for yarn 2+.
//
// The Node version comes from the first of .node-version, .nvmrc and
// package.json's engines.node; without any, the system's Node runs. The
// package manager is the lockfile's (plan.PackageManager, from Detect):
// pnpm, yarn and bun are fetched at the version package.json's
// packageManager field names when it names that manager, else at a version
// that reads the lockfile (pnpm by its lockfileVersion, yarn 1 or 4 by the
// lockfile's format, the newest bun 1). npm is the system's, run by the
// chosen Node. functions says the build has api/ functions, which run on
// that Node even beside a static site.
func (q *Queue) prepareTools(ctx context.Context, src string, plan *Plan, functions bool, out *buildLog) (buildTools, error) {
	tools := buildTools{path: BuildPATH()}
	if len(plan.Install) == 0 && len(plan.Build) == 0 && plan.Start == "" && !functions {
		return tools, nil // nothing runs: a static site needs no Node
	}
	root, err := os.OpenRoot(src)
	if err != nil {
		return tools, fmt.Errorf("choose node: %w", err)
	}
	defer root.Close()
	pkg, pkgData, err := readToolchainFields(root)
	if err != nil {
		return tools, err
	}
	nodeWant, err := nodeRequest(root, pkg, pkgData)
	if err != nil {
		return tools, err
	}
	pm := plan.PackageManager
	if nodeWant == nil && pm == "" {
		return tools, nil // not a Node project
	}
	store := q.cfg.Toolchains
	if store == nil {
		if nodeWant != nil || (pm != "" && pm != "npm") {
			return tools, errors.New("this server has no toolchain store: only the system's Node and npm can run")
		}
		return tools, nil
	}
	tools.caFile = store.CAFile()
	var node toolchain.Node
	if nodeWant != nil {
		node, err = store.ResolveNode(ctx, *nodeWant, out.detail)
	} else {
		node, err = store.SystemNode(ctx)
	}
	if err != nil {
		return tools, err
	}
	out.detail(describeNode(node, nodeWant))
	var nodeBin string
	if !node.System {
		nodeBin, tools.nodeVersion = node.BinDir, node.Version.String()
	} else if nodeWant != nil {
		// The project asked for a Node and the system's has the version
		// chosen: that exact version is recorded, so that the app keeps
		// running on it after the system's Node is upgraded (the edge then
		// fetches it), as on any other machine.
		tools.nodeVersion = node.Version.String()
	}
	var toolBin string
	if pm != "" && pm != "npm" {
		want, hash, berry, note, err := toolRequest(root, pm, pkg, pkgData)
		if err != nil {
			return tools, err
		}
		if note != "" {
			out.detail(note)
		}
		tool, err := store.ResolveTool(ctx, pm, want, hash, out.detail)
		if err != nil {
			return tools, err
		}
		out.detail(fmt.Sprintf("%s %s (from %s), %s", pm, tool.Version, want, fetchedOrCached(tool.Fetched, tool.Offline)))
		toolBin = tool.BinDir
		if (berry || tool.Version.Major >= 2) && pm == "yarn" && slices.Equal(plan.Install, yarnFrozen) {
			plan.Install = []string{"yarn", "install", "--immutable"}
		}
	}
	tools.path = BuildPATH(toolBin, nodeBin)
	return tools, nil
}

func fetchedOrCached(fetched, offline bool) string {
	switch {
	case fetched:
		return "fetched"
	case offline:
		return "cached (the registry did not answer: the newest matching version on this machine)"
	}
	return "cached"
}

// describeNode is the push log's line about the Node that runs.
func describeNode(n toolchain.Node, want *toolchain.Want) string {
	switch {
	case n.System && want == nil:
		return fmt.Sprintf("Node %s (system)", n.Version)
	case n.System:
		return fmt.Sprintf("Node %s (system, satisfies %s)", n.Version, want)
	}
	return fmt.Sprintf("Node %s (from %s), %s", n.Version, want, fetchedOrCached(n.Fetched, n.Offline))
}

// toolchainFields is the part of package.json that chooses versions.
type toolchainFields struct {
	Engines        map[string]json.RawMessage `json:"engines"`
	PackageManager json.RawMessage            `json:"packageManager"`
}

// readToolchainFields reads package.json's engines and packageManager;
// a project without package.json has neither. Detect has already refused a
// malformed package.json.
func readToolchainFields(root *os.Root) (toolchainFields, []byte, error) {
	var f toolchainFields
	data, err := readSmall(root, "package.json")
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil, nil
	}
	if err != nil {
		return f, nil, err
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return f, nil, fmt.Errorf("package.json: %w", err)
	}
	return f, data, nil
}

// readSmall reads a project file of at most maxToolchainFile bytes.
func readSmall(root *os.Root, name string) ([]byte, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxToolchainFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(data) > maxToolchainFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, maxToolchainFile)
	}
	return data, nil
}

// nodeRequest returns the project's Node request: the first of
// .node-version, .nvmrc (their first line that is not empty or a #
// comment) and package.json's engines.node; nil when there is none. A
// request that cannot be read is an error naming the file and line.
func nodeRequest(root *os.Root, pkg toolchainFields, pkgData []byte) (*toolchain.Want, error) {
	for _, name := range []string{".node-version", ".nvmrc"} {
		data, err := readSmall(root, name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for line := 1; sc.Scan(); line++ {
			spec, _, _ := strings.Cut(sc.Text(), "#")
			spec = strings.TrimSpace(spec)
			if spec == "" {
				continue
			}
			if err := toolchain.CheckNodeSpec(spec); err != nil {
				return nil, fmt.Errorf("%s: line %d: %q is not a Node version or range: %w", name, line, spec, err)
			}
			return &toolchain.Want{Spec: spec, Source: name}, nil
		}
	}
	raw, ok := pkg.Engines["node"]
	if !ok {
		return nil, nil
	}
	var spec string
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, fmt.Errorf("package.json: line %d: engines.node is not a string", jsonLine(pkgData, raw))
	}
	if err := toolchain.CheckNodeSpec(spec); err != nil {
		return nil, fmt.Errorf("package.json: line %d: engines.node %q is not a Node version or range: %w", jsonLine(pkgData, raw), spec, err)
	}
	return &toolchain.Want{Spec: spec, Source: "package.json engines.node"}, nil
}

// jsonLine is the 1-based line where raw (a value taken from data) first
// appears, or 1.
func jsonLine(data, raw []byte) int {
	i := bytes.Index(data, raw)
	if i < 0 {
		return 1
	}
	return bytes.Count(data[:i], []byte("\n")) + 1
}

// toolRequest returns the version request for package manager pm: the
// packageManager field's when it names pm (with its hash), else one that
// reads the project's lockfile. berry reports a yarn 2+ lockfile; note is
// a line for the push log when packageManager names another manager.
func toolRequest(root *os.Root, pm string, pkg toolchainFields, pkgData []byte) (want toolchain.Want, hash string, berry bool, note string, err error) {
	if pm == "yarn" {
		head, err := readHead(root, "yarn.lock")
		if err != nil {
			return want, "", false, "", err
		}
		berry = bytes.Contains(head, []byte("\n__metadata:")) || bytes.HasPrefix(head, []byte("__metadata:"))
	}
	if len(pkg.PackageManager) > 0 {
		var field string
		line := jsonLine(pkgData, pkg.PackageManager)
		if json.Unmarshal(pkg.PackageManager, &field) != nil {
			return want, "", false, "", fmt.Errorf("package.json: line %d: packageManager is not a string", line)
		}
		name, version, ok := strings.Cut(field, "@")
		version, hash, _ = strings.Cut(version, "+")
		if !ok || name == "" || version == "" {
			return want, "", false, "", fmt.Errorf("package.json: line %d: packageManager %q: want <name>@<version>, such as pnpm@10.20.0", line, field)
		}
		if name == pm {
			if _, err := toolchain.ParseRange(version); err != nil {
				return want, "", false, "", fmt.Errorf("package.json: line %d: packageManager %q: %w", line, field, err)
			}
			return toolchain.Want{Spec: version, Source: "package.json packageManager"}, hash, berry, "", nil
		}
		note = fmt.Sprintf("package.json's packageManager names %s, but the lockfile is %s's: installing with %s", name, pm, pm)
	}
	switch {
	case pm == "pnpm":
		want, err = pnpmForLockfile(root)
	case pm == "yarn" && berry:
		want = toolchain.Want{Spec: "4", Source: "yarn.lock of yarn 2 or later"}
	case pm == "yarn":
		want = toolchain.Want{Spec: "1", Source: "yarn.lock of yarn 1"}
	default:
		want = toolchain.Want{Spec: "1", Source: pm + "'s lockfile"}
	}
	return want, "", berry, note, err
}

// readHead reads the first 4 KiB of a file: where lockfiles say their
// format.
func readHead(root *os.Root, name string) ([]byte, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	defer f.Close()
	head := make([]byte, 4096)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return head[:n], nil
}

// pnpmForLockfile picks the pnpm major that writes the lockfile's
// lockfileVersion: 9.0 is pnpm 9 and 10 (10 is taken: pnpm 11 and later
// need Node 22), 6.x pnpm 8, 5.4 pnpm 7, 5.3 pnpm 6.
func pnpmForLockfile(root *os.Root) (toolchain.Want, error) {
	head, err := readHead(root, "pnpm-lock.yaml")
	if err != nil {
		return toolchain.Want{}, err
	}
	lv, line := "", 0
	for i, l := range strings.Split(string(head), "\n") {
		if v, ok := strings.CutPrefix(l, "lockfileVersion:"); ok {
			lv, line = strings.Trim(strings.TrimSpace(v), `'"`), i+1
			break
		}
	}
	if line == 0 {
		return toolchain.Want{}, errors.New("pnpm-lock.yaml: no lockfileVersion in its first lines")
	}
	f, err := strconv.ParseFloat(lv, 64)
	if err != nil {
		return toolchain.Want{}, fmt.Errorf("pnpm-lock.yaml: line %d: lockfileVersion %q is not a number", line, lv)
	}
	major := "10"
	switch {
	case f < 5.4:
		major = "6"
	case f < 6:
		major = "7"
	case f < 7:
		major = "8"
	}
	return toolchain.Want{Spec: major, Source: fmt.Sprintf("pnpm-lock.yaml lockfileVersion %s", lv)}, nil
}
