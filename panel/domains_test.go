package panel

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"minivercel/schema"
)

// TestAPIDomains drives every domain route through its success and error
// answers: 201 against 200, the normalised name, 400 with the field, 404 for
// unknown projects and for domains the project does not have, 409 without
// naming the owner, and the certificate status the edge recorded.
func TestAPIDomains(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, nil)
	e.project("blog")
	e.project("secretclient")
	const base = "/api/projects/blog/domains"

	t.Run("empty list", func(t *testing.T) {
		var ds []domainJSON
		e.call("GET", base, nil, http.StatusOK, &ds)
		if ds == nil || len(ds) != 0 {
			t.Fatalf("a project without domains lists %v, want []", ds)
		}
	})
	t.Run("add", func(t *testing.T) {
		var d domainJSON
		e.call("POST", base, map[string]string{"domain": " WWW.Example.COM. "}, http.StatusCreated, &d)
		if d.Domain != "www.example.com" || d.CertStatus != schema.CertPending || d.CertError != "" ||
			d.CertCheckedAt != nil || d.CreatedAt.IsZero() || d.URL != "http://www.example.com/" {
			t.Fatalf("added %+v", d)
		}
		// Adding it again is no error: a script need not ask first.
		e.call("POST", base, map[string]string{"domain": "www.example.com"}, http.StatusOK, &d)
		if d.Domain != "www.example.com" {
			t.Fatalf("added again %+v", d)
		}
		e.call("POST", base, map[string]string{"domain": "bücher.example"}, http.StatusCreated, &d)
		if d.Domain != "xn--bcher-kva.example" {
			t.Fatalf("IDN stored as %q", d.Domain)
		}
	})
	t.Run("add refused", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			body  any
			field string
			want  string // in the message
		}{
			{"empty", map[string]string{"domain": ""}, "domain", "empty"},
			{"IP address", map[string]string{"domain": "192.0.2.1"}, "domain", "IP address"},
			{"bracketed IPv6", map[string]string{"domain": "[::1]"}, "domain", "IP address"},
			{"wildcard", map[string]string{"domain": "*.example.com"}, "domain", "wildcard"},
			{"base domain", map[string]string{"domain": testBaseDomain}, "domain", "belong to the platform"},
			{"under the base domain", map[string]string{"domain": "blog." + testBaseDomain}, "domain", "belong to the platform"},
			{"one label", map[string]string{"domain": "intranet"}, "domain", "two labels"},
			{"bad label", map[string]string{"domain": "-a.example.com"}, "domain", "not a valid internationalised domain name"},
			{"long label", map[string]string{"domain": strings.Repeat("a", 64) + ".example.com"}, "domain", "at most 63"},
			{"numeric last label", map[string]string{"domain": "a.123"}, "domain", "IP address"},
			{"wrong type", map[string]any{"domain": 7}, "domain", "string"},
			{"unknown field", map[string]string{"domain": "a.example.com", "project": "x"}, "", "unknown field"},
			{"no body", "", "", "JSON object"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ae := e.expectError("POST", base, tc.body, http.StatusBadRequest, tc.field)
				if !strings.Contains(ae.Error, tc.want) {
					t.Errorf("message %q lacks %q", ae.Error, tc.want)
				}
			})
		}
	})
	t.Run("another project's domain", func(t *testing.T) {
		ae := e.expectError("POST", "/api/projects/secretclient/domains", map[string]string{"domain": "www.example.com"}, http.StatusConflict, "")
		if ae.Error != "www.example.com already belongs to another project" || strings.Contains(ae.Error, "blog") {
			t.Fatalf("conflict says %q", ae.Error)
		}
		e.expectError("DELETE", "/api/projects/secretclient/domains/www.example.com", nil, http.StatusNotFound, "")
		if got, err := e.store.DomainProject(context.Background(), "www.example.com"); err != nil || got != "blog" {
			t.Fatalf("www.example.com serves %q, %v after the refusals", got, err)
		}
	})
	t.Run("list with certificate status", func(t *testing.T) {
		if err := e.store.SetDomainCertStatus(context.Background(), "www.example.com", schema.CertFailed,
			errors.New("acme: DNS problem: NXDOMAIN looking up A for www.example.com")); err != nil {
			t.Fatal(err)
		}
		var ds []domainJSON
		e.call("GET", base, nil, http.StatusOK, &ds)
		if len(ds) != 2 || ds[0].Domain != "www.example.com" || ds[1].Domain != "xn--bcher-kva.example" {
			t.Fatalf("listed %+v", ds)
		}
		if d := ds[0]; d.CertStatus != schema.CertFailed || !strings.Contains(d.CertError, "NXDOMAIN") || d.CertCheckedAt == nil {
			t.Fatalf("failed certificate listed as %+v", d)
		}
		if d := ds[1]; d.CertStatus != schema.CertPending || d.CertCheckedAt != nil {
			t.Fatalf("pending certificate listed as %+v", d)
		}
	})
	t.Run("unknown project", func(t *testing.T) {
		e.expectError("GET", "/api/projects/ghost/domains", nil, http.StatusNotFound, "")
		e.expectError("POST", "/api/projects/ghost/domains", map[string]string{"domain": "a.example.com"}, http.StatusNotFound, "")
		e.expectError("DELETE", "/api/projects/ghost/domains/www.example.com", nil, http.StatusNotFound, "")
	})
	t.Run("remove", func(t *testing.T) {
		// Named as typed: upper case, and an IDN in Unicode, percent-encoded.
		e.call("DELETE", base+"/WWW.EXAMPLE.COM", nil, http.StatusNoContent, nil)
		e.call("DELETE", base+"/"+url.PathEscape("bücher.example"), nil, http.StatusNoContent, nil)
		ae := e.expectError("DELETE", base+"/www.example.com", nil, http.StatusNotFound, "")
		if ae.Error != "www.example.com is not a domain of blog" {
			t.Errorf("second removal says %q", ae.Error)
		}
		e.expectError("DELETE", base+"/not..a..name", nil, http.StatusNotFound, "")
		var ds []domainJSON
		e.call("GET", base, nil, http.StatusOK, &ds)
		if len(ds) != 0 {
			t.Fatalf("after removal %+v", ds)
		}
	})
	t.Run("unauthenticated", func(t *testing.T) {
		for _, r := range []struct{ method, path string }{
			{"GET", base}, {"POST", base}, {"DELETE", base + "/a.example.com"},
		} {
			var body any
			if r.method == "POST" {
				body = map[string]string{"domain": "a.example.com"}
			}
			if code, data, _ := e.request(r.method, r.path, "", body); code != http.StatusUnauthorized {
				t.Errorf("%s %s without credentials: %d %s", r.method, r.path, code, data)
			}
		}
		if ds, _ := e.store.ListDomains(context.Background(), e.project("blog").ID); len(ds) != 0 {
			t.Errorf("an unauthenticated request added %+v", ds)
		}
	})
	t.Run("cross-origin with the session cookie", func(t *testing.T) {
		code, data, _ := e.request("POST", base, "", map[string]string{"domain": "a.example.com"},
			"Cookie", sessionCookie+"="+e.token, "Origin", "http://blog."+testBaseDomain)
		if code != http.StatusForbidden {
			t.Fatalf("cross-origin add: %d %s", code, data)
		}
	})
}

