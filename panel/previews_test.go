package panel

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"minivercel/deploy"
	"minivercel/hosts"
	"minivercel/internal/testenv"
	"minivercel/schema"
)

// finishedBuild records a build of branch that ended with status, without
// running it; a succeeded one gets an artifact, as the edge needs one to
// serve it.
func (e *testEnv) finishedBuild(p schema.Project, branch string, status schema.BuildStatus) schema.Build {
	e.t.Helper()
	ctx := context.Background()
	b, err := e.store.CreateBuild(ctx, schema.NewBuild{ProjectID: p.ID, Branch: branch, CommitSHA: strings.Repeat("b", 40)})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.StartBuild(ctx, b.ID); err != nil {
		e.t.Fatal(err)
	}
	if status == schema.BuildSucceeded {
		if err := e.store.SetBuildArtifact(ctx, b.ID, schema.Artifact{Kind: "static", Path: "/nonexistent.tar.gz", SHA256: "00"}); err != nil {
			e.t.Fatal(err)
		}
	}
	if err := e.store.FinishBuild(ctx, b.ID, status, ""); err != nil {
		e.t.Fatal(err)
	}
	if b, err = e.store.BuildByID(ctx, b.ID); err != nil {
		e.t.Fatal(err)
	}
	return b
}

// orNull shows an optional URL as JSON does; "" counts as null.
func orNull(u *string) string {
	if u == nil || *u == "" {
		return "null"
	}
	return *u
}

// previewURL is what the push output prints for a branch preview
// (pipeline.Queue.BranchHost), in the harness's URL form.
func previewURL(project, branch string) string {
	return "http://" + project + "--git-" + hosts.BranchSlug(branch) + "." + testBaseDomain + "/"
}

// TestAPIBranchURLs: builds of other branches carry the branch preview URL
// beside their own, production builds carry null, and the project detail
// lists one preview per branch with a succeeded build, its latest. Which
// branch is production is read at request time.
func TestAPIBranchURLs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, nil)
	p := e.project("shop")
	prod := e.finishedBuild(p, "main", schema.BuildSucceeded)
	feat := e.finishedBuild(p, "feature/New-Checkout", schema.BuildSucceeded)
	featFailed := e.finishedBuild(p, "feature/New-Checkout", schema.BuildFailed)
	onlyFailed := e.finishedBuild(p, "broken", schema.BuildFailed)
	noSlug := e.finishedBuild(p, "_", schema.BuildSucceeded)
	featURL := "http://shop--git-feature-new-checkout." + testBaseDomain + "/"

	var bs []buildJSON
	e.call("GET", "/api/projects/shop/builds", nil, http.StatusOK, &bs)
	got := map[int64]buildJSON{}
	for _, b := range bs {
		got[b.ID] = b
	}
	for _, tc := range []struct {
		name string
		b    schema.Build
		want string // "" for null
	}{
		{"production", prod, ""},
		{"branch", feat, featURL},
		{"failed build of a branch with a preview", featFailed, featURL},
		{"branch without a succeeded build", onlyFailed, "http://shop--git-broken." + testBaseDomain + "/"},
		{"branch without letters or digits", noSlug, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := got[tc.b.ID]
			if got := orNull(j.BranchURL); got != orNull(&tc.want) {
				t.Errorf("listed branch_url %s, want %s", got, orNull(&tc.want))
			}
			if want := "http://shop--" + tc.b.Slug + "." + testBaseDomain + "/"; j.URL != want {
				t.Errorf("url %q, want %q", j.URL, want)
			}
			var one buildJSON
			e.call("GET", "/api/builds/"+strconv.FormatInt(tc.b.ID, 10), nil, http.StatusOK, &one)
			if orNull(one.BranchURL) != orNull(j.BranchURL) {
				t.Errorf("GET /api/builds/%d branch_url %s, listed %s", tc.b.ID, orNull(one.BranchURL), orNull(j.BranchURL))
			}
		})
	}
	if _, data, _ := e.request("GET", "/api/builds/"+strconv.FormatInt(prod.ID, 10), e.token, nil); !strings.Contains(string(data), `"branch_url":null`) {
		t.Errorf("a production build's branch_url is not null: %s", data)
	}

	var d struct {
		PreviewURLs []previewURLJSON `json:"preview_urls"`
	}
	e.call("GET", "/api/projects/shop", nil, http.StatusOK, &d)
	if len(d.PreviewURLs) != 1 || d.PreviewURLs[0] != (previewURLJSON{Branch: "feature/New-Checkout", URL: featURL, BuildID: feat.ID}) {
		t.Fatalf("preview_urls %+v", d.PreviewURLs)
	}

	t.Run("production branch changed", func(t *testing.T) {
		e.call("PATCH", "/api/projects/shop", map[string]string{"production_branch": "feature/New-Checkout"}, http.StatusOK, &d)
		if len(d.PreviewURLs) != 1 || d.PreviewURLs[0].Branch != "main" || d.PreviewURLs[0].BuildID != prod.ID ||
			d.PreviewURLs[0].URL != "http://shop--git-main."+testBaseDomain+"/" {
			t.Fatalf("preview_urls after the change %+v", d.PreviewURLs)
		}
		var one buildJSON
		e.call("GET", "/api/builds/"+strconv.FormatInt(feat.ID, 10), nil, http.StatusOK, &one)
		if one.BranchURL != nil {
			t.Errorf("the new production branch's build has branch_url %q", *one.BranchURL)
		}
	})
	t.Run("no previews", func(t *testing.T) {
		e.project("solo")
		code, data, _ := e.request("GET", "/api/projects/solo", e.token, nil)
		if code != http.StatusOK || !strings.Contains(string(data), `"preview_urls":[]`) {
			t.Fatalf("a project without previews: %d %s", code, data)
		}
	})
}

