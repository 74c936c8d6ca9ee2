package hosts

import (
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func TestParse(t *testing.T) {
	s := New("Example.COM.")
	for _, tc := range []struct {
		host string
		want Host
	}{
		{"example.com", Host{Kind: Base, Name: "example.com"}},
		{"EXAMPLE.com:8080", Host{Kind: Base, Name: "example.com"}},
		{"blog.example.com", Host{Kind: Production, Project: "blog", Name: "blog.example.com"}},
		{"blog.example.com.", Host{Kind: Production, Project: "blog", Name: "blog.example.com"}},
		{"blog--c1r0wkhmjfcc.example.com", Host{Kind: Build, Project: "blog", Slug: "c1r0wkhmjfcc", Name: "blog--c1r0wkhmjfcc.example.com"}},
		{"blog--git-feature-x.example.com", Host{Kind: Branch, Project: "blog", Slug: "feature-x", Name: "blog--git-feature-x.example.com"}},
		{"my-app--git-main.example.com", Host{Kind: Branch, Project: "my-app", Slug: "main", Name: "my-app--git-main.example.com"}},
		// A project cannot contain "--": the first one splits.
		{"a--b--c1r0wkhmjfcc.example.com", Host{Kind: Unknown, Name: "a--b--c1r0wkhmjfcc.example.com"}},
		{"blog--short.example.com", Host{Kind: Unknown, Name: "blog--short.example.com"}},
		{"blog--git-.example.com", Host{Kind: Unknown, Name: "blog--git-.example.com"}},
		{"blog--git-a--b.example.com", Host{Kind: Unknown, Name: "blog--git-a--b.example.com"}},
		{"--c1r0wkhmjfcc.example.com", Host{Kind: Unknown, Name: "--c1r0wkhmjfcc.example.com"}},
		{"a.b.example.com", Host{Kind: Unknown, Name: "a.b.example.com"}},
		{"admin.example.com", Host{Kind: Unknown, Name: "admin.example.com"}},
		{"www.shop.test", Host{Kind: Custom, Name: "www.shop.test"}},
		{"127.0.0.1", Host{Kind: Unknown, Name: "127.0.0.1"}},
		{"[::1]:80", Host{Kind: Unknown, Name: "[::1]"}},
		{"under_score.test", Host{Kind: Unknown, Name: "under_score.test"}},
	} {
		t.Run(tc.host, func(t *testing.T) {
			if got := s.Parse(tc.host); got != tc.want {
				t.Fatalf("Parse(%q) = %+v, want %+v", tc.host, got, tc.want)
			}
		})
	}
}

func TestBuildersAgreeWithParse(t *testing.T) {
	s := New("localhost")
	if got := s.Production("blog"); got != "blog.localhost" {
		t.Fatalf("Production = %q", got)
	}
	if got := s.Build("blog", "c1r0wkhmjfcc"); got != "blog--c1r0wkhmjfcc.localhost" {
		t.Fatalf("Build = %q", got)
	}
	if got := s.Branch("blog", "feature/New-Checkout"); got != "blog--git-feature-new-checkout.localhost" {
		t.Fatalf("Branch = %q", got)
	}
	if got := s.Branch("blog", "///"); got != "" {
		t.Fatalf("Branch of a slugless branch = %q, want empty", got)
	}
}

func TestPreviewPath(t *testing.T) {
	for _, tc := range []struct {
		path string
		id   int64
		rest string
		ok   bool
	}{
		{"/preview/7", 7, "", true},
		{"/preview/7/", 7, "/", true},
		{"/preview/7/a/b?x", 7, "/a/b?x", true},
		{"/preview/07/", 0, "", false},
		{"/preview/+7/", 0, "", false},
		{"/preview/0/", 0, "", false},
		{"/preview//", 0, "", false},
		{"/preview/99999999999999999999/", 0, "", false},
		{"/other/7/", 0, "", false},
	} {
		id, rest, ok := ParsePreviewPath(tc.path)
		if id != tc.id || rest != tc.rest || ok != tc.ok {
			t.Errorf("ParsePreviewPath(%q) = %d, %q, %v; want %d, %q, %v", tc.path, id, rest, ok, tc.id, tc.rest, tc.ok)
		}
	}
	if got := PreviewPath(12); got != "/preview/12" {
		t.Fatalf("PreviewPath = %q", got)
	}
}

// genProject draws valid project names, hyphens included.
func genProject() *rapid.Generator[string] {
	return rapid.Custom(func(t *rapid.T) string {
		parts := rapid.SliceOfN(rapid.StringMatching(`[a-z0-9]{1,8}`), 1, 4).Draw(t, "parts")
		name := strings.Join(parts, "-")
		if ValidateProject(name) != nil {
			t.Skip("reserved")
		}
		return name
	})
}

// TestHostRoundTrip: every host the scheme builds parses back to what built
// it, whatever the project, slug, branch and base domain, and a host that
// parses as a project form is exactly the one the builders make for it. The
// second half is what keeps one project from shadowing another's hosts.
func TestHostRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		base := rapid.SampledFrom([]string{"localhost", "example.com", "a-b.c.test"}).Draw(t, "base")
		s := New(base)
		project := genProject().Draw(t, "project")
		slug := rapid.StringMatching(`[a-z0-9]{10,16}`).Draw(t, "slug")
		branch := rapid.String().Draw(t, "branch")

		if h := s.Parse(s.Production(project)); h.Kind != Production || h.Project != project {
			t.Fatalf("production host of %q parsed as %+v", project, h)
		}
		if h := s.Parse(s.Build(project, slug)); h.Kind != Build || h.Project != project || h.Slug != slug {
			t.Fatalf("build host %q parsed as %+v", s.Build(project, slug), h)
		}
		if bh := s.Branch(project, branch); bh != "" {
			h := s.Parse(bh)
			if h.Kind != Branch || h.Project != project || h.Slug != BranchSlug(branch) {
				t.Fatalf("branch host %q of %q parsed as %+v", bh, branch, h)
			}
		}

		any := rapid.StringMatching(`[a-zA-Z0-9.-]{0,40}`).Draw(t, "label") + "." + base
		h := s.Parse(any)
		var rebuilt string
		switch h.Kind {
		case Production:
			rebuilt = s.Production(h.Project)
		case Build:
			rebuilt = s.Build(h.Project, h.Slug)
		case Branch:
			rebuilt = s.Branch(h.Project, h.Slug)
		default:
			return
		}
		if rebuilt != h.Name {
			t.Fatalf("%q parsed as %+v, which builds %q", any, h, rebuilt)
		}
	})
}

