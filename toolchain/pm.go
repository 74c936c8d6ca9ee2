package toolchain

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Tool is a package manager ready to run.
type Tool struct {
	// Name is "pnpm", "yarn" or "bun".
	Name string
	// Package is the npm package it was unpacked from.
	Package string
	// Version is the exact version.
	Version Version
	// BinDir holds its launchers (pnpm and pnpx; yarn and yarnpkg; bun and
	// bunx); it goes first in PATH. A launcher of a JavaScript tool runs it
	// with the first node in PATH, so the tool runs on the build's Node.
	BinDir string
	// Fetched is true when this call downloaded it.
	Fetched bool
	// Offline is true when the registry could not be asked and this is
	// the newest matching version already in the store.
	Offline bool
}

// toolSource is where the versions of a package manager come from: a
// package, and the versions of it to take.
type toolSource struct {
	pkg  string
	from func(Version) bool
}

// toolSources lists, per package manager, the packages its versions are
// published in. pnpm 12 and later are a single executable in a
// per-platform package (the pnpm package itself only depends on it);
// yarn 2 and later ("berry") are @yarnpkg/cli-dist, yarn 1 ("classic") is
// yarn; bun publishes its Linux x64 executable as @oven/bun-linux-x64.
var toolSources = map[string][]toolSource{
	"pnpm": {
		{"pnpm", func(v Version) bool { return v.Major < 12 }},
		{"@pnpm/exe.linux-x64", func(v Version) bool { return v.Major >= 12 }},
	},
	"yarn": {
		{"yarn", func(v Version) bool { return v.Major == 1 }},
		{"@yarnpkg/cli-dist", func(v Version) bool { return v.Major >= 2 }},
	},
	"bun": {
		{"@oven/bun-linux-x64", func(Version) bool { return true }},
	},
}

// launcher names, per package manager, with the arguments they add: the
// launchers a tool's package.json does not declare itself.
var extraLaunchers = map[string]map[string][]string{
	"pnpm": {"pnpm": nil, "pnpx": {"dlx"}},
	"bun":  {"bun": nil, "bunx": {"x"}},
}

// hashChecked lists the packages whose tarball a packageManager field's
// hash is the digest of (corepack downloads these very tarballs).
var hashChecked = map[string]bool{"pnpm": true, "yarn": true}

// ResolveTool returns package manager name ("pnpm", "yarn" or "bun") at the
// newest published version in want.Spec (a version or range), fetched
// once and cached. hash, when not empty, is a packageManager field's
// "sha512.<hex>": the tarball must match it as well as the registry's
// integrity (it is checked for the pnpm and yarn packages corepack reads it
// for). A request nothing satisfies wraps ErrNoVersion and names want.
// say, when not nil, is told before a download starts.
func (s *Store) ResolveTool(ctx context.Context, name string, want Want, hash string, say func(string)) (Tool, error) {
	sources, ok := toolSources[name]
	if !ok {
		return Tool{}, fmt.Errorf("package manager %q: not one of pnpm, yarn, bun: %w", name, ErrBadSpec)
	}
	r, err := ParseRange(want.Spec)
	if err != nil {
		return Tool{}, fmt.Errorf("%s version from %s: %w: %v", name, want, ErrBadSpec, err)
	}
	var all []Version
	type found struct {
		src toolSource
		d   dist
	}
	byVersion := map[Version]found{}
	for _, src := range sources {
		doc, err := s.packument(ctx, src.pkg)
		if err != nil {
			if tool, ok := s.cachedTool(name, sources, r); ok {
				if hash != "" && hashChecked[tool.Package] {
					if err := checkDigests(s.entryDir(tool.Package, tool.Version), hash); err != nil {
						return Tool{}, err
					}
				}
				return tool, nil
			}
			return Tool{}, fmt.Errorf("%s version from %s: %w", name, want, err)
		}
		for v, d := range doc.releases() {
			if src.from(v) {
				byVersion[v] = found{src, d}
			}
		}
	}
	all = slices.SortedFunc(maps.Keys(byVersion), Version.Compare)
	best, ok := newest(all, r)
	if !ok {
		return Tool{}, fmt.Errorf("%s version from %s: %w%s", name, want, ErrNoVersion, span(name, all))
	}
	f := byVersion[best]
	if !hashChecked[f.src.pkg] {
		hash = ""
	}
	dir, fetched, err := s.ensure(ctx, f.src.pkg, best, f.d, hash, say, func(tmp, final string) error {
		return writeLaunchers(name, tmp, final)
	})
	if err != nil {
		return Tool{}, err
	}
	return Tool{Name: name, Package: f.src.pkg, Version: best, BinDir: filepath.Join(dir, "bin"), Fetched: fetched}, nil
}

