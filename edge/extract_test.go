package edge

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"pgregory.net/rapid"
)

// entry describes one tar entry for the archive builders in tests.
type entry struct {
	name   string
	typ    byte
	body   string
	link   string
	mode   int64
	size   int64 // when non-zero, overrides len(body) in the header
	noBody bool
}

func file(name, body string) entry {
	return entry{name: name, typ: tar.TypeReg, body: body, mode: 0o644}
}
func dir(name string) entry             { return entry{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, target string) entry { return entry{name: name, typ: tar.TypeSymlink, link: target} }

// fataler is what both *testing.T and *rapid.T offer.
type fataler interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// tempArchive writes entries to an archive in a new directory, removed when
// the check ends, and returns the directory, the archive's path and its
// sha256 hex.
func tempArchive(rt *rapid.T, entries []entry) (tmp, path, sum string) {
	rt.Helper()
	tmp, err := os.MkdirTemp("", "edge-prop-")
	if err != nil {
		rt.Fatal(err)
	}
	rt.Cleanup(func() { os.RemoveAll(tmp) })
	path, sum = writeArchive(rt, tmp, entries)
	return tmp, path, sum
}

// writeArchive writes a tar.gz made of entries into dir and returns its path
// and sha256 hex.
func writeArchive(t fataler, dir string, entries []entry) (string, string) {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		size := int64(len(e.body))
		if e.typ != tar.TypeReg {
			size = 0
		}
		if e.size != 0 {
			size = e.size
		}
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Size: size, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("write header %q: %v", e.name, err)
		}
		if e.typ == tar.TypeReg && !e.noBody {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatalf("write body %q: %v", e.name, err)
			}
		}
	}
	tw.Close()
	zw.Close()
	f, err := os.CreateTemp(dir, "artifact-*.tar.gz")
	if err != nil {
		t.Fatal(err)
	}
	f.Write(buf.Bytes())
	f.Close()
	sum := sha256.Sum256(buf.Bytes())
	return f.Name(), hex.EncodeToString(sum[:])
}

func TestExtractRoundTrip(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	arch, sum := writeArchive(t, tmp, []entry{
		dir("assets/"),
		file("index.html", "<h1>hi</h1>"),
		{name: "assets/run.sh", typ: tar.TypeReg, body: "#!/bin/sh\n", mode: 0o4755},
		file("./deep/er/x.txt", "x"),
		symlink("assets/latest.js", "run.sh"),
		symlink("deep/er/up", "../../index.html"),
	})
	dst := filepath.Join(tmp, "out")
	if err := Extract(arch, strings.ToUpper(sum), dst); err != nil {
		t.Fatalf("Extract: %v", err)
	}
	for name, want := range map[string]string{
		"index.html":       "<h1>hi</h1>",
		"assets/run.sh":    "#!/bin/sh\n",
		"deep/er/x.txt":    "x",
		"assets/latest.js": "#!/bin/sh\n",
		"deep/er/up":       "<h1>hi</h1>",
	} {
		got, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
	modes := map[string]fs.FileMode{"index.html": 0o644, "assets/run.sh": 0o755, "assets": fs.ModeDir | 0o755, "deep/er": fs.ModeDir | 0o755, ".": fs.ModeDir | 0o755}
	for name, want := range modes {
		fi, err := os.Lstat(filepath.Join(dst, name))
		if err != nil || fi.Mode() != want {
			t.Errorf("mode of %s = %v, %v; want %v", name, fi.Mode(), err, want)
		}
	}
	if err := Extract(arch, sum, dst); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Extract into existing dst = %v, want fs.ErrExist", err)
	}
}

