package pipeline

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// archiveEntry is what a test reads back from an artifact.
type archiveEntry struct {
	Name     string
	Type     byte
	Mode     int64
	Linkname string
	Body     string
}

// readArchive reads an artifact as the edge would, checking the header
// fields the format promises.
func readArchive(t *testing.T, name string) []archiveEntry {
	t.Helper()
	return readArchiveAt(t, name, time.Unix(0, 0))
}

// readArchiveAt is readArchive of an artifact whose every mtime is mtime.
func readArchiveAt(t *testing.T, name string, mtime time.Time) []archiveEntry {
	t.Helper()
	var got []archiveEntry
	walkArchive(t, name, func(h *tar.Header, body []byte) {
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" || !h.ModTime.Equal(mtime) {
			t.Errorf("%s: uid %d gid %d uname %q gname %q mtime %v; want zeroes and %v",
				h.Name, h.Uid, h.Gid, h.Uname, h.Gname, h.ModTime, mtime)
		}
		got = append(got, archiveEntry{h.Name, h.Typeflag, h.Mode, h.Linkname, string(body)})
	})
	return got
}

// walkArchive calls each with every entry of an artifact, in order.
func walkArchive(t *testing.T, name string, each func(h *tar.Header, body []byte)) {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		each(h, body)
	}
}

func TestPack(t *testing.T) {
	src := tree(t, map[string]string{
		"index.html":          "<h1>hi</h1>",
		"assets/app.js":       "console.log(1)",
		"assets/img/logo.svg": "<svg/>",
		"empty/":              "",
	})
	writeFile(t, filepath.Join(src, "bin", "serve"), "#!/bin/sh\n", 0o750)
	if err := os.Symlink("assets/app.js", filepath.Join(src, "app.js")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../index.html", filepath.Join(src, "assets", "home.html")); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "build.tar.gz")

	sum, size, err := Pack(src, dst)
	if err != nil {
		t.Fatalf("Pack: %v", err)
	}

	want := []archiveEntry{
		{"app.js", tar.TypeSymlink, 0o777, "assets/app.js", ""},
		{"assets/", tar.TypeDir, 0o755, "", ""},
		{"assets/app.js", tar.TypeReg, 0o644, "", "console.log(1)"},
		{"assets/home.html", tar.TypeSymlink, 0o777, "../index.html", ""},
		{"assets/img/", tar.TypeDir, 0o755, "", ""},
		{"assets/img/logo.svg", tar.TypeReg, 0o644, "", "<svg/>"},
		{"bin/", tar.TypeDir, 0o755, "", ""},
		{"bin/serve", tar.TypeReg, 0o755, "", "#!/bin/sh\n"},
		{"empty/", tar.TypeDir, 0o755, "", ""},
		{"index.html", tar.TypeReg, 0o644, "", "<h1>hi</h1>"},
	}
	if got := readArchive(t, dst); !reflect.DeepEqual(got, want) {
		t.Errorf("archive =\n%v\nwant\n%v", got, want)
	}

	data, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(data)
	if sum != hex.EncodeToString(h[:]) || size != int64(len(data)) {
		t.Errorf("Pack returned %s, %d; file has %x, %d", sum, size, h, len(data))
	}
	fi, _ := os.Stat(dst)
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("artifact mode %v, want 0644", fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dst), ".pack-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}

	// Same tree, other mtimes and owner: same bytes, so a rebuild of the
	// same commit gets the same checksum.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(src, "index.html"), later, later); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.Lchown(filepath.Join(src, "assets", "app.js"), 1234, 1234); err != nil {
			t.Fatal(err)
		}
	}
	sum2, _, err := Pack(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if sum2 != sum {
		t.Errorf("repacking the same tree gave %s, first %s", sum2, sum)
	}
}