// cachedTool returns the newest version of a package manager in the
// store that r matches, for when the registry cannot be asked.
func (s *Store) cachedTool(name string, sources []toolSource, r Range) (Tool, bool) {
	var best Tool
	found := false
	for _, src := range sources {
		for _, v := range s.cachedVersions(src.pkg) {
			if src.from(v) && r.Match(v) && (!found || v.Compare(best.Version) > 0) {
				best = Tool{Name: name, Package: src.pkg, Version: v, BinDir: filepath.Join(s.entryDir(src.pkg, v), "bin"), Offline: true}
				found = true
			}
		}
	}
	return best, found
}

// writeLaunchers writes tmp/bin/<launcher> shell scripts for the
// executables of the package unpacked in tmp/package, which will live at
// final: those its package.json declares under "bin", plus the ones in
// extraLaunchers, for packages that ship a bare executable.
func writeLaunchers(name, tmp, final string) error {
	if strings.ContainsAny(final, "'\n") {
		return fmt.Errorf("write launchers: directory %q has a quote or newline", final)
	}
	pkgDir := filepath.Join(tmp, "package")
	var manifest struct {
		Bin json.RawMessage `json:"bin"`
	}
	data, err := os.ReadFile(filepath.Join(pkgDir, "package.json"))
	if err != nil {
		return fmt.Errorf("write launchers: %w", err)
	}
	if err := json.Unmarshal(data, &manifest); err != nil {
		return fmt.Errorf("write launchers: package.json: %w", err)
	}
	targets := map[string]string{}
	var bins map[string]string
	if json.Unmarshal(manifest.Bin, &bins) == nil {
		for k, v := range bins {
			targets[k] = v
		}
	}
	launchers := map[string]string{}
	for k, rel := range targets {
		if !validLauncher(k) {
			continue
		}
		launchers[k] = launcher(filepath.Join(pkgDir, filepath.Clean("/"+rel)), filepath.Join(final, "package", filepath.Clean("/"+rel)), nil)
	}
	for k, args := range extraLaunchers[name] {
		if _, ok := launchers[k]; ok {
			continue
		}
		exe := findExecutable(pkgDir, name)
		if exe == "" {
			return fmt.Errorf("write launchers: no %s executable in the package", name)
		}
		launchers[k] = launcher(filepath.Join(pkgDir, exe), filepath.Join(final, "package", exe), args)
	}
	if len(launchers) == 0 {
		return fmt.Errorf("write launchers: the package declares no executable")
	}
	bin := filepath.Join(tmp, "bin")
	if err := mkdir0755(bin); err != nil {
		return fmt.Errorf("write launchers: %w", err)
	}
	for k, script := range launchers {
		if err := os.WriteFile(filepath.Join(bin, k), []byte(script), 0o755); err != nil {
			return fmt.Errorf("write launchers: %w", err)
		}
		if err := os.Chmod(filepath.Join(bin, k), 0o755); err != nil {
			return fmt.Errorf("write launchers: %w", err)
		}
	}
	return nil
}

// validLauncher keeps launcher names to plain file names.
func validLauncher(name string) bool {
	return name != "" && !strings.ContainsAny(name, "/\\'\n") && name != "." && name != ".."
}

// findExecutable returns where a bare-executable package keeps name:
// "bin/<name>" or "<name>".
func findExecutable(pkgDir, name string) string {
	for _, rel := range []string{filepath.Join("bin", name), name} {
		if fi, err := os.Stat(filepath.Join(pkgDir, rel)); err == nil && fi.Mode().IsRegular() {
			return rel
		}
	}
	return ""
}

// launcher returns a shell script that runs target (now at current, later
// at final) with args: directly for a native executable, with node for a
// JavaScript file, whatever its mode or #! line says.
func launcher(current, final string, args []string) string {
	var b strings.Builder
	b.WriteString("#!/bin/sh\nexec ")
	if !isELF(current) {
		b.WriteString("node ")
	}
	b.WriteString("'" + final + "'")
	for _, a := range args {
		b.WriteString(" " + a)
	}
	b.WriteString(" \"$@\"\n")
	return b.String()
}

func isELF(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 4)
	n, _ := f.Read(head)
	return bytes.Equal(head[:n], []byte("\x7fELF"))
}
