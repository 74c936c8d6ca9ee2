package deploy_test

import (
	"context"
	"errors"
	"minivercel/deploy"
	"strings"
	"testing"
	"time"

	"minivercel/schema"
)

func defaults() schema.ProjectSettings {
	return schema.ProjectSettings{ProductionBranch: "main", HealthPath: "/", HealthTries: 3, HealthIntervalMS: 5000}
}

func ptr[T any](v T) *T { return &v }

func TestSettingsPatch(t *testing.T) {
	for _, tc := range []struct {
		name  string
		patch deploy.SettingsPatch
		field string // "" when the patch is accepted
		want  func(schema.ProjectSettings) bool
	}{
		{"nothing", deploy.SettingsPatch{}, "", func(ps schema.ProjectSettings) bool { return ps == defaults() }},
		{"trimmed", deploy.SettingsPatch{StartCommand: ptr("  node x.js "), Framework: ptr(" Node ")}, "",
			func(ps schema.ProjectSettings) bool { return ps.StartCommand == "node x.js" && ps.Framework == "node" }},
		{"auto detects", deploy.SettingsPatch{Framework: ptr("auto")}, "", func(ps schema.ProjectSettings) bool { return ps.Framework == "" }},
		{"output dir cleaned", deploy.SettingsPatch{OutputDir: ptr("./site//dist/")}, "", func(ps schema.ProjectSettings) bool { return ps.OutputDir == "site/dist" }},
		{"interval rounds up", deploy.SettingsPatch{HealthInterval: ptr(100*time.Millisecond + 1)}, "",
			func(ps schema.ProjectSettings) bool { return ps.HealthIntervalMS == 101 }},
		{"unknown framework", deploy.SettingsPatch{Framework: ptr("rails")}, "framework", nil},
		{"branch with space", deploy.SettingsPatch{ProductionBranch: ptr("ma in")}, "production_branch", nil},
		{"branch with ..", deploy.SettingsPatch{ProductionBranch: ptr("a..b")}, "production_branch", nil},
		{"two-line command", deploy.SettingsPatch{BuildCommand: ptr("npm run build\nrm -rf /")}, "build_command", nil},
		{"huge command", deploy.SettingsPatch{InstallCommand: ptr(strings.Repeat("x", deploy.MaxCommandLen+1))}, "install_command", nil},
		{"output dir escapes", deploy.SettingsPatch{OutputDir: ptr("../etc")}, "output_dir", nil},
		{"absolute output dir", deploy.SettingsPatch{OutputDir: ptr("/etc")}, "output_dir", nil},
		{"output dir in .git", deploy.SettingsPatch{OutputDir: ptr("site/.git")}, "output_dir", nil},
		{"health path relative", deploy.SettingsPatch{HealthPath: ptr("healthz")}, "health_path", nil},
		{"health path not a URL path", deploy.SettingsPatch{HealthPath: ptr("/%zz")}, "health_path", nil},
		{"health path with a host", deploy.SettingsPatch{HealthPath: ptr("//evil.example/x")}, "health_path", nil},
		{"health path with a space", deploy.SettingsPatch{HealthPath: ptr("/a b")}, "health_path", nil},
		{"no tries", deploy.SettingsPatch{HealthTries: ptr(0)}, "health_tries", nil},
		{"interval too long", deploy.SettingsPatch{HealthInterval: ptr(time.Hour)}, "health_interval", nil},
		{"own limits", deploy.SettingsPatch{MemoryLimit: ptr(int64(512 << 20)), PidsLimit: ptr(int64(128))}, "",
			func(ps schema.ProjectSettings) bool { return ps.MemoryLimit == 512<<20 && ps.PidsLimit == 128 }},
		{"limits back to the defaults", deploy.SettingsPatch{MemoryLimit: ptr(int64(0)), PidsLimit: ptr(int64(0))}, "",
			func(ps schema.ProjectSettings) bool { return ps.MemoryLimit == 0 && ps.PidsLimit == 0 }},
		{"memory too small for Node", deploy.SettingsPatch{MemoryLimit: ptr(int64(1 << 20))}, "memory_limit", nil},
		{"memory beyond any machine", deploy.SettingsPatch{MemoryLimit: ptr(int64(1 << 40))}, "memory_limit", nil},
		{"negative memory", deploy.SettingsPatch{MemoryLimit: ptr(int64(-1))}, "memory_limit", nil},
		{"too few processes", deploy.SettingsPatch{PidsLimit: ptr(int64(2))}, "pids_limit", nil},
		{"too many processes", deploy.SettingsPatch{PidsLimit: ptr(int64(1 << 20))}, "pids_limit", nil},
		{"start command on a static site", deploy.SettingsPatch{Framework: ptr("static"), StartCommand: ptr("node x.js")}, "start_command", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps, err := tc.patch.Apply(defaults())
			if tc.field == "" {
				if err != nil || !tc.want(ps) {
					t.Fatalf("Apply = %+v, %v", ps, err)
				}
				return
			}
			e := deploy.AsError(err)
			if e == nil || e.Field != tc.field || !errors.Is(err, deploy.ErrInvalid) || e.Msg == "" {
				t.Fatalf("Apply = %v (%#v), want a refusal of %s", err, e, tc.field)
			}
		})
	}
}

