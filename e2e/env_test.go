package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestEnvironmentVariables: a variable set with the CLI reaches the build (which
// writes it into the page) and the running app (which prints it on a route);
// its value is in no build log, no runtime log, no listing, not in the
// database dump nor anywhere in the data directory; a rotation keeps it
// readable; a reserved name is refused.
func TestEnvironmentVariables(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	const greeting = "hello-from-a-secret-7f3a9c"
	r := newRepo(t, "main", map[string]string{
		"package.json": `{"name":"envapp","private":true,"scripts":{"build":"node build.js","start":"node server.js"}}`,
		"build.js": `const fs = require('fs');
console.log('building with GREETING=' + process.env.GREETING);
console.log('encoded: ' + Buffer.from(process.env.GREETING || '').toString('base64'));
fs.mkdirSync('dist', {recursive: true});
fs.writeFileSync('dist/greeting.txt', 'built with ' + process.env.GREETING);`,
		"server.js": `const fs = require('fs');
console.log('starting with ' + process.env.GREETING);
require('http').createServer((q, r) => {
  if (q.url === '/built') return r.end(fs.readFileSync('dist/greeting.txt'));
  r.end('runtime says ' + process.env.GREETING + ' (' + process.env.ONLY_PREVIEW + ')');
}).listen(process.env.PORT, process.env.HOST);`,
	})
	// The project exists after its first push; set the variables, then push again.
	s.mustPush(r, "envapp")
	if out, code := s.cli(t, "env", "set", "envapp", "GREETING="+greeting); code != 0 {
		t.Fatalf("env set: %d %s", code, out)
	}
	if out, code := s.cli(t, "env", "set", "envapp", "ONLY_PREVIEW=preview-value-1", "--target", "preview"); code != 0 {
		t.Fatalf("env set preview: %d %s", code, out)
	}
	if out, code := s.cli(t, "env", "set", "envapp", "PORT=1"); code == 0 || !strings.Contains(out, "reserved") {
		t.Errorf("a reserved name was accepted: %d %s", code, out)
	}
	if out, code := s.cli(t, "env", "set", "envapp", "1BAD=x"); code == 0 || !strings.Contains(out, "variable name") {
		t.Errorf("a bad name was accepted: %d %s", code, out)
	}
	r.commit("again", map[string]string{"README": "rebuild"})
	out := s.mustPush(r, "envapp")
	if !strings.Contains(out, "building with GREETING=[secret]") || strings.Contains(out, greeting) {
		t.Errorf("the build log shows the value or lacks the mask:\n%s", out)
	}
	if code, body := s.get("envapp.localhost", "/built"); code != 200 || body != "built with "+greeting {
		t.Fatalf("/built = %d %q", code, body)
	}
	if code, body := s.get("envapp.localhost", "/"); code != 200 || body != "runtime says "+greeting+" (undefined)" {
		t.Fatalf("/ = %d %q (the preview-only variable must not reach production)", code, body)
	}
	list, _ := s.cli(t, "env", "list", "envapp")
	if strings.Contains(list, greeting) || !strings.Contains(list, "GREETING") || !strings.Contains(list, "hell••••••••") {
		t.Errorf("env list:\n%s", list)
	}
	// Runtime logs are stored in batches: wait for the app's first line.
	var logs string
	s.waitFor(func() bool {
		logs, _ = s.cli(t, "deploy", "logs", "envapp")
		return strings.Contains(logs, "starting with")
	})
	if strings.Contains(logs, greeting) || !strings.Contains(logs, "starting with [secret]") {
		t.Errorf("runtime log:\n%s", logs)
	}
	tokenOut, err := exec.Command(binary, "admin", "token", "create", "--data-dir", s.dataDir).Output()
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	code, _, raw := s.apiCall(t, "GET", "/api/projects/envapp/env", strings.TrimSpace(string(tokenOut)), "")
	if code != 200 || !strings.Contains(raw, `"GREETING"`) || strings.Contains(raw, greeting) {
		t.Errorf("API list = %d %s", code, raw)
	}
	s.assertNowhere(t, greeting)

	// Rotation: every value still opens, through a running server too.
	if out, code := s.cli(t, "admin", "rotate-key"); code != 0 || !strings.Contains(out, "re-encrypted 2 values") {
		t.Fatalf("rotate-key: %d %s", code, out)
	}
	if list2, _ := s.cli(t, "env", "list", "envapp"); !strings.Contains(list2, "hell••••••••") {
		t.Errorf("after rotation: %s", list2)
	}
	if out, code := s.cli(t, "env", "set", "envapp", "GREETING=changed-after-rotation"); code != 0 {
		t.Fatalf("env set after rotation: %d %s", code, out)
	}
	if out, code := s.cli(t, "deploy", "redeploy", "envapp"); code != 0 {
		t.Fatalf("redeploy: %d %s", code, out)
	}
	if code, body := s.get("envapp.localhost", "/"); code != 200 || !strings.Contains(body, "changed-after-rotation") {
		t.Fatalf("after redeploy = %d %q", code, body)
	}
	s.assertNowhere(t, "changed-after-rotation")
}

// assertNowhere checks a value is not in the server's own log, not in any
// process's command line (values travel in the environment of the child), not
// in the database dump, and not in any file of the data directory (the
// database's own files included).
func (s *server) assertNowhere(t *testing.T, value string) {
	t.Helper()
	if strings.Contains(s.logText(), value) {
		t.Errorf("the server's log contains the value")
	}
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, c := range cmdlines {
		if b, err := os.ReadFile(c); err == nil && strings.Contains(string(b), value) {
			t.Errorf("the command line of %s contains the value: %q", c, b)
		}
	}
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump")
	if len(bins) == 0 {
		t.Fatal("pg_dump not found")
	}
	sock := filepath.Join(s.dataDir, "postgres", "run")
	dump, err := exec.Command(bins[len(bins)-1], "-h", sock, "-U", "minivercel", "minivercel").CombinedOutput()
	if err != nil {
		t.Fatalf("pg_dump: %v: %s", err, dump)
	}
	if !strings.Contains(string(dump), "environment_variables") {
		t.Fatalf("the dump has no environment_variables table")
	}
	if strings.Contains(string(dump), value) {
		t.Errorf("the database dump contains the value")
	}
	filepath.Walk(s.dataDir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() || fi.Size() > 64<<20 {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), value) {
			// Only the deployed output may hold it: the build wrote it there on purpose.
			if !strings.Contains(p, string(filepath.Separator)+"deployments"+string(filepath.Separator)) &&
				!strings.Contains(p, string(filepath.Separator)+"artifacts"+string(filepath.Separator)) {
				t.Errorf("%s contains the value", p)
			}
		}
		return nil
	})
}
