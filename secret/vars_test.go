package secret_test

import (
	"context"
	"sort"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"minivercel/schema"
	"minivercel/schema/schematest"
	"minivercel/secret"
)

func TestMain(m *testing.M) { schematest.Main(m) }

// newProject returns the queries on the test's own database, which holds one
// project, and that project's id.
func newProject(t *testing.T) (*schema.Store, int64) {
	t.Helper()
	store := schematest.Store(t)
	ctx := context.Background()
	u, err := store.CreateUser(ctx, "u", true)
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := store.EnsureProject(ctx, "envs", u.ID)
	if err != nil {
		t.Fatal(err)
	}
	return store, p.ID
}

func newVars(t *testing.T) (*secret.Vars, *schema.Store, int64) {
	t.Helper()
	store, project := newProject(t)
	keys, err := secret.LoadKeyring(secret.NewKey().String(), "")
	if err != nil {
		t.Fatal(err)
	}
	return secret.NewVars(store, keys), store, project
}

type varKey struct{ name, target string }

// TestEnvVarCRUD is the seed's Property 3 with Properties 4 and 5: after any
// sequence of sets and unsets, the listing has exactly the variables of a model
// with masked values, each target resolves to the model's merge (specific
// targets win over "all"), and the stored rows hold no value in plain text.
func TestEnvVarCRUD(t *testing.T) {
	t.Parallel()
	vars, store, project := newVars(t)
	ctx := context.Background()
	model := map[varKey]string{}
	names := []string{"API_KEY", "DATABASE_URL", "GREETING", "_private", "X1"}
	targets := []string{"all", "production", "preview"}
	rapid.Check(t, func(rt *rapid.T) {
		for step := 0; step < 5; step++ {
			k := varKey{rapid.SampledFrom(names).Draw(rt, "name"), rapid.SampledFrom(targets).Draw(rt, "target")}
			if rapid.Bool().Draw(rt, "set") {
				v := rapid.StringMatching(`[ -~]{0,40}`).Draw(rt, "value")
				if _, err := vars.Set(ctx, project, k.name, k.target, v); err != nil {
					rt.Fatal(err)
				}
				model[k] = v
			} else {
				err := vars.Unset(ctx, project, k.name, k.target)
				if _, ok := model[k]; ok != (err == nil) {
					rt.Fatalf("unset %v: %v (in model: %v)", k, err, ok)
				}
				delete(model, k)
			}
		}
		list, err := vars.List(ctx, project)
		if err != nil {
			rt.Fatal(err)
		}
		if len(list) != len(model) {
			rt.Fatalf("listed %d variables, model has %d", len(list), len(model))
		}
		for _, v := range list {
			value, ok := model[varKey{v.Name, v.Target}]
			if !ok {
				rt.Fatalf("listed %s/%s not in the model", v.Name, v.Target)
			}
			if len(value) >= 6 && strings.Contains(v.Masked, value) || v.Masked != secret.MaskValue(value) {
				rt.Fatalf("masked %q for %q", v.Masked, value)
			}
			got, err := vars.Reveal(ctx, project, v.Name, v.Target)
			if err != nil || got != value {
				rt.Fatalf("reveal %s = %q, %v; want %q", v.Name, got, err, value)
			}
		}
		for _, target := range []string{"production", "preview"} {
			want := map[string]string{}
			for k, v := range model {
				if k.target == "all" {
					if _, specific := model[varKey{k.name, target}]; !specific {
						want[k.name] = v
					}
				} else if k.target == target {
					want[k.name] = v
				}
			}
			var wantEnv []string
			for k, v := range want {
				wantEnv = append(wantEnv, k+"="+v)
			}
			sort.Strings(wantEnv)
			got, err := vars.Resolve(ctx, project, target)
			if err != nil || strings.Join(got, "\n") != strings.Join(wantEnv, "\n") {
				rt.Fatalf("resolve %s = %q, %v; want %q", target, got, err, wantEnv)
			}
		}
		rows, _ := store.ListEnvVars(ctx, project)
		for _, r := range rows {
			if v := model[varKey{r.Name, r.Target}]; len(v) >= 4 && strings.Contains(string(r.ValueCiphertext), v) {
				rt.Fatalf("row %s holds its value in plain text", r.Name)
			}
		}
	})
}