// TestSettingsDomains: the settings page lists the production host and each
// custom domain with its certificate status and error; the add form refuses
// bad and taken names next to the field, keeping the input; add and remove
// work from the panel's own origin only.
func TestSettingsDomains(t *testing.T) {
	t.Parallel()
	env := newPageEnv(t)
	ctx := context.Background()
	b := env.loggedIn()
	p := env.project("blog")
	other := env.project("secretclient")

	r := b.get("/projects/blog/settings")
	mustContain(t, r.body, `id="domains"`, "blog.localhost", "Production", "Point the domain’s DNS at this server",
		"No custom domains yet", `action="/projects/blog/domains"`, `name="domain"`, "without <code>--https-addr</code>")

	r = b.follow("/projects/blog/domains", url.Values{"domain": {"WWW.Example.com"}})
	mustContain(t, r.body, "www.example.com now serves blog", `href="http://www.example.com/"`, `data-status="pending"`, "Pending")
	r = b.follow("/projects/blog/domains", url.Values{"domain": {"www.example.com"}})
	mustContain(t, r.body, "www.example.com already serves blog")

	t.Run("refused names", func(t *testing.T) {
		for _, tc := range []struct{ typed, want string }{
			{"192.0.2.1", "an IP address cannot be a domain"},
			{"*.example.com", "wildcard domains are not allowed"},
			{"blog.localhost", "hosts under localhost belong to the platform"},
			{"<b>x</b>.example.com", "not a valid internationalised domain name"},
		} {
			t.Run(tc.typed, func(t *testing.T) {
				r := b.post("/projects/blog/domains", url.Values{"domain": {tc.typed}})
				if r.code != http.StatusUnprocessableEntity {
					t.Fatalf("add %q = %d", tc.typed, r.code)
				}
				mustContain(t, r.body, `id="domain-err"`, `aria-invalid="true"`, tc.want, `value="`+htmlText(tc.typed)+`"`)
				if strings.Contains(r.body, "<b>x</b>") {
					t.Error("the typed name is not escaped")
				}
			})
		}
	})
	t.Run("another project's domain", func(t *testing.T) {
		if _, err := env.store.AddDomain(ctx, other.ID, "client.example.org"); err != nil {
			t.Fatal(err)
		}
		r := b.post("/projects/blog/domains", url.Values{"domain": {"client.example.org"}})
		if r.code != http.StatusUnprocessableEntity {
			t.Fatalf("add a taken domain = %d", r.code)
		}
		mustContain(t, r.body, `id="domain-err"`, "client.example.org already belongs to another project.")
		if strings.Contains(r.body, "secretclient") {
			t.Error("the refusal names the project that owns the domain")
		}
	})
	t.Run("certificate status and error", func(t *testing.T) {
		if _, err := env.store.AddDomain(ctx, p.ID, "shop.example.net"); err != nil {
			t.Fatal(err)
		}
		if err := env.store.SetDomainCertStatus(ctx, "www.example.com", schema.CertIssued, nil); err != nil {
			t.Fatal(err)
		}
		if err := env.store.SetDomainCertStatus(ctx, "shop.example.net", schema.CertFailed,
			errors.New("acme: error: 400 :: urn:ietf:params:acme:error:dns :: <no A record>")); err != nil {
			t.Fatal(err)
		}
		r := b.get("/projects/blog/settings")
		mustContain(t, r.body, `data-status="issued"`, "Issued", `data-status="failed"`, "Failed",
			`class="small err-text cert-error">acme: error: 400 :: urn:ietf:params:acme:error:dns :: &lt;no A record&gt;</p>`,
			"checked <time")
		if strings.Contains(r.body, "client.example.org") {
			t.Error("another project's domain is listed")
		}
	})
	t.Run("cross-site", func(t *testing.T) {
		b.origin = "http://blog.example.com"
		defer func() { b.origin = "http://example.com" }()
		if r := b.post("/projects/blog/domains", url.Values{"domain": {"evil.example.com"}}); r.code != http.StatusForbidden {
			t.Errorf("cross-site add = %d", r.code)
		}
		if r := b.post("/projects/blog/domains/delete", url.Values{"domain": {"www.example.com"}}); r.code != http.StatusForbidden {
			t.Errorf("cross-site remove = %d", r.code)
		}
		ds, err := env.store.ListDomains(ctx, p.ID)
		if err != nil || len(ds) != 2 {
			t.Fatalf("after refused requests: %+v, %v", ds, err)
		}
	})
	t.Run("remove", func(t *testing.T) {
		r := b.get("/projects/blog/settings")
		mustContain(t, r.body, `action="/projects/blog/domains/delete"`, `data-confirm="Remove www.example.com from blog?`,
			`name="domain" value="www.example.com"`)
		r = b.follow("/projects/blog/domains/delete", url.Values{"domain": {"www.example.com"}})
		mustContain(t, r.body, "Removed www.example.com from blog.")
		r = b.follow("/projects/blog/domains/delete", url.Values{"domain": {"www.example.com"}})
		mustContain(t, r.body, "www.example.com is not a domain of blog.", "flash-error")
		r = b.follow("/projects/blog/domains/delete", url.Values{"domain": {"client.example.org"}})
		mustContain(t, r.body, "client.example.org is not a domain of blog.")
		if got, err := env.store.DomainProject(ctx, "client.example.org"); err != nil || got != "secretclient" {
			t.Fatalf("another project's domain after a removal from blog: %q, %v", got, err)
		}
	})
}