// TestProjectPagePreviews: the Previews card lists each branch's preview URL
// with its latest build; build rows of that branch link it, production rows
// do not; a project without previews says how to get one.
func TestProjectPagePreviews(t *testing.T) {
	t.Parallel()
	env := newPageEnv(t)
	b := env.loggedIn()
	p := env.project("blog")
	r := b.get("/projects/blog")
	mustContain(t, r.body, `id="previews-title"`, "Push a branch other than")

	env.build(p, "main", "prod", schema.BuildSucceeded)
	old := env.build(p, "Feature/Dark_Mode", "first try", schema.BuildSucceeded)
	latest := env.build(p, "Feature/Dark_Mode", "second try", schema.BuildSucceeded)
	env.build(p, "wip", "never built", schema.BuildFailed)
	r = b.get("/projects/blog")
	const branchURL = "http://blog--git-feature-dark-mode.localhost/"
	mustContain(t, r.body,
		`<span class="branch">Feature/Dark_Mode</span> <a class="host" href="`+branchURL+`"`,
		`<a href="/builds/`+strconv.FormatInt(latest.ID, 10)+`">Build #`+strconv.FormatInt(latest.ID, 10)+`</a>`,
		`class="host small branch-url" href="`+branchURL+`"`,
		"http://blog--"+old.Slug+".localhost/")
	if n := strings.Count(r.body, `class="host small branch-url"`); n != 2 {
		t.Errorf("%d build rows link a branch URL, want the 2 of Feature/Dark_Mode", n)
	}
	for _, absent := range []string{"blog--git-main", "blog--git-wip", "Push a branch other than"} {
		if strings.Contains(r.body, absent) {
			t.Errorf("page has %q", absent)
		}
	}
}

// branchName draws branch names git accepts (deploy.ValidateBranch), of every shape
// BranchSlug must handle: mixed case, separators, runs of them, non-ASCII,
// and names with no letter or digit at all.
func branchName() *rapid.Generator[string] {
	return rapid.OneOf(
		rapid.StringMatching(`[A-Za-z0-9][A-Za-z0-9._/-]{0,60}`),
		rapid.StringMatching(`[a-zé€_-]{1,12}(/[A-Za-z0-9_]{1,12}){0,2}`),
		rapid.StringMatching(`[_-]{1,4}`),
	).Filter(func(s string) bool { return deploy.ValidateBranch(s) == nil && s != "main" })
}