// TestSettingsAllFieldsReported: a form with several bad fields learns about
// every one of them at once, first field first.
func TestSettingsAllFieldsReported(t *testing.T) {
	_, err := deploy.SettingsPatch{ProductionBranch: ptr(""), HealthTries: ptr(0), OutputDir: ptr("..")}.Apply(defaults())
	var fields []string
	for _, e := range deploy.Refusals(err) {
		fields = append(fields, e.Field)
	}
	if got := strings.Join(fields, ","); got != "production_branch,output_dir,health_tries" {
		t.Fatalf("refused fields %q", got)
	}
	if deploy.AsError(err).Field != "production_branch" {
		t.Fatalf("first refusal %v", deploy.AsError(err))
	}
}

// TestHealthPathThatIsNoURLPathRegression: "/%zz" passed every check once and
// left the health checker without a request: the server panicked at every
// start. Every health path deploy.ValidateHealthPath accepts must make a request.
func TestHealthPathThatIsNoURLPathRegression(t *testing.T) {
	if err := deploy.ValidateHealthPath("/%zz"); err == nil {
		t.Fatal(`"/%zz" accepted`)
	}
	for _, p := range []string{"/", "/healthz", "/api/health?full=1", "/a%20b", "/ünïcode"} {
		if err := deploy.ValidateHealthPath(p); err != nil {
			t.Errorf("%q refused: %v", p, err)
		}
	}
}

func TestParseHealthNumbers(t *testing.T) {
	if n, err := deploy.ParseHealthTries(" 7 "); err != nil || n != 7 {
		t.Fatalf("deploy.ParseHealthTries = %d, %v", n, err)
	}
	if _, err := deploy.ParseHealthTries("many"); deploy.AsError(err) == nil || deploy.AsError(err).Field != "health_tries" {
		t.Fatalf("deploy.ParseHealthTries(many) = %v", err)
	}
	if d, err := deploy.ParseHealthInterval("1.5s"); err != nil || d != 1500*time.Millisecond {
		t.Fatalf("deploy.ParseHealthInterval = %v, %v", d, err)
	}
	if _, err := deploy.ParseHealthInterval("soon"); deploy.AsError(err) == nil || deploy.AsError(err).Field != "health_interval" {
		t.Fatalf("deploy.ParseHealthInterval(soon) = %v", err)
	}
}