// TestBrowserDomainAddRemove drives the domains section in headless
// Chromium: the add form, then Remove, which asks first: Cancel keeps the
// domain, Confirm removes it.
func TestBrowserDomainAddRemove(t *testing.T) {
	t.Parallel()
	env := newEnv(t, false, nil)
	p := env.project("blog")
	ctx := newChromium(t)
	listed := func() []schema.Domain {
		t.Helper()
		ds, err := env.store.ListDomains(context.Background(), p.ID)
		if err != nil {
			t.Fatal(err)
		}
		return ds
	}
	remove := `form[action="/projects/blog/domains/delete"] button`
	if err := chromedp.Do(ctx, append(env.signIn("/projects/blog/settings", "#domain"),
		chromedp.SetValue(chromedp.CSS("#domain"), "Shop.Example.com"),
		chromedp.Submit(chromedp.CSS("#domain")),
		chromedp.WaitVisible(chromedp.CSS(remove)),
	)...); err != nil {
		t.Fatalf("add a domain: %v", err)
	}
	flash, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(".flash")))
	if err != nil || !strings.Contains(flash, "shop.example.com now serves blog") {
		t.Fatalf("flash after adding %q, %v", flash, err)
	}
	if ds := listed(); len(ds) != 1 || ds[0].Name != "shop.example.com" {
		t.Fatalf("stored %+v", ds)
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(remove)),
		chromedp.WaitVisible(chromedp.CSS("#confirm-dialog[open]")),
		chromedp.Click(chromedp.CSS(`#confirm-dialog button[value="cancel"]`)),
		chromedp.WaitNotPresent(chromedp.CSS("#confirm-dialog[open]")),
	); err != nil {
		t.Fatalf("cancel the removal: %v", err)
	}
	if ds := listed(); len(ds) != 1 {
		t.Fatalf("a canceled removal removed the domain: %+v", ds)
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(remove)),
		chromedp.WaitVisible(chromedp.CSS("#confirm-dialog[open]")),
		chromedp.Click(chromedp.CSS("#confirm-ok")),
		chromedp.WaitVisible(chromedp.CSS(".domains-empty")),
	); err != nil {
		t.Fatalf("confirm the removal: %v", err)
	}
	flash, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS(".flash")))
	if err != nil || !strings.Contains(flash, "Removed shop.example.com from blog.") {
		t.Fatalf("flash after removing %q, %v", flash, err)
	}
	if ds := listed(); len(ds) != 0 {
		t.Fatalf("still stored after removal: %+v", ds)
	}
}
