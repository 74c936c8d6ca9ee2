package schema_test

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"minivercel/schema"
	"minivercel/schema/schematest"
)

func TestValidateDomain(t *testing.T) {
	t.Parallel()
	long63 := strings.Repeat("a", 63)
	// A case validates in against base. want is the normalised name, or for
	// a bad name a fragment of the error ("": any error wrapping ErrInvalid).
	type domainCase struct {
		name, in, base string
		wildcard       bool
		want           string
	}
	ok := []domainCase{
		{"lowercased", "Shop.Example.COM", "apps.test", false, "shop.example.com"},
		{"trailing dot", "example.com.", "apps.test", false, "example.com"},
		{"idn to punycode", "bücher.de", "apps.test", false, "xn--bcher-kva.de"},
		{"punycode kept", "xn--bcher-kva.de", "apps.test", false, "xn--bcher-kva.de"},
		{"idn uppercase mapped", "BÜCHER.de", "apps.test", false, "xn--bcher-kva.de"},
		{"hyphens and digits", "my-shop2.example.co.uk", "apps.test", false, "my-shop2.example.co.uk"},
		{"63-byte label", long63 + ".com", "apps.test", false, long63 + ".com"},
		{"wildcard allowed", "*.Example.com", "apps.test", true, "*.example.com"},
		{"sibling of base", "shop.test", "apps.test", false, "shop.test"},
		{"base suffix but other label", "myapps.test", "apps.test", false, "myapps.test"},
		{"no base given", "x.apps.test", "", false, "x.apps.test"},
	}
	for _, c := range ok {
		t.Run("ok/"+c.name, func(t *testing.T) {
			got, err := schema.ValidateDomain(c.in, c.base, c.wildcard)
			if err != nil || got != c.want {
				t.Fatalf("ValidateDomain(%q) = %q, %v; want %q", c.in, got, err, c.want)
			}
		})
	}
	labels := strings.Repeat(long63+".", 4) // 256 bytes
	bad := []domainCase{
		{"empty", "", "apps.test", false, "empty"},
		{"one label", "localhost", "apps.test", false, "two labels"},
		{"ipv4", "127.0.0.1", "apps.test", false, "IP address"},
		{"ipv4 trailing dot", "10.0.0.1.", "apps.test", false, "IP address"},
		{"ipv6", "::1", "apps.test", false, "IP address"},
		{"bracketed ipv6", "[2001:db8::1]", "apps.test", false, "IP address"},
		{"short ipv4", "127.1", "apps.test", false, "number"},
		{"hex ipv4", "0x7f.0x1", "apps.test", false, "number"},
		{"numeric tld", "example.123", "apps.test", false, "number"},
		{"wildcard refused", "*.example.com", "apps.test", false, "wildcard"},
		{"inner wildcard", "a.*.example.com", "apps.test", true, "'*'"},
		{"partial wildcard", "shop*.example.com", "apps.test", true, "'*'"},
		{"leading hyphen", "-shop.example.com", "apps.test", false, ""},
		{"trailing hyphen", "shop-.example.com", "apps.test", false, ""},
		{"underscore", "my_shop.example.com", "apps.test", false, ""},
		{"empty label", "shop..example.com", "apps.test", false, ""},
		{"leading dot", ".example.com", "apps.test", false, ""},
		{"port", "example.com:443", "apps.test", false, ""},
		{"space", "exa mple.com", "apps.test", false, ""},
		{"slash", "example.com/path", "apps.test", false, ""},
		{"64-byte label", long63 + "a.com", "apps.test", false, "63"},
		{"too long", labels + "com", "apps.test", false, "253"},
		{"base itself", "apps.test", "apps.test", false, "platform"},
		{"base itself any case", "APPS.test.", "apps.test", false, "platform"},
		{"project host", "blog.apps.test", "apps.test", false, "platform"},
		{"build host", "blog--c1r0wkhmjfcc.apps.test", "apps.test", false, "platform"},
		{"wildcard under base", "*.apps.test", "apps.test", true, "platform"},
		{"wildcard covering base", "*.test", "apps.test", true, "platform"},
	}
	for _, c := range bad {
		t.Run("bad/"+c.name, func(t *testing.T) {
			got, err := schema.ValidateDomain(c.in, c.base, c.wildcard)
			if err == nil {
				t.Fatalf("ValidateDomain(%q) = %q, want an error", c.in, got)
			}
			if !errors.Is(err, schema.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not say %q", err, c.want)
			}
		})
	}
}