// TestPreviewURLDisplayProperty is the seed's Property 18 (preview URL
// display): for every succeeded build of a branch other than production,
// the builds JSON and the project page show
// <project>--git-<BranchSlug(branch)>.<base>, and the project detail lists
// it with the branch's latest succeeded build; production builds have none.
// A branch whose slug is empty has no host at all, so neither shows one.
func TestPreviewURLDisplayProperty(t *testing.T) {
	testenv.Checks(t, 40)
	e := newEnv(t, false, nil)
	b := &browser{t: t, srv: e.srv, cookies: map[string]string{sessionCookie: e.token}}
	n := 0
	rapid.Check(t, func(rt *rapid.T) {
		n++
		name := "prop" + strconv.Itoa(n)
		p := e.project(name)
		type drawn struct {
			branch string
			status schema.BuildStatus
		}
		steps := rapid.SliceOfN(rapid.Custom(func(rt *rapid.T) drawn {
			br := rapid.OneOf(rapid.Just("main"), branchName()).Draw(rt, "branch")
			st := rapid.SampledFrom([]schema.BuildStatus{schema.BuildSucceeded, schema.BuildFailed}).Draw(rt, "status")
			return drawn{br, st}
		}), 1, 6).Draw(rt, "builds")
		latest := map[string]int64{} // branch → latest succeeded build
		var builds []schema.Build
		for _, s := range steps {
			bl := e.finishedBuild(p, s.branch, s.status)
			builds = append(builds, bl)
			if s.status == schema.BuildSucceeded && s.branch != "main" && hosts.BranchSlug(s.branch) != "" {
				latest[s.branch] = bl.ID
			}
		}

		var listed []buildJSON
		code, data, _ := e.request("GET", "/api/projects/"+name+"/builds", e.token, nil)
		if code != http.StatusOK || json.Unmarshal(data, &listed) != nil {
			rt.Fatalf("builds: %d %s", code, data)
		}
		byID := map[int64]buildJSON{}
		for _, j := range listed {
			byID[j.ID] = j
		}
		page := b.get("/projects/" + name)
		if page.code != http.StatusOK {
			rt.Fatalf("project page = %d", page.code)
		}
		for _, bl := range builds {
			j := byID[bl.ID]
			switch {
			case bl.Branch == "main":
				if j.BranchURL != nil {
					rt.Fatalf("production build %d has branch_url %q", bl.ID, *j.BranchURL)
				}
			case hosts.BranchSlug(bl.Branch) == "":
				if j.BranchURL != nil {
					rt.Fatalf("build %d of %q (empty slug) has branch_url %q", bl.ID, bl.Branch, *j.BranchURL)
				}
			case bl.Status == schema.BuildSucceeded:
				want := previewURL(name, bl.Branch)
				if j.BranchURL == nil || *j.BranchURL != want {
					rt.Fatalf("build %d of %q: branch_url %s, want %q", bl.ID, bl.Branch, orNull(j.BranchURL), want)
				}
				if !strings.Contains(page.body, `href="`+want+`"`) {
					rt.Fatalf("the project page lacks %q for %q", want, bl.Branch)
				}
			}
		}
		if strings.Contains(page.body, name+"--git-main.") || strings.Contains(page.body, name+"--git-.") {
			rt.Fatalf("the project page shows a preview of production or an empty slug")
		}

		var d struct {
			PreviewURLs []previewURLJSON `json:"preview_urls"`
		}
		code, data, _ = e.request("GET", "/api/projects/"+name, e.token, nil)
		if code != http.StatusOK || json.Unmarshal(data, &d) != nil {
			rt.Fatalf("project: %d %s", code, data)
		}
		if len(d.PreviewURLs) != len(latest) {
			rt.Fatalf("preview_urls %+v, want one for each of %v", d.PreviewURLs, latest)
		}
		for _, pv := range d.PreviewURLs {
			if id, ok := latest[pv.Branch]; !ok || pv.BuildID != id || pv.URL != previewURL(name, pv.Branch) {
				rt.Fatalf("preview %+v, want build %d at %q", pv, latest[pv.Branch], previewURL(name, pv.Branch))
			}
		}
	})
}