// TestPackServerApp packs a server app's tree as it leaves the build:
// node_modules with relative .bin symlinks whose targets must stay
// executable, directories the build left without permissions for others,
// and .git directories, which are left out.
func TestPackServerApp(t *testing.T) {
	src := tree(t, map[string]string{
		"server.js":                       "require('http')",
		"package.json":                    `{"scripts":{"start":"node server.js"}}`,
		".git/config":                     "[core]",
		"node_modules/dep/.git/HEAD":      "ref: x",
		"node_modules/dep/index.js":       "module.exports = 1",
		"node_modules/.package-lock.json": "{}",
	})
	writeFile(t, filepath.Join(src, "node_modules", "next", "dist", "bin", "next"), "#!/usr/bin/env node\n", 0o744)
	symlink(t, "../next/dist/bin/next", filepath.Join(src, "node_modules", ".bin", "next"))
	writeFile(t, filepath.Join(src, "private", "data.json"), "{}", 0o600)
	if err := os.Chmod(filepath.Join(src, "private"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "node_modules", "next", "dist"), 0o750); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "app.tar.gz")
	if _, _, err := Pack(src, dst); err != nil {
		t.Fatalf("Pack: %v", err)
	}
	want := []archiveEntry{
		{"node_modules/", tar.TypeDir, 0o755, "", ""},
		{"node_modules/.bin/", tar.TypeDir, 0o755, "", ""},
		{"node_modules/.bin/next", tar.TypeSymlink, 0o777, "../next/dist/bin/next", ""},
		{"node_modules/.package-lock.json", tar.TypeReg, 0o644, "", "{}"},
		{"node_modules/dep/", tar.TypeDir, 0o755, "", ""},
		{"node_modules/dep/index.js", tar.TypeReg, 0o644, "", "module.exports = 1"},
		{"node_modules/next/", tar.TypeDir, 0o755, "", ""},
		{"node_modules/next/dist/", tar.TypeDir, 0o755, "", ""},
		{"node_modules/next/dist/bin/", tar.TypeDir, 0o755, "", ""},
		{"node_modules/next/dist/bin/next", tar.TypeReg, 0o755, "", "#!/usr/bin/env node\n"},
		{"package.json", tar.TypeReg, 0o644, "", `{"scripts":{"start":"node server.js"}}`},
		{"private/", tar.TypeDir, 0o755, "", ""},
		{"private/data.json", tar.TypeReg, 0o644, "", "{}"},
		{"server.js", tar.TypeReg, 0o644, "", "require('http')"},
	}
	if got := readArchive(t, dst); !reflect.DeepEqual(got, want) {
		t.Errorf("archive =\n%v\nwant\n%v", got, want)
	}
}

