package e2e

import (
	"regexp"
	"strings"
	"testing"

	"minivercel/internal/testenv"
)

// needRegistry skips (fails in strict mode) a test that installs from the
// npm registry when it cannot be reached.
func needRegistry(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping a build that fetches from the npm registry")
	}
	if !registryReachable() {
		testenv.Skipf(t, "the npm registry cannot be reached from this machine")
	}
}

// pnpmLock is what pnpm 10 wrote for pnpmSite's package.json.
const pnpmLock = `lockfileVersion: '9.0'

settings:
  autoInstallPeers: true
  excludeLinksFromLockfile: false

importers:

  .:
    dependencies:
      ms:
        specifier: 2.1.3
        version: 2.1.3

packages:

  ms@2.1.3:
    resolution: {integrity: sha512-6FlzubTLZG3J2a/NVCAleEhjzq5oxgHyaCU9yYXvcLsvoVaHJq/s5xXI6/XXP6tz7R9xAOtHnSO/tXtF3WRTlA==}

snapshots:

  ms@2.1.3: {}
`

// TestPnpmProject: a project with a pnpm lockfile and no settings installs
// with pnpm (fetched, at the version its lockfile's format calls for),
// builds with a script that itself calls pnpm, and serves what it built
// with its dependency.
func TestPnpmProject(t *testing.T) {
	t.Parallel()
	needRegistry(t)
	s := startServer(t)
	r := newRepo(t, "main", map[string]string{
		"package.json": `{"name":"pnpm-site","private":true,
  "scripts":{"build":"pnpm run gen","gen":"node build.js"},
  "dependencies":{"ms":"2.1.3"}}`,
		"pnpm-lock.yaml": pnpmLock,
		"build.js": `const fs = require('fs');
const ms = require('ms');
fs.mkdirSync('dist', { recursive: true });
fs.writeFileSync('dist/index.html', '<p>a minute is ' + ms(60000) + ', built by ' + process.env.npm_config_user_agent.split(' ')[0] + '</p>');
`,
	})
	out := s.mustPush(r, "pnpmsite")
	for _, want := range []string{
		`pnpm 10.`, `(from pnpm-lock.yaml lockfileVersion 9.0 "10")`,
		"Installing dependencies: pnpm install --frozen-lockfile",
		"Building: pnpm run build",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("push output lacks %q:\n%s", want, out)
		}
	}
	if code, body := s.get("pnpmsite.localhost", "/"); code != 200 || !regexp.MustCompile(`a minute is 1m, built by pnpm/10\.`).MatchString(body) {
		t.Fatalf("page = %d %q", code, body)
	}
}

// TestNodeVersionFromNvmrc: .nvmrc asks for Node 22 on a machine whose
// Node is 20: the build runs on a Node 22 fetched from the registry, and so
// does the app; a version that does not exist fails the build with where
// it was asked.
func TestNodeVersionFromNvmrc(t *testing.T) {
	t.Parallel()
	needRegistry(t)
	s := startServer(t)

	bad := newRepo(t, "main", map[string]string{".nvmrc": "99\n", "package.json": `{"name":"bad","private":true,"scripts":{"start":"node -e 0"}}`})
	out, code := s.push(bad, "badnode")
	if !strings.Contains(out, `error: clone failed: node version from .nvmrc "99": no matching version: the registry has Node`) {
		t.Errorf("push of Node 99 (exit %d) does not say why it failed:\n%s", code, out)
	}

	r := newRepo(t, "main", map[string]string{
		".nvmrc": "22\n",
		"package.json": `{"name":"node22","private":true,
  "scripts":{"build":"node build.js","start":"node server.js"}}`,
		"build.js": `require('fs').writeFileSync('built-with.txt', process.version);`,
		"server.js": `const http = require('http');
const built = require('fs').readFileSync('built-with.txt', 'utf8');
http.createServer((req, res) => res.end('built with ' + built + ', running ' + process.version))
  .listen(process.env.PORT, process.env.HOST);
`,
	})
	out = s.mustPush(r, "node22")
	logged := regexp.MustCompile(`Node (22\.\d+\.\d+) \(from \.nvmrc "22"\), (fetched|cached)`).FindStringSubmatch(out)
	if logged == nil {
		t.Fatalf("push output does not say which Node ran:\n%s", out)
	}
	want := "built with v" + logged[1] + ", running v" + logged[1]
	if code, body := s.get("node22.localhost", "/"); code != 200 || body != want {
		t.Fatalf("page = %d %q, want %q", code, body, want)
	}
}