func TestSetValidates(t *testing.T) {
	t.Parallel()
	vars, _, project := newVars(t)
	ctx := context.Background()
	for _, tc := range []struct{ name, target, value string }{
		{"PORT", "all", "1"}, {"HOST", "all", "x"}, {"MINIVERCEL_X", "all", "x"}, {"minivercel_y", "all", "x"},
		{"1A", "all", "x"}, {"A-B", "all", "x"}, {"LD_PRELOAD", "all", "./evil.so"}, {"GLIBC_TUNABLES", "all", "x"}, {"BASH_ENV", "all", "./evil.sh"}, {"ENV", "all", "./evil.sh"}, {"", "all", "x"}, {"OK", "staging", "x"},
		{"BIG", "all", strings.Repeat("x", 64<<10+1)},
	} {
		if _, err := vars.Set(ctx, project, tc.name, tc.target, tc.value); err == nil {
			t.Errorf("Set(%q, %q) accepted", tc.name, tc.target)
		}
	}
	if _, err := vars.Set(ctx, project, "MAX", "", strings.Repeat("x", 64<<10)); err != nil {
		t.Errorf("a 64 KiB value was refused: %v", err)
	}
}

// TestRotateKeepsValues: after a rotation every value opens, under the new key only.
func TestRotateKeepsValues(t *testing.T) {
	t.Parallel()
	store, project := newProject(t)
	ctx := context.Background()
	keys, err := secret.LoadKeyring("", t.TempDir()+"/master.key")
	if err != nil {
		t.Fatal(err)
	}
	vars := secret.NewVars(store, keys)
	for i, v := range []string{"one-value", "two-value", "three-value"} {
		vars.Set(ctx, project, []string{"A", "B", "C"}[i], "all", v)
	}
	old := keys.Current().ID()
	next, n, err := vars.Rotate(ctx)
	if err != nil || n != 3 || next.ID() == old {
		t.Fatalf("rotate: %d, %v", n, err)
	}
	env, err := vars.Resolve(ctx, project, "production")
	if err != nil || strings.Join(env, " ") != "A=one-value B=two-value C=three-value" {
		t.Fatalf("after rotation: %q, %v", env, err)
	}
	rows, _ := store.ListEnvVars(ctx, project)
	for _, r := range rows {
		if secret.KeyID(r.ValueCiphertext) != next.ID() {
			t.Fatalf("%s still sealed by the old key", r.Name)
		}
	}
}

// TestRunningServerSealsWithTheRotatedKey: a keyring loaded before a rotation
// by another process seals new values with the new key, so they open after a
// restart.
func TestRunningServerSealsWithTheRotatedKey(t *testing.T) {
	t.Parallel()
	store, project := newProject(t)
	ctx := context.Background()
	file := t.TempDir() + "/master.key"
	server, _ := secret.LoadKeyring("", file)
	admin, _ := secret.LoadKeyring("", file)
	secret.NewVars(store, server).Set(ctx, project, "A", "all", "before-rotation")
	if _, _, err := secret.NewVars(store, admin).Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := secret.NewVars(store, server).Set(ctx, project, "B", "all", "after-rotation"); err != nil {
		t.Fatal(err)
	}
	restarted, _ := secret.LoadKeyring("", file)
	env, err := secret.NewVars(store, restarted).Resolve(ctx, project, "production")
	if err != nil || strings.Join(env, " ") != "A=before-rotation B=after-rotation" {
		t.Fatalf("after a restart: %q, %v", env, err)
	}
}