func TestBranchSlugIsAlwaysValid(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		slug := BranchSlug(rapid.String().Draw(t, "branch"))
		if slug != "" && !ValidBranchSlug(slug) {
			t.Fatalf("BranchSlug made %q, which ValidBranchSlug refuses", slug)
		}
		if BranchSlug(slug) != slug {
			t.Fatalf("BranchSlug is not idempotent on %q", slug)
		}
	})
}

// TestBranchHostFitsDNS: whatever the project's length and the branch, a
// branch host's label fits DNS's 63 characters and parses back; a label
// longer than that is no host of ours.
func TestBranchHostFitsDNS(t *testing.T) {
	s := New("example.com")
	rapid.Check(t, func(t *rapid.T) {
		project := rapid.StringMatching(`[a-z]([a-z0-9]|-[a-z0-9]){0,31}`).Draw(t, "project")
		if ValidateProject(project) != nil {
			t.Skip("reserved")
		}
		host := s.Branch(project, rapid.String().Draw(t, "branch"))
		if host == "" {
			return
		}
		label := strings.TrimSuffix(host, ".example.com")
		if len(label) > 63 {
			t.Fatalf("branch host %q has a %d-character label", host, len(label))
		}
		if h := s.Parse(host); h.Kind != Branch || h.Project != project {
			t.Fatalf("%q parsed as %+v", host, h)
		}
	})
	long := strings.Repeat("a", 50)
	if h := s.Parse(long + "--c1r0wkhmjfcc.example.com"); h.Kind != Unknown {
		t.Fatalf("a 64-character label parsed as %+v", h)
	}
}

// BenchmarkParse is the edge's per-request host parsing: it must not
// allocate, for real hosts or for a scanner's random ones.
func BenchmarkParse(b *testing.B) {
	s := New("example.com")
	for _, host := range []string{"blog.example.com", "blog--c1r0wkhmjfcc.example.com", "www.shop.test", "Bad_Host--x.example.com:8080"} {
		b.Run(host, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.Parse(host)
			}
		})
	}
}
