package pipeline

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"minivercel/siteconf"
)

// routingWorkspace lays out files (path under the workspace → content) and returns
// the workspace.
func routingWorkspace(t *testing.T, files map[string]string) string {
	t.Helper()
	ws := t.TempDir()
	for name, body := range files {
		p := filepath.Join(ws, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return ws
}

func TestWriteSiteConfig(t *testing.T) {
	t.Parallel()
	ws := routingWorkspace(t, map[string]string{
		"src/vercel.json":                 `{"cleanUrls": true, "crons": [], "redirects": [{"source": "/a", "destination": "/b"}]}`,
		"src/_redirects":                  "/ignored /root-copy 302\n",
		"src/dist/_redirects":             "/x /y 302\n/z /index.html 200\n",
		"src/dist/index.html":             "home",
		"src/dist/.minivercel/site.json":  `{"version": 1, "rules": [{"origin": "evil", "syntax": "netlify", "source": "/", "destination": "https://evil.example/", "status": 302}]}`,
		"src/dist/.minivercel/other/file": "the project's own",
	})
	var log []string
	if err := writeSiteConfig(ws, "dist", func(s string) { log = append(log, s) }); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"-----> Routing files: vercel.json (repository root), _redirects (output)",
		"warning: vercel.json:1:30: crons: cron jobs are not supported; ignored",
		"       2 redirects, 1 rewrite, 0 header rules, clean URLs",
	}
	if strings.Join(log, "\n") != strings.Join(want, "\n") {
		t.Errorf("log:\n%s\nwant:\n%s", strings.Join(log, "\n"), strings.Join(want, "\n"))
	}
	if _, err := os.Stat(filepath.Join(ws, "src/dist/.minivercel/other")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the project's own .minivercel/ was kept: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(ws, "src/dist/.minivercel/site.json"))
	if err != nil {
		t.Fatal(err)
	}
	site, err := siteconf.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"/a": "/b", "/x": "/y", "/ignored": "", "/": ""} {
		a := site.Route(path, "", nil)
		if a.Location != want {
			t.Errorf("%s redirects to %q, want %q", path, a.Location, want)
		}
	}
}

func TestWriteSiteConfigNone(t *testing.T) {
	t.Parallel()
	ws := routingWorkspace(t, map[string]string{"src/index.html": "home", "src/.minivercel/site.json": "{}"})
	var log []string
	if err := writeSiteConfig(ws, ".", func(s string) { log = append(log, s) }); err != nil {
		t.Fatal(err)
	}
	if len(log) != 0 {
		t.Errorf("log %q", log)
	}
	if _, err := os.Stat(filepath.Join(ws, "src/.minivercel")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf(".minivercel/ kept: %v", err)
	}
}

func TestWriteSiteConfigInvalid(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		files map[string]string
		want  string
	}{
		"redirects": {map[string]string{"src/_redirects": "/a /b\n/c /d 301\n/e /f 299!x\n"}, "_redirects:3: unexpected \"299!x\""},
		"vercel":    {map[string]string{"src/vercel.json": "{\n  \"rewrites\": [\n    {\"source\": \"/(?!api).*\", \"destination\": \"/\"}\n  ]\n}\n"}, "vercel.json:3:5: rewrites[0]: source"},
		"headers":   {map[string]string{"src/_headers": "/a\n  X-A\n"}, "_headers:2:"},
		"too big":   {map[string]string{"src/_headers": strings.Repeat("#\n", siteconf.MaxFileBytes)}, "_headers: 2097152 bytes, more than the 1048576 allowed"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ws := routingWorkspace(t, tc.files)
			err := writeSiteConfig(ws, ".", func(string) {})
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q…", err, tc.want)
			}
			if got := reasonFor("artifact", err); !strings.Contains(got, tc.want) {
				t.Errorf("reason %q", got)
			}
		})
	}
}

// TestWriteSiteConfigSymlinkOut: a routing file the build made a symlink to
// a file outside the workspace is not read by the (privileged) server.
func TestWriteSiteConfigSymlinkOut(t *testing.T) {
	t.Parallel()
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte("/a /b 301\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ws := routingWorkspace(t, map[string]string{"src/index.html": "home"})
	if err := os.Symlink(outside, filepath.Join(ws, "src/_redirects")); err != nil {
		t.Fatal(err)
	}
	err := writeSiteConfig(ws, ".", func(string) {})
	if err == nil || !strings.Contains(err.Error(), "read _redirects") {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(filepath.Join(ws, "src/.minivercel/site.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("site.json written from a file outside: %v", err)
	}
}

// TestWriteSiteConfigFIFO: a FIFO the build left under a routing file's
// name is not a routing file, like a directory of that name: it is passed
// over at once instead of hanging the worker, which runs as root, on open.
func TestWriteSiteConfigFIFO(t *testing.T) {
	t.Parallel()
	ws := routingWorkspace(t, map[string]string{"src/index.html": "home"})
	if err := syscall.Mkfifo(filepath.Join(ws, "src/_redirects"), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- writeSiteConfig(ws, ".", func(string) {}) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("a FIFO as _redirects: %v", err)
		}
		if _, err := os.Stat(filepath.Join(ws, "src/.minivercel/site.json")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a FIFO was read as rules: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("writeSiteConfig hangs on a FIFO")
	}
}