func TestParseLimits(t *testing.T) {
	if n, err := deploy.ParseMemoryLimit(" 512M "); err != nil || n != 512<<20 {
		t.Fatalf("ParseMemoryLimit = %d, %v", n, err)
	}
	if _, err := deploy.ParseMemoryLimit("lots"); deploy.AsError(err) == nil || deploy.AsError(err).Field != "memory_limit" {
		t.Fatalf("ParseMemoryLimit(lots) = %v", err)
	}
	if n, err := deploy.ParseMemoryLimit(""); err != nil || n != 0 {
		t.Fatalf("ParseMemoryLimit(\"\") = %d, %v; want 0, the server's default", n, err)
	}
	if n, err := deploy.ParsePidsLimit(" "); err != nil || n != 0 {
		t.Fatalf("ParsePidsLimit(\" \") = %d, %v; want 0, the server's default", n, err)
	}
	if n, err := deploy.ParsePidsLimit("128"); err != nil || n != 128 {
		t.Fatalf("ParsePidsLimit = %d, %v", n, err)
	}
	if _, err := deploy.ParsePidsLimit("1e3"); deploy.AsError(err) == nil || deploy.AsError(err).Field != "pids_limit" {
		t.Fatalf("ParsePidsLimit(1e3) = %v", err)
	}
	ps := defaults()
	if got := deploy.DescribeLimits(ps); got != "the server's defaults" {
		t.Fatalf("DescribeLimits = %q", got)
	}
	ps.MemoryLimit = 512 << 20
	if got := deploy.DescribeLimits(ps); got != "512 MiB memory (the server's defaults for the rest)" {
		t.Fatalf("DescribeLimits = %q", got)
	}
}

func TestParseKeys(t *testing.T) {
	const ed = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtQUDZWhs8k/cZcykMkaG6UR4gP4q2ZE3sV3bdGzyb5 me@laptop"
	dsa, rsa1024 := WeakKeys(t)
	for _, tc := range []struct {
		name, text string
		n          int
		refusal    string
	}{
		{"one", ed, 1, ""},
		{"file with comments", "# laptop\n" + ed + "\n\n", 1, ""},
		{"empty", "  \n", 0, "paste a public key"},
		{"private", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----", 0, "that is a private key"},
		{"garbage", "ssh-ed25519 not-base64", 0, "not an SSH public key"},
		{"options", `command="rm -rf /" ` + ed, 0, "options"},
		{"dsa", dsa, 0, "DSA keys are too weak"},
		{"short rsa", rsa1024, 0, "RSA keys need at least 2048 bits"},
		{"second line bad", ed + "\nnope", 0, "line 2: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys, err := deploy.ParseKeys(tc.text)
			if tc.refusal == "" {
				if err != nil || len(keys) != tc.n || !strings.HasPrefix(keys[0].Fingerprint, "SHA256:") || keys[0].Comment != "me@laptop" {
					t.Fatalf("deploy.ParseKeys = %+v, %v", keys, err)
				}
				return
			}
			if e := deploy.AsError(err); e == nil || e.Field != "public_key" || !strings.Contains(e.Msg, tc.refusal) {
				t.Fatalf("deploy.ParseKeys = %v, want a public_key refusal containing %q", err, tc.refusal)
			}
		})
	}
	if _, err := deploy.ParseKey(ed + "\n" + ed); deploy.AsError(err) == nil || !strings.Contains(err.Error(), "one key at a time") {
		t.Fatalf("deploy.ParseKey of two keys = %v", err)
	}
}

// TestOnlyAdminsChangeLimits: a member may change a project's settings but
// not its resource limits (neither at creation nor later), which protect the server and the other projects;
// an administrator may.
func TestOnlyAdminsChangeLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.project("capped")
	member, err := e.Store.CreateUser(ctx, "member", false)
	if err != nil {
		t.Fatal(err)
	}
	big := int64(64 << 30)
	_, err = e.svc.UpdateProject(ctx, member, "capped", deploy.SettingsPatch{MemoryLimit: &big})
	if !errors.Is(err, deploy.ErrForbidden) {
		t.Fatalf("a member raising the memory limit: %v, want ErrForbidden", err)
	}
	if _, err := e.svc.UpdateProject(ctx, member, "capped", deploy.SettingsPatch{StartCommand: ptr("node x.js")}); err != nil {
		t.Fatalf("a member changing the start command: %v", err)
	}
	if _, err := e.svc.CreateProject(ctx, member, "roomy", deploy.SettingsPatch{MemoryLimit: &big}); !errors.Is(err, deploy.ErrForbidden) {
		t.Fatalf("a member creating a project with a memory limit: %v, want ErrForbidden", err)
	}
	p, err := e.svc.UpdateProject(ctx, e.Admin, "capped", deploy.SettingsPatch{MemoryLimit: &big})
	if err != nil || p.Settings().MemoryLimit != big {
		t.Fatalf("an admin setting the memory limit: %v, %+v", err, p.Settings())
	}
}
