package deploy_test

import (
	"maps"
	"minivercel/deploy"
	"testing"

	"pgregory.net/rapid"

	"minivercel/hosts"
	"minivercel/schema"
)

// TestVariablePropagationToAppsProperty is Property 4 (variable propagation),
// the apps' half (the builds' half is the pipeline's): for any set of
// variables with targets, production's app is started with exactly the
// production and all-target values, a specific target winning over all, and
// a preview's process with the preview and all-target ones; a redeploy picks
// up a changed value, a running app does not.
func TestVariablePropagationToAppsProperty(t *testing.T) {
	ctx := t.Context()
	property(t, 8, "v", func(rt *rapid.T, e *env, p schema.Project) {
		name := p.Name
		// set[key][target] is the value last set for that target.
		set := map[string]map[string]string{}
		keys := rapid.SliceOfNDistinct(rapid.StringMatching(`V_[A-Z0-9_]{1,8}`), 1, 6, rapid.ID).Draw(rt, "keys")
		for _, k := range keys {
			set[k] = map[string]string{}
			targets := rapid.SampledFrom([][]string{{"all"}, {"production"}, {"preview"}, {"all", "production"}, {"preview", "all"}, {"production", "preview"}}).Draw(rt, "targets")
			for _, target := range targets {
				v := rapid.StringMatching(`[ -~]{0,30}`).Draw(rt, "value")
				if _, err := e.svc.SetVars(ctx, e.Admin, name, target, []deploy.Var{{Key: k, Value: v}}); err != nil {
					rt.Fatal(err)
				}
				set[k][target] = v
			}
		}
		want := map[string]map[string]string{}
		for _, side := range []string{schema.TargetProduction, schema.TargetPreview} {
			want[side] = map[string]string{}
			for k, byTarget := range set {
				if v, ok := byTarget[side]; ok {
					want[side][k] = v
				} else if v, ok := byTarget[schema.TargetAll]; ok {
					want[side][k] = v
				}
			}
		}
		prod := e.app(p, "main", 200)
		if _, err := e.svc.Activate(ctx, e.Admin, name, prod.ID); err != nil {
			rt.Fatal(err)
		}
		if got := e.appVars(name + "." + testBase); !maps.Equal(got, want[schema.TargetProduction]) {
			rt.Fatalf("production app has %v, want %v", got, want[schema.TargetProduction])
		}
		preview := e.app(p, "feature", 200)
		if got := e.appVars(hosts.New(testBase).Build(name, preview.Slug)); !maps.Equal(got, want[schema.TargetPreview]) {
			rt.Fatalf("preview app has %v, want %v", got, want[schema.TargetPreview])
		}

		if _, err := e.svc.SetVars(ctx, e.Admin, name, "production", []deploy.Var{{Key: keys[0], Value: "changed"}}); err != nil {
			rt.Fatal(err)
		}
		if got := e.appVars(name + "." + testBase); got[keys[0]] != want[schema.TargetProduction][keys[0]] {
			rt.Fatalf("a running app saw a changed value without a redeploy: %v", got)
		}
		if _, err := e.svc.Redeploy(ctx, e.Admin, name); err != nil {
			rt.Fatal(err)
		}
		if got := e.appVars(name + "." + testBase); got[keys[0]] != "changed" {
			rt.Fatalf("after a redeploy the app has %v", got)
		}
	})
}