func TestExtractRefusals(t *testing.T) {
	t.Parallel()
	big := Limits{MaxTotalBytes: 10, MaxEntries: 3}
	cases := []struct {
		name    string
		entries []entry
		limits  Limits
		want    error
		inMsg   string
	}{
		{"absolute name", []entry{file("/etc/evil", "x")}, Limits{}, ErrUnsafeArchive, "/etc/evil"},
		{"dotdot name", []entry{file("../evil", "x")}, Limits{}, ErrUnsafeArchive, "../evil"},
		{"dotdot inside name", []entry{file("a/../../evil", "x")}, Limits{}, ErrUnsafeArchive, "a/../../evil"},
		{"backslash name", []entry{file(`a\..\evil`, "x")}, Limits{}, ErrUnsafeArchive, `a\\..\\evil`},
		{"write through symlinked dir", []entry{symlink("l", "."), file("l/x", "x")}, Limits{}, ErrUnsafeArchive, "l"},
		{"overwrite symlink with file", []entry{file("t", "t"), symlink("l", "t"), file("l", "x")}, Limits{}, ErrUnsafeArchive, "duplicate"},
		{"absolute symlink", []entry{symlink("l", "/etc/passwd")}, Limits{}, ErrUnsafeArchive, `"l"`},
		{"escaping symlink", []entry{symlink("a/l", "../../x")}, Limits{}, ErrUnsafeArchive, `"a/l"`},
		{"escaping symlink via inner dotdot", []entry{symlink("l", "a/../../x")}, Limits{}, ErrUnsafeArchive, `"l"`},
		{"hardlink", []entry{file("t", "t"), {name: "h", typ: tar.TypeLink, link: "t"}}, Limits{}, ErrUnsafeArchive, `"h"`},
		{"char device", []entry{{name: "c", typ: tar.TypeChar}}, Limits{}, ErrUnsafeArchive, `"c"`},
		{"block device", []entry{{name: "b", typ: tar.TypeBlock}}, Limits{}, ErrUnsafeArchive, `"b"`},
		{"fifo", []entry{{name: "f", typ: tar.TypeFifo}}, Limits{}, ErrUnsafeArchive, `"f"`},
		{"too many bytes", []entry{file("a", "12345678"), file("b", "12345")}, big, ErrArchiveTooLarge, "10 bytes"},
		{"too many entries", []entry{dir("a"), dir("b"), dir("c"), dir("d")}, big, ErrArchiveTooLarge, "3 entries"},
		{"declared size bomb", []entry{{name: "a", typ: tar.TypeReg, size: 1 << 40, noBody: true}}, Limits{}, ErrArchiveTooLarge, "bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			arch, sum := writeArchive(t, tmp, tc.entries)
			parent := filepath.Join(tmp, "deploy")
			os.Mkdir(parent, 0o755)
			err := tc.limits.Extract(arch, sum, filepath.Join(parent, "1"))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Extract = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.inMsg) {
				t.Errorf("error %q does not name %q", err, tc.inMsg)
			}
			if left, _ := os.ReadDir(parent); len(left) != 0 {
				t.Errorf("failed extraction left %v behind", left)
			}
		})
	}
}

func TestExtractChecksum(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	arch, sum := writeArchive(t, tmp, []entry{file("index.html", "x")})
	for _, bad := range []string{"", "zz", strings.Repeat("0", 64), sum[:62]} {
		dst := filepath.Join(tmp, "out")
		if err := Extract(arch, bad, dst); !errors.Is(err, ErrChecksumMismatch) {
			t.Errorf("Extract with sum %q = %v, want ErrChecksumMismatch", bad, err)
		}
		if _, err := os.Stat(dst); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("dst exists after checksum failure")
		}
	}
}

func TestEnsureExtractedConcurrent(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	arch, sum := writeArchive(t, tmp, []entry{file("index.html", "same")})
	dst := filepath.Join(tmp, "deploy", "7")
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Go(func() { errs[i] = EnsureExtracted(arch, sum, dst) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("caller %d: %v", i, err)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "index.html")); string(got) != "same" {
		t.Errorf("index.html = %q", got)
	}
	if left, _ := os.ReadDir(filepath.Dir(dst)); len(left) != 1 {
		t.Errorf("deploy dir holds %v, want only the build", left)
	}
}