func TestPackRefuses(t *testing.T) {
	cases := []struct {
		name  string
		path  string // the path the error must name
		setup func(t *testing.T, src string)
	}{
		{"absolute symlink", "shadow", func(t *testing.T, src string) {
			symlink(t, "/etc/shadow", filepath.Join(src, "shadow"))
		}},
		{"symlink climbing out", "assets/etc", func(t *testing.T, src string) {
			symlink(t, "../../../../etc", filepath.Join(src, "assets", "etc"))
		}},
		{"symlink chain escape", "a/b/", func(t *testing.T, src string) {
			symlink(t, "../..", filepath.Join(src, "a", "b", "l"))
			symlink(t, "l/..", filepath.Join(src, "a", "b", "x"))
		}},
		// npm link and some installers leave absolute links: a server
		// app's node_modules must be self-contained.
		{"absolute symlink in node_modules", "node_modules/.bin/tool", func(t *testing.T, src string) {
			symlink(t, "/usr/lib/node_modules/tool/cli.js", filepath.Join(src, "node_modules", ".bin", "tool"))
		}},
		{"fifo", "pipe", func(t *testing.T, src string) {
			if err := syscall.Mkfifo(filepath.Join(src, "pipe"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := tree(t, map[string]string{"index.html": "x", "assets/": "", "a/b/": ""})
			tc.setup(t, src)
			dstDir := t.TempDir()
			_, _, err := Pack(src, filepath.Join(dstDir, "a.tar.gz"))
			if !errors.Is(err, ErrUnsafePath) {
				t.Fatalf("Pack err = %v, want ErrUnsafePath", err)
			}
			if !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error %q does not name %s", err, tc.path)
			}
			if left, _ := os.ReadDir(dstDir); len(left) > 0 {
				t.Errorf("files left after a refused pack: %v", left)
			}
		})
	}
	t.Run("output is a symlink", func(t *testing.T) {
		dir := t.TempDir()
		symlink(t, "/etc", filepath.Join(dir, "dist"))
		if _, _, err := Pack(filepath.Join(dir, "dist"), filepath.Join(t.TempDir(), "a.tar.gz")); !errors.Is(err, ErrUnsafePath) {
			t.Fatalf("Pack err = %v, want ErrUnsafePath", err)
		}
	})
}

func symlink(t testing.TB, target, name string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, name); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkPack packs a site of 100 files and 2 MB: 80 text files (HTML,
// JS, CSS compress well) and 20 incompressible ones (images).
func BenchmarkPack(b *testing.B) {
	src := b.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	total := 0
	for i := range 100 {
		var data []byte
		if i%5 == 0 {
			data = make([]byte, 40<<10)
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
		} else {
			for len(data) < 15<<10 {
				data = fmt.Appendf(data, "export function f%d(x) { return x * %d + %q; }\n", rng.IntN(1000), rng.IntN(1000), "abc")
			}
		}
		total += len(data)
		name := filepath.Join(src, fmt.Sprintf("d%d", i%7), fmt.Sprintf("f%03d.js", i))
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(name, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	benchPack(b, src, int64(total))
}

// BenchmarkPackNodeModules packs the shape of a server app's node_modules:
// 3,000 small JavaScript files of about 2 KB in nested package directories,
// with .bin symlinks.
func BenchmarkPackNodeModules(b *testing.B) {
	src := b.TempDir()
	rng := rand.New(rand.NewPCG(3, 4))
	total := 0
	for i := range 3000 {
		var data []byte
		for len(data) < 2<<10 {
			data = fmt.Appendf(data, "module.exports.f%d = function (a) { return a + %d; };\n", rng.IntN(1000), rng.IntN(1000))
		}
		total += len(data)
		pkg := fmt.Sprintf("pkg%03d", i%150)
		name := filepath.Join(src, "node_modules", pkg, "lib", fmt.Sprintf("f%04d.js", i))
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(name, data, 0o644); err != nil {
			b.Fatal(err)
		}
		if i < 150 {
			symlink(b, filepath.Join("..", pkg, "lib", fmt.Sprintf("f%04d.js", i)), filepath.Join(src, "node_modules", ".bin", pkg))
		}
	}
	benchPack(b, src, int64(total))
}

// benchPack packs src in a loop and reports the artifact's size, the other
// half of the compression level trade-off.
func benchPack(b *testing.B, src string, total int64) {
	dst := filepath.Join(b.TempDir(), "a.tar.gz")
	b.SetBytes(total)
	var size int64
	for b.Loop() {
		var err error
		if _, size, err = Pack(src, dst); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(size), "artifact-bytes")
}

// checkoutAndDetect commits and pushes the work tree, checks the commit out
// into a workspace handed to the build user, and detects its plan.
func (r testRepo) checkoutAndDetect(t *testing.T) (workspace, Plan) {
	t.Helper()
	commit := r.commitAndPush(t)
	w := checkoutWorkspace(t, buildUser(t), func(src string) error {
		_, err := Checkout(context.Background(), r.bare, commit, src)
		return err
	})
	plan, err := Detect(w.src, Settings{})
	if err != nil {
		t.Fatalf("Detect: %v", err)
	}
	return w, plan
}

// TestBuildSequence runs the whole build of a tiny npm project the way the
// build job does: checkout from a bare repo, hand the workspace to the build
// user, detect, install (skipped: no dependencies), build with the real
// npm and node, resolve the output, pack.
func TestBuildSequence(t *testing.T) {
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("npm not installed")
	}
	build := func(t *testing.T, buildJS string) (Plan, string, string, error) {
		r := newTestRepo(t)
		writeFile(t, filepath.Join(r.work, "package.json"), `{"name":"tiny","private":true,"scripts":{"build":"node build.js"}}`, 0o644)
		writeFile(t, filepath.Join(r.work, "build.js"), buildJS, 0o644)
		w, plan := r.checkoutAndDetect(t)
		src := w.src
		if plan.Kind != KindNPM || plan.Install != nil || !reflect.DeepEqual(plan.Build, []string{"npm", "run", "build"}) {
			t.Fatalf("plan = %+v, want npm with no install step", plan)
		}
		var out bytes.Buffer
		env := MinimalEnv(w.home)
		if plan.Install != nil {
			if err := w.sb.Run(context.Background(), src, plan.Install, env, &out); err != nil {
				t.Fatalf("install: %v\n%s", err, out.String())
			}
		}
		err := w.sb.Run(context.Background(), src, plan.Build, append(env, "NODE_ENV=production"), &out)
		return plan, src, out.String(), err
	}

	t.Run("succeeds", func(t *testing.T) {
		plan, src, out, err := build(t, `
const fs = require("fs");
fs.mkdirSync("dist/assets", { recursive: true });
fs.writeFileSync("dist/index.html", "<h1>built in " + process.env.NODE_ENV + "</h1>");
fs.writeFileSync("dist/assets/app.js", "console.log('hi')");
console.log("wrote dist");
`)
		if err != nil {
			t.Fatalf("build: %v\n%s", err, out)
		}
		if !strings.Contains(out, "wrote dist") {
			t.Errorf("build output not captured: %q", out)
		}
		if err := ResolveOutput(src, &plan); err != nil {
			t.Fatalf("ResolveOutput: %v", err)
		}
		if plan.OutputDir != "dist" || !plan.SPA {
			t.Fatalf("output %q SPA %v, want dist and SPA", plan.OutputDir, plan.SPA)
		}
		artifact := filepath.Join(t.TempDir(), "1.tar.gz")
		if _, _, err := Pack(filepath.Join(src, plan.OutputDir), artifact); err != nil {
			t.Fatalf("Pack: %v", err)
		}
		names := map[string]string{}
		for _, e := range readArchive(t, artifact) {
			names[e.Name] = e.Body
		}
		if names["index.html"] != "<h1>built in production</h1>" {
			t.Errorf("archive index.html = %q; entries %v", names["index.html"], names)
		}
		if _, ok := names["assets/app.js"]; !ok {
			t.Errorf("archive lacks assets/app.js: %v", names)
		}
	})

	t.Run("fails with the script's exit code", func(t *testing.T) {
		_, _, out, err := build(t, `console.error("boom: the build broke"); process.exit(3);`)
		var exit *ExitError
		if !errors.As(err, &exit) || exit.Code != 3 || !errors.Is(err, ErrCommandFailed) {
			t.Fatalf("err = %v, want *ExitError code 3 wrapping ErrCommandFailed", err)
		}
		if !strings.Contains(out, "boom: the build broke") {
			t.Errorf("stderr of the failed build not captured: %q", out)
		}
	})
}

// TestServerAppSequence builds a Node server app with no dependencies the
// way the build job does (checkout, prepare, detect, resolve, pack), then
// starts the packed app the way the runtime will: `sh -c Start` in the
// extracted artifact with PORT and HOST.
func TestServerAppSequence(t *testing.T) {
	r := newTestRepo(t)
	writeFile(t, filepath.Join(r.work, "package.json"), `{"scripts":{"start":"node server.js"}}`, 0o644)
	writeFile(t, filepath.Join(r.work, "server.js"), `require("http").createServer((req, res) => res.end("hello from " + req.url))
  .listen(Number(process.env.PORT), process.env.HOST);
`, 0o644)
	w, plan := r.checkoutAndDetect(t)
	if plan.Kind != KindNode || plan.Start != "node server.js" || !plan.Server() || plan.Install != nil || plan.Build != nil {
		t.Fatalf("plan = %+v, want a node server started by node server.js, nothing to install or build", plan)
	}
	if err := ResolveOutput(w.src, &plan); err != nil || plan.OutputDir != "." {
		t.Fatalf("ResolveOutput: %v, output %q; want .", err, plan.OutputDir)
	}
	artifact := filepath.Join(t.TempDir(), "1.tar.gz")
	if _, _, err := Pack(filepath.Join(w.src, plan.OutputDir), artifact); err != nil {
		t.Fatalf("Pack: %v", err)
	}
	var names []string
	for _, e := range readArchive(t, artifact) {
		names = append(names, e.Name)
	}
	if want := []string{"package.json", "server.js"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("archive has %v, want %v", names, want)
	}

	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node not installed: the packed app is not started")
	}
	app := t.TempDir()
	if out, err := exec.Command("tar", "-xzf", artifact, "-C", app).CombinedOutput(); err != nil {
		t.Fatalf("extract: %v: %s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	cmd := exec.Command("/bin/sh", "-c", plan.Start)
	cmd.Dir = app
	cmd.Env = []string{"PATH=" + filepath.Join(app, "node_modules", ".bin") + ":" + sandboxPath, "PORT=" + port, "HOST=127.0.0.1"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://127.0.0.1:" + port + "/ping")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "hello from /ping" {
				t.Fatalf("app answered %q", body)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the packed app never answered: %v; its output: %s", err, out.String())
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, not synchronising
	}
}

// TestPackInRefusesSwappedDirectories: a workspace directory replaced by a
// symlink (the build user owns them) is refused, wherever the link points.
func TestPackInRefusesSwappedDirectories(t *testing.T) {
	ws := t.TempDir()
	secretDir := t.TempDir()
	os.WriteFile(filepath.Join(secretDir, "master.key"), []byte("secret"), 0o600)
	os.MkdirAll(filepath.Join(ws, "inside", "dist"), 0o755)
	os.WriteFile(filepath.Join(ws, "inside", "dist", "index.html"), []byte("ok"), 0o644)
	for name, target := range map[string]string{"src": secretDir, "other": filepath.Join(ws, "inside")} {
		if err := os.Symlink(target, filepath.Join(ws, name)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := PackIn(context.Background(), ws, filepath.Join(name, "dist"), filepath.Join(t.TempDir(), "a.tar.gz"), PackOptions{}); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("PackIn through the link %s = %v, want ErrUnsafePath", name, err)
		}
	}
	if _, _, err := PackIn(context.Background(), ws, "inside/dist", filepath.Join(t.TempDir(), "a.tar.gz"), PackOptions{}); err != nil {
		t.Errorf("PackIn of a real directory: %v", err)
	}
}

// TestPackInStampsTheCommitTime: every entry carries the time PackIn is
// given (the commit's, to the second), so two commits' artifacts of the
// same tree differ only there, and one commit's artifact is always the same
// bytes.
func TestPackInStampsTheCommitTime(t *testing.T) {
	base := t.TempDir()
	out := filepath.Join(base, "out")
	if err := os.MkdirAll(filepath.Join(out, "assets"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "assets", "a.txt"), []byte("same size"), 0o644); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 5, 4, 3, 2, 1, 999, time.FixedZone("CET", 3600))
	dir := t.TempDir()
	sum1, _, err := PackIn(context.Background(), base, "out", filepath.Join(dir, "1.tar.gz"), PackOptions{MTime: at})
	if err != nil {
		t.Fatal(err)
	}
	sum2, _, err := PackIn(context.Background(), base, "out", filepath.Join(dir, "2.tar.gz"), PackOptions{MTime: at})
	if err != nil {
		t.Fatal(err)
	}
	sum3, _, err := PackIn(context.Background(), base, "out", filepath.Join(dir, "3.tar.gz"), PackOptions{MTime: at.Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if sum1 != sum2 || sum1 == sum3 {
		t.Errorf("checksums %s %s %s: want the same commit time to give the same bytes and another to differ", sum1, sum2, sum3)
	}
	n := len(readArchiveAt(t, filepath.Join(dir, "1.tar.gz"), at.Truncate(time.Second)))
	if n != 2 {
		t.Errorf("%d entries, want assets/ and assets/a.txt", n)
	}
}

// TestPackRefusesOversizedOutput: a sparse file of a terabyte fails at once,
// from the sizes alone, before a byte is read; an artifact that compresses
// past its limit fails while it is written; a canceled pack stops; none of
// them leaves a file behind.
func TestPackRefusesOversizedOutput(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	out := filepath.Join(base, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	sparse, err := os.Create(filepath.Join(out, "huge.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sparse.Truncate(1 << 40); err != nil {
		t.Fatal(err)
	}
	sparse.Close()
	dir := t.TempDir()
	start := time.Now()
	_, _, err = PackIn(context.Background(), base, "out", filepath.Join(dir, "a.tar.gz"), PackOptions{})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("a 1 TB output: %v, want ErrTooLarge", err)
	}
	t.Logf("a 1 TB sparse output refused in %s", time.Since(start).Round(time.Millisecond))

	// Random bytes do not compress: 2 MiB of them pass a 4 MiB output limit
	// and fail a 1 MiB artifact limit.
	if err := os.Remove(filepath.Join(out, "huge.bin")); err != nil {
		t.Fatal(err)
	}
	noise := make([]byte, 2<<20)
	rand.NewChaCha8([32]byte{1}).Read(noise)
	if err := os.WriteFile(filepath.Join(out, "noise.bin"), noise, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = PackIn(context.Background(), base, "out", filepath.Join(dir, "a.tar.gz"), PackOptions{MaxOutputBytes: 4 << 20, MaxArtifactBytes: 1 << 20})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("an artifact over its limit: %v, want ErrTooLarge", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err = PackIn(ctx, base, "out", filepath.Join(dir, "a.tar.gz"), PackOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("a canceled pack: %v, want context.Canceled", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("failed packs left %v", left)
	}
}
