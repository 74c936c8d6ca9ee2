package apijson

import (
	"testing"
	"time"

	"minivercel/hosts"
	"minivercel/schema"
)

// TestDomainURLScheme: a domain's URL takes the scheme and port of the
// server's own URLs.
func TestDomainURLScheme(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		url  func(string) string
		want string
	}{
		{"https", func(h string) string { return "https://" + h + "/" }, "https://www.example.com/"},
		{"http on a port", func(h string) string { return "http://" + h + ":8080/" }, "http://www.example.com:8080/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := URLs{Hosts: hosts.New("example.com"), URL: tc.url}
			if got := NewDomain(schema.Domain{Name: "www.example.com"}, u).URL; got != tc.want {
				t.Errorf("url %q, want %q", got, tc.want)
			}
		})
	}
}

// TestBuildURLsAndDuration: a build has its own URL, a branch URL unless
// it is of the production branch, and a duration once it started.
func TestBuildURLsAndDuration(t *testing.T) {
	t.Parallel()
	u := URLs{Hosts: hosts.New("example.com"), URL: func(h string) string { return "https://" + h + "/" }}
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b := schema.Build{ID: 7, ProjectName: "blog", Slug: "abcdefghij12", Branch: "feature-x", StartedAt: &start}
	j := NewBuild(b, false, "main", u, start.Add(1500*time.Millisecond))
	if j.URL != "https://blog--abcdefghij12.example.com/" || j.BranchURL == nil || *j.BranchURL != "https://blog--git-feature-x.example.com/" {
		t.Errorf("urls %q, %v", j.URL, j.BranchURL)
	}
	if j.DurationMS == nil || *j.DurationMS != 1500 {
		t.Errorf("duration %v, want 1500 ms so far", j.DurationMS)
	}
	b.Branch = "main"
	if j := NewBuild(b, true, "main", u, start); j.BranchURL != nil || !j.Active {
		t.Errorf("production build: branch url %v, active %v", j.BranchURL, j.Active)
	}
}
