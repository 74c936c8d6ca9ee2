package e2e

import (
	"regexp"
	"strings"
	"testing"
)

// TestPreviewsAndDomains: a branch push leaves production alone and gets a
// branch URL that follows the branch; every build URL keeps serving its build
// after later pushes, static and server apps alike (a server app's preview
// starts on its first request, with the preview variables); the path form
// serves a build under /preview/<id>/; a custom domain serves production.
func TestPreviewsAndDomains(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	r := newRepo(t, "main", nodeApp("production v1"))
	s.mustPush(r, "shop")
	if out, code := s.cli(t, "env", "set", "shop", "STAGE=preview-stage", "--target", "preview"); code != 0 {
		t.Fatalf("env set: %d %s", code, out)
	}
	r.git("checkout", "-q", "-b", "feature/New-Checkout")
	r.commit("feature 1", map[string]string{"server.js": `require('http').createServer((q, r) => r.end('feature one ' + process.env.STAGE)).listen(process.env.PORT, process.env.HOST);`})
	out := s.mustPush(r, "shop", "feature/New-Checkout")
	branchURL := regexp.MustCompile(`Preview of feature/New-Checkout: http://(shop--git-feature-new-checkout\.localhost)`).FindStringSubmatch(out)
	buildURL := regexp.MustCompile(`This build: http://(shop--[a-z0-9]+\.localhost)`).FindStringSubmatch(out)
	if branchURL == nil || buildURL == nil {
		t.Fatalf("push output lacks the preview URLs:\n%s", out)
	}
	if code, body := s.get("shop.localhost", "/"); body != "production v1" {
		t.Fatalf("production after a branch push = %d %q", code, body)
	}
	if code, body := s.get(branchURL[1], "/"); code != 200 || body != "feature one preview-stage" {
		t.Fatalf("branch URL = %d %q", code, body)
	}

	r.commit("feature 2", map[string]string{"server.js": `require('http').createServer((q, r) => r.end('feature two')).listen(process.env.PORT, process.env.HOST);`})
	s.mustPush(r, "shop", "feature/New-Checkout")
	s.waitBody(branchURL[1], "/", "feature two")
	if code, body := s.get(buildURL[1], "/"); code != 200 || body != "feature one preview-stage" {
		t.Fatalf("the first feature build's own URL = %d %q", code, body)
	}
	if code, body := s.get("shop.localhost", "/"); body != "production v1" {
		t.Fatalf("production after two branch pushes = %d %q", code, body)
	}

	// The path form, for a static build of another project.
	st := newRepo(t, "main", map[string]string{"index.html": "static preview", "about.html": "about page"})
	out = s.mustPush(st, "docs")
	id := regexp.MustCompile(`Build #(\d+) succeeded`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("no build id:\n%s", out)
	}
	if code, body := s.get("localhost", "/preview/"+id[1]+"/about"); code != 200 || body != "about page" {
		t.Fatalf("path form = %d %q", code, body)
	}

	// A custom domain serves production; removed, it serves nothing.
	if out, code := s.cli(t, "domain", "add", "shop", "Shop.Example.TEST"); code != 0 || !strings.Contains(out, "shop.example.test now serves shop") {
		t.Fatalf("domain add: %d %s", code, out)
	}
	if out, code := s.cli(t, "domain", "add", "docs", "shop.example.test"); code == 0 || !strings.Contains(out, "another project") {
		t.Errorf("a domain was given to two projects: %d %s", code, out)
	}
	if out, code := s.cli(t, "domain", "add", "docs", "127.0.0.1"); code == 0 {
		t.Errorf("an IP address was accepted as a domain: %s", out)
	}
	s.waitBody("shop.example.test", "/", "production v1")
	if out, code := s.cli(t, "domain", "list", "shop"); code != 0 || !strings.Contains(out, "shop.example.test") {
		t.Errorf("domain list: %d %s", code, out)
	}
	if out, code := s.cli(t, "domain", "remove", "shop", "shop.example.test"); code != 0 {
		t.Fatalf("domain remove: %d %s", code, out)
	}
	s.waitFor(func() bool { code, _ := s.get("shop.example.test", "/"); return code == 404 })
}
