package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestBuildCacheSkipsInstall: the second push of an npm project whose
// lockfile did not change restores node_modules from the first build's:
// its push output says the install was skipped, and the site serves the
// new content, built with the restored dependency.
func TestBuildCacheSkipsInstall(t *testing.T) {
	t.Parallel()
	needRegistry(t, "the build cache test (installs ms from the npm registry)")
	s := startServer(t)
	page := func(text string) map[string]string {
		return map[string]string{"src/page.txt": text}
	}
	files := map[string]string{
		"package.json": `{"name":"cached","version":"1.0.0","scripts":{"build":"node build.js"},"dependencies":{"ms":"2.1.3"}}`,
		"package-lock.json": `{
  "name": "cached",
  "version": "1.0.0",
  "lockfileVersion": 3,
  "requires": true,
  "packages": {
    "": {"name": "cached", "version": "1.0.0", "dependencies": {"ms": "2.1.3"}},
    "node_modules/ms": {
      "version": "2.1.3",
      "resolved": "https://registry.npmjs.org/ms/-/ms-2.1.3.tgz",
      "integrity": "sha512-6FlzubTLZG3J2a/NVCAleEhjzq5oxgHyaCU9yYXvcLsvoVaHJq/s5xXI6/XXP6tz7R9xAOtHnSO/tXtF3WRTlA=="
    }
  }
}
`,
		"build.js": `const fs = require('fs');
const text = fs.readFileSync('src/page.txt', 'utf8') + ' in ' + require('ms')(90000, {long: true});
fs.mkdirSync('dist', {recursive: true});
fs.writeFileSync('dist/index.html', '<h1>' + text + '</h1>');
`,
	}
	for name, content := range page("first page") {
		files[name] = content
	}
	r := newRepo(t, "main", files)
	start := time.Now()
	out := s.mustPush(r, "cached")
	if !strings.Contains(out, "Dependencies: cache miss: no cache yet") || !strings.Contains(out, "Installing dependencies: npm ci") {
		t.Errorf("first push does not say it installs for want of a cache:\n%s", out)
	}
	logBuildTime(t, "cold build", out, start)
	s.waitBody("cached.localhost", "/", "first page in 2 minutes")

	r.commit("new page", page("second page"))
	start = time.Now()
	out = s.mustPush(r, "cached")
	hit := regexp.MustCompile(`Dependencies: cache hit \(package-lock\.json unchanged, npm \S+, Node \S+\): install skipped`)
	if !hit.MatchString(out) || strings.Contains(out, "Installing dependencies") {
		t.Errorf("second push does not say the install was skipped:\n%s", out)
	}
	logBuildTime(t, "warm build", out, start)
	s.waitBody("cached.localhost", "/", "second page in 2 minutes")
}