// TestExtractPropertyConfined: for any archive, extraction either fails or
// creates nothing outside dst, and no symlink it creates resolves outside dst.
func TestExtractPropertyConfined(t *testing.T) {
	t.Parallel()
	// Mostly plain names, so that many archives extract and the symlinks
	// they plant get written through by later entries.
	elems := []string{"a", "b", "l", "a", "b", "l", "x.txt", "..", ".", ""}
	genPath := rapid.Custom(func(t *rapid.T) string {
		n := rapid.IntRange(1, 4).Draw(t, "depth")
		parts := make([]string, n)
		for i := range parts {
			parts[i] = rapid.SampledFrom(elems).Draw(t, "elem")
		}
		p := strings.Join(parts, "/")
		if rapid.IntRange(0, 19).Draw(t, "abs") == 0 {
			p = "/" + p
		}
		return p
	})
	genEntry := rapid.Custom(func(t *rapid.T) entry {
		name := genPath.Draw(t, "name")
		if strings.HasSuffix(name, "/") {
			name += "f" // archive/tar cannot write such names for non-dirs
		}
		switch rapid.IntRange(0, 3).Draw(t, "kind") {
		case 0:
			return dir(name)
		case 1:
			return symlink(name, genPath.Draw(t, "target"))
		default:
			return file(name, "data")
		}
	})
	rapid.Check(t, func(rt *rapid.T) {
		entries := rapid.SliceOfN(genEntry, 1, 12).Draw(rt, "entries")
		tmp, arch, sum := tempArchive(rt, entries)
		parent := filepath.Join(tmp, "p")
		// "outside" is where an escaping write would most likely land.
		outside := filepath.Join(parent, "outside")
		if err := os.MkdirAll(filepath.Join(outside, "a"), 0o755); err != nil {
			rt.Fatal(err)
		}
		dst := filepath.Join(parent, "a", "dst")
		os.MkdirAll(filepath.Dir(dst), 0o755)
		xerr := Extract(arch, sum, dst)
		filepath.WalkDir(tmp, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				rt.Fatalf("walk: %v", err)
			}
			switch {
			case p == tmp, p == arch, p == parent, p == outside, p == filepath.Join(outside, "a"), p == filepath.Dir(dst):
				return nil
			case p == dst || strings.HasPrefix(p, dst+"/"):
				if xerr != nil {
					rt.Fatalf("extraction failed (%v) yet %s exists", xerr, p)
				}
				if d.Type()&fs.ModeSymlink != 0 {
					if r, err := filepath.EvalSymlinks(p); err == nil && r != dst && !strings.HasPrefix(r, dst+"/") {
						rt.Fatalf("symlink %s resolves outside dst to %s", p, r)
					}
				}
				return nil
			default:
				rt.Fatalf("extraction (err %v) created %s outside dst", xerr, p)
			}
			return nil
		})
	})
}

// TestExtractPropertyRoundTrip: any valid tree of dirs and files comes back
// byte for byte with the right kinds.
func TestExtractPropertyRoundTrip(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.IntRange(0, 20).Draw(rt, "files")
		want := map[string]string{}
		var entries []entry
		for i := range n {
			depth := rapid.IntRange(0, 3).Draw(rt, "depth")
			var parts []string
			for range depth {
				parts = append(parts, "d"+rapid.StringMatching(`[a-z0-9]{1,3}`).Draw(rt, "dir"))
			}
			parts = append(parts, "f"+rapid.StringMatching(`[a-z0-9._-]{0,8}`).Draw(rt, "file")+string(rune('a'+i%26))+strings.Repeat("z", i/26))
			name := strings.Join(parts, "/")
			if _, dup := want[name]; dup {
				continue
			}
			body := rapid.String().Draw(rt, "body")
			want[name] = body
			if depth > 0 && rapid.Bool().Draw(rt, "explicit dir") {
				entries = append(entries, dir(strings.Join(parts[:depth], "/")+"/"))
			}
			entries = append(entries, file(name, body))
		}
		tmp, arch, sum := tempArchive(rt, entries)
		dst := filepath.Join(tmp, "dst")
		if err := Extract(arch, sum, dst); err != nil {
			rt.Fatalf("Extract valid tree: %v", err)
		}
		got := map[string]string{}
		filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				rt.Fatal(err)
			}
			if d.Type().IsRegular() {
				b, _ := os.ReadFile(p)
				rel, _ := filepath.Rel(dst, p)
				got[rel] = string(b)
			}
			return nil
		})
		if len(got) != len(want) {
			rt.Fatalf("got %d files, want %d", len(got), len(want))
		}
		for k, v := range want {
			if got[k] != v {
				rt.Fatalf("%s = %q, want %q", k, got[k], v)
			}
		}
	})
}