// hostish draws strings that are often close to valid host names, IP
// addresses in several spellings, and sometimes arbitrary text.
func hostish() *rapid.Generator[string] {
	label := rapid.StringMatching(`[a-zA-Z0-9ü*_-]{0,70}|xn--[a-z0-9]{1,10}|[0-9]{1,3}|0x[0-9a-f]{1,4}`)
	structured := rapid.Custom(func(t *rapid.T) string {
		ls := rapid.SliceOfN(label, 1, 6).Draw(t, "labels")
		s := strings.Join(ls, ".")
		if rapid.Bool().Draw(t, "dot") {
			s += "."
		}
		return s
	})
	return rapid.OneOf(structured, ipString(), rapid.String(), rapid.StringN(240, 300, -1))
}

func ipString() *rapid.Generator[string] {
	return rapid.Custom(func(t *rapid.T) string {
		var a netip.Addr
		if rapid.Bool().Draw(t, "v6") {
			a = netip.AddrFrom16([16]byte(rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(t, "b16")))
		} else {
			a = netip.AddrFrom4([4]byte(rapid.SliceOfN(rapid.Byte(), 4, 4).Draw(t, "b4")))
		}
		s := a.String()
		switch rapid.IntRange(0, 2).Draw(t, "form") {
		case 1:
			if a.Is6() {
				s = "[" + s + "]"
			}
		case 2:
			if a.Is4() {
				s += "."
			}
		}
		return s
	})
}

// TestValidateDomainProperties: whatever it accepts is no IP address, at
// most 253 bytes with labels of at most 63, and accepted unchanged again.
func TestValidateDomainProperties(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		wildcard := rapid.Bool().Draw(t, "wildcard")
		in := hostish().Draw(t, "in")
		out, err := schema.ValidateDomain(in, "apps.test", wildcard)
		if err != nil {
			if !errors.Is(err, schema.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if _, perr := netip.ParseAddr(strings.Trim(out, "[]")); perr == nil {
			t.Fatalf("accepted IP address %q as %q", in, out)
		}
		if len(out) > 253 {
			t.Fatalf("accepted %d bytes: %q", len(out), out)
		}
		for _, l := range strings.Split(out, ".") {
			if len(l) == 0 || len(l) > 63 {
				t.Fatalf("label %q of %q", l, out)
			}
		}
		if out != strings.ToLower(out) || strings.HasSuffix(out, ".") {
			t.Fatalf("not normalised: %q", out)
		}
		again, err := schema.ValidateDomain(out, "apps.test", wildcard)
		if err != nil || again != out {
			t.Fatalf("not idempotent: %q → %q → %q, %v", in, out, again, err)
		}
	})
	rapid.Check(t, func(t *rapid.T) {
		ip := ipString().Draw(t, "ip")
		if out, err := schema.ValidateDomain(ip, "apps.test", true); err == nil {
			t.Fatalf("accepted IP %q as %q", ip, out)
		}
	})
}

