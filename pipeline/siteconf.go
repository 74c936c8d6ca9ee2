package pipeline

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"minivercel/siteconf"
)

// reservedOutputDir is the platform's directory inside every artifact: the
// compiled routing rules (site.json) and functions live there, and the edge
// never serves it. Whatever a project's own output had there is removed.
const reservedOutputDir = ".minivercel"

// siteConfigName is the compiled rules' file inside reservedOutputDir.
const siteConfigName = "site.json"

// routingFiles are the routing files a site may bring, in the order they
// are reported.
var routingFiles = []string{"vercel.json", "_redirects", "_headers"}

// writeSiteConfig reads the project's routing files, checks them and writes
// the compiled rules to <output>/.minivercel/site.json inside the workspace
// ws, for the edge to load when it activates the build. It runs after the
// build, before packing, and must run before anything else writes into
// .minivercel/: it first removes the directory the project's output may have
// had.
//
// Each file is taken from the output directory when it is there (a
// bundler's public/ folder lands there, and Netlify reads them from the
// publish directory), else from the repository root (where Vercel reads
// vercel.json). An invalid file fails the build with its name, line and
// reason; what is not supported is reported with "warning:" and ignored.
// say receives the push log's lines.
//
// Every path goes through an os.Root at ws: the build user wrote the tree
// and may have left symlinks, which cannot lead the server outside ws.
func writeSiteConfig(ws, outputDir string, say func(string)) error {
	root, err := os.OpenRoot(ws)
	if err != nil {
		return fmt.Errorf("open workspace: %w", err)
	}
	defer root.Close()
	out := filepath.Join("src", filepath.FromSlash(outputDir))
	reserved := filepath.Join(out, reservedOutputDir)
	if err := root.RemoveAll(reserved); err != nil {
		return fmt.Errorf("clear %s/%s: %w", outputDir, reservedOutputDir, err)
	}

	var (
		vercel    siteconf.Config
		redirects []siteconf.Rule
		headers   []siteconf.HeaderRule
		found     []string
		warns     []string
	)
	for _, name := range routingFiles {
		data, where, err := readRoutingFile(root, out, name)
		if err != nil {
			return err
		}
		if data == nil {
			continue
		}
		found = append(found, name+" ("+where+")")
		var w []string
		switch name {
		case "vercel.json":
			vercel, w, err = siteconf.ParseVercel(name, data)
		case "_redirects":
			redirects, w, err = siteconf.ParseRedirects(name, data)
		case "_headers":
			headers, w, err = siteconf.ParseHeaders(name, data)
		}
		if err != nil {
			return err
		}
		warns = append(warns, w...)
	}
	if len(found) == 0 {
		return nil
	}
	say("-----> Routing files: " + strings.Join(found, ", "))
	for _, w := range warns {
		say("warning: " + w)
	}
	conf := siteconf.Merge(vercel, redirects, headers)
	// Compiling here refuses, at build time, what the edge would refuse at
	// activation: the limits, and patterns that are not linear-time regexps.
	if _, err := siteconf.Compile(conf); err != nil {
		return err
	}
	say("       " + summary(conf))
	if conf.Empty() {
		return nil
	}
	data, err := siteconf.Marshal(conf)
	if err != nil {
		return err
	}
	if err := root.MkdirAll(reserved, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", siteConfigName, err)
	}
	if err := root.WriteFile(filepath.Join(reserved, siteConfigName), data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", siteConfigName, err)
	}
	return nil
}

// readRoutingFile returns the content of the routing file name from the
// output directory out, else from the repository root, and where it was
// found; nil when neither has it.
func readRoutingFile(root *os.Root, out, name string) ([]byte, string, error) {
	places := []struct{ dir, where string }{{out, "output"}, {"src", "repository root"}}
	if filepath.Clean(out) == "src" {
		places = places[1:]
	}
	for _, p := range places {
		// O_NONBLOCK: a FIFO the build left under this name must not hang
		// the worker (running as root) on open; readRegular refuses it.
		f, err := root.OpenFile(filepath.Join(p.dir, name), os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("read %s: %w", name, err)
		}
		data, err := readRegular(f, name)
		f.Close()
		if err != nil {
			return nil, "", err
		}
		if data == nil {
			continue // a directory of that name is not a routing file
		}
		return data, p.where, nil
	}
	return nil, "", nil
}

// readRegular reads a regular file of at most siteconf.MaxFileBytes; nil
// (and no error) when f is not a regular file.
func readRegular(f *os.File, name string) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, nil
	}
	if fi.Size() > siteconf.MaxFileBytes {
		return nil, &siteconf.Error{File: name, Msg: fmt.Sprintf("%d bytes, more than the %d allowed", fi.Size(), siteconf.MaxFileBytes)}
	}
	data, err := io.ReadAll(io.LimitReader(f, siteconf.MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if data == nil {
		data = []byte{}
	}
	return data, nil
}

// summary counts what the site configured, for the push log.
func summary(c siteconf.Config) string {
	var redirects, rewrites int
	for _, r := range c.Rules {
		if r.IsRedirect() {
			redirects++
		} else {
			rewrites++
		}
	}
	parts := []string{plural(redirects, "redirect"), plural(rewrites, "rewrite"), plural(len(c.Headers), "header rule")}
	if c.CleanURLs {
		parts = append(parts, "clean URLs")
	}
	if c.TrailingSlash != nil {
		parts = append(parts, fmt.Sprintf("trailing slash %v", *c.TrailingSlash))
	}
	return strings.Join(parts, ", ")
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