func TestDomains(t *testing.T) {
	ctx, store, blog := schematest.ProjectTest(t, "blog")
	shop := schematest.Project(t, store, "shop")

	d, err := store.AddDomain(ctx, blog.ID, "blog.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if d.ProjectID != blog.ID || d.ProjectName != "blog" || d.CertStatus != schema.CertPending || d.CertError != "" || d.CertCheckedAt != nil {
		t.Fatalf("added %+v", d)
	}
	t.Run("same project again is the same domain", func(t *testing.T) {
		again, err := store.AddDomain(ctx, blog.ID, "blog.example.com")
		if err != nil || again.ID != d.ID {
			t.Fatalf("re-add: %+v, %v", again, err)
		}
	})
	t.Run("another project's domain is a conflict that names no project", func(t *testing.T) {
		_, err := store.AddDomain(ctx, shop.ID, "blog.example.com")
		if !errors.Is(err, schema.ErrConflict) {
			t.Fatalf("err = %v, want ErrConflict", err)
		}
		if strings.Contains(err.Error(), "blog\"") || strings.Contains(err.Error(), "project blog") {
			t.Fatalf("error names the owner: %v", err)
		}
	})
	t.Run("invalid names are refused by the database too", func(t *testing.T) {
		if _, err := store.AddDomain(ctx, shop.ID, "Upper.Example.com"); !errors.Is(err, schema.ErrInvalid) {
			t.Fatalf("err = %v, want ErrInvalid", err)
		}
	})
	if _, err := store.AddDomain(ctx, shop.ID, "*.shop.example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.AddDomain(ctx, shop.ID, "a.shop.example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.AddDomain(ctx, blog.ID, "b.shop.example.com"); err != nil {
		t.Fatal(err)
	}
	t.Run("routing", func(t *testing.T) {
		for host, want := range map[string]string{
			"blog.example.com":        "blog",
			"a.shop.example.com":      "shop",
			"b.shop.example.com":      "blog", // exact beats wildcard
			"zz.shop.example.com":     "shop", // wildcard
			"x.zz.shop.example.com":   "",     // a wildcard covers one label only
			"shop.example.com":        "",
			"example.com":             "",
			"other.example.com":       "",
			"blog.example.com.evil.x": "",
		} {
			got, err := store.DomainProject(ctx, host)
			known, kerr := store.DomainKnown(ctx, host)
			if kerr != nil {
				t.Fatal(kerr)
			}
			if want == "" {
				if !errors.Is(err, schema.ErrNotFound) || known {
					t.Errorf("%s: project %q, %v, known %v; want not found", host, got, err, known)
				}
				continue
			}
			if err != nil || got != want || !known {
				t.Errorf("%s: project %q, %v, known %v; want %q", host, got, err, known, want)
			}
		}
	})
	t.Run("list", func(t *testing.T) {
		ds, err := store.ListDomains(ctx, shop.ID)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, d := range ds {
			names = append(names, d.Name)
		}
		if fmt.Sprint(names) != "[*.shop.example.com a.shop.example.com]" {
			t.Fatalf("shop's domains: %v", names)
		}
	})
	t.Run("cert status", func(t *testing.T) {
		if err := store.SetDomainCertStatus(ctx, "blog.example.com", schema.CertFailed,
			errors.New("acme: error 400\n  urn:ietf:params:acme:error:dns: NXDOMAIN")); err != nil {
			t.Fatal(err)
		}
		byName := func(name string) schema.Domain {
			ds, err := store.ListDomains(ctx, blog.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range ds {
				if d.Name == name {
					return d
				}
			}
			t.Fatalf("no domain %s", name)
			return schema.Domain{}
		}
		got := byName("blog.example.com")
		if got.Name != "blog.example.com" || got.CertStatus != schema.CertFailed || got.CertCheckedAt == nil ||
			got.CertError != "acme: error 400 urn:ietf:params:acme:error:dns: NXDOMAIN" {
			t.Fatalf("after failure: %+v", got)
		}
		if err := store.SetDomainCertStatus(ctx, "blog.example.com", schema.CertIssued, nil); err != nil {
			t.Fatal(err)
		}
		if got := byName("blog.example.com"); got.CertStatus != schema.CertIssued || got.CertError != "" {
			t.Fatalf("after issue: %+v", got)
		}
		if err := store.SetDomainCertStatus(ctx, "blog.apps.test", schema.CertIssued, nil); err != nil {
			t.Fatalf("a host that is no domain: %v", err)
		}
		if err := store.SetDomainCertStatus(ctx, "blog.example.com", "great", nil); !errors.Is(err, schema.ErrInvalid) {
			t.Fatalf("bad status: %v", err)
		}
	})
	t.Run("remove is scoped to the project", func(t *testing.T) {
		if err := store.RemoveDomain(ctx, shop.ID, "blog.example.com"); !errors.Is(err, schema.ErrNotFound) {
			t.Fatalf("shop removing blog's domain: %v", err)
		}
		if err := store.RemoveDomain(ctx, blog.ID, "blog.example.com"); err != nil {
			t.Fatal(err)
		}
		if known, _ := store.DomainKnown(ctx, "blog.example.com"); known {
			t.Fatal("removed domain still known")
		}
		if _, err := store.AddDomain(ctx, shop.ID, "blog.example.com"); err != nil {
			t.Fatalf("a freed domain can be taken: %v", err)
		}
	})
	t.Run("deleting a project deletes its domains", func(t *testing.T) {
		if _, err := store.Pool().Exec(ctx, `DELETE FROM projects WHERE id = $1`, shop.ID); err != nil {
			t.Fatal(err)
		}
		if known, _ := store.DomainKnown(ctx, "a.shop.example.com"); known {
			t.Fatal("domain of a deleted project still known")
		}
	})
}
