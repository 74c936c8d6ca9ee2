package deploy

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"minivercel/limits"
	"minivercel/pipeline"
	"minivercel/schema"
)

// SettingsPatch is a change to a project's settings: a nil field keeps the
// current value. Every front end fills one from its own input (flags, JSON,
// a form) and the service validates the result with ValidateSettings, so the
// rules and their wording exist once.
type SettingsPatch struct {
	ProductionBranch *string
	// Framework is one of pipeline.Frameworks' names, or "" / "auto" to
	// detect.
	Framework      *string
	InstallCommand *string
	BuildCommand   *string
	StartCommand   *string
	OutputDir      *string
	HealthPath     *string
	HealthTries    *int
	HealthInterval *time.Duration
	// MemoryLimit and PidsLimit are the project's own limits of one build
	// command and one app process; 0 returns to the server's defaults.
	MemoryLimit *int64
	PidsLimit   *int64
}

// Empty reports whether the patch changes nothing.
func (p SettingsPatch) Empty() bool { return p == SettingsPatch{} }

// Apply returns ps with the patch's fields, trimmed and normalised, and
// validated as a whole.
func (p SettingsPatch) Apply(ps schema.ProjectSettings) (schema.ProjectSettings, error) {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = strings.TrimSpace(*v)
		}
	}
	set(&ps.ProductionBranch, p.ProductionBranch)
	set(&ps.Framework, p.Framework)
	set(&ps.InstallCommand, p.InstallCommand)
	set(&ps.BuildCommand, p.BuildCommand)
	set(&ps.StartCommand, p.StartCommand)
	set(&ps.OutputDir, p.OutputDir)
	set(&ps.HealthPath, p.HealthPath)
	if p.HealthTries != nil {
		ps.HealthTries = *p.HealthTries
	}
	if p.HealthInterval != nil {
		// Rounded up, so 1ns is refused as below the minimum rather than
		// taken as 0.
		ps.HealthIntervalMS = int((*p.HealthInterval + time.Millisecond - 1) / time.Millisecond)
	}
	if p.MemoryLimit != nil {
		ps.MemoryLimit = *p.MemoryLimit
	}
	if p.PidsLimit != nil {
		ps.PidsLimit = *p.PidsLimit
	}
	ps.Framework = strings.ToLower(ps.Framework)
	if ps.Framework == "auto" {
		ps.Framework = ""
	}
	if ps.OutputDir != "" && !strings.ContainsRune(ps.OutputDir, 0) {
		ps.OutputDir = path.Clean(ps.OutputDir)
	}
	return ps, ValidateSettings(ps)
}

// Limits of the settings, as the database's CHECK constraints also hold them.
const (
	MaxCommandLen      = 4096
	MaxHealthPathLen   = 1024
	MinHealthTries     = 1
	MaxHealthTries     = 100
	MinHealthInterval  = 100 * time.Millisecond
	MaxHealthInterval  = 10 * time.Minute
	maxBranchNameBytes = 255
	// A project's own memory limit: below 32 MiB not even Node starts;
	// above 64 GiB is no limit on any machine this serves.
	MinMemoryLimit = 32 << 20
	MaxMemoryLimit = 64 << 30
	MinPidsLimit   = 16
	MaxPidsLimit   = 65536
)

// ValidateSettings checks a whole set of settings: the one validator every
// front end's project settings pass through. Every field at fault gets an
// *Error of kind ErrInvalid naming it; they come joined (errors.Join), first
// field first, so AsError finds the first and Refusals lists them all.
func ValidateSettings(ps schema.ProjectSettings) error {
	var errs []error
	if err := ValidateBranch(ps.ProductionBranch); err != nil {
		errs = append(errs, invalid("production_branch", "production branch %s", err.Msg))
	}
	if !pipeline.ValidFramework(ps.Framework) {
		errs = append(errs, invalid("framework", "framework %q: want %s, or auto to detect", ps.Framework, pipeline.FrameworkNames()))
	}
	for _, c := range []struct{ field, name, v string }{
		{"install_command", "install command", ps.InstallCommand},
		{"build_command", "build command", ps.BuildCommand},
		{"start_command", "start command", ps.StartCommand},
	} {
		if len(c.v) > MaxCommandLen {
			errs = append(errs, invalid(c.field, "the %s is longer than %d bytes", c.name, MaxCommandLen))
		} else if strings.ContainsAny(c.v, "\x00\r\n") {
			errs = append(errs, invalid(c.field, "the %s must be one line", c.name))
		}
	}
	if d := ps.OutputDir; d != "" && (path.IsAbs(d) || d == ".." || strings.HasPrefix(d, "../") || strings.ContainsRune(d, 0)) {
		errs = append(errs, invalid("output_dir", "output directory %q must be a directory inside the repository", d))
	} else if slices.Contains(strings.Split(d, "/"), ".git") {
		// Never packed or served: it holds the repository's history.
		errs = append(errs, invalid("output_dir", "output directory %q is inside .git", d))
	}
	if err := ValidateHealthPath(ps.HealthPath); err != nil {
		errs = append(errs, err)
	}
	if ps.HealthTries < MinHealthTries || ps.HealthTries > MaxHealthTries {
		errs = append(errs, invalid("health_tries", "health tries %d: want %d to %d", ps.HealthTries, MinHealthTries, MaxHealthTries))
	}
	iv := time.Duration(ps.HealthIntervalMS) * time.Millisecond
	if iv < MinHealthInterval || iv > MaxHealthInterval {
		errs = append(errs, invalid("health_interval", "health interval %s: want %s to %s", iv, MinHealthInterval, MaxHealthInterval))
	}
	if m := ps.MemoryLimit; m != 0 && (m < MinMemoryLimit || m > MaxMemoryLimit) {
		errs = append(errs, invalid("memory_limit", "memory limit %s: want %s to %s, or 0 for the server's default",
			limits.FormatSize(m), limits.FormatSize(MinMemoryLimit), limits.FormatSize(MaxMemoryLimit)))
	}
	if n := ps.PidsLimit; n != 0 && (n < MinPidsLimit || n > MaxPidsLimit) {
		errs = append(errs, invalid("pids_limit", "process limit %d: want %d to %d, or 0 for the server's default", n, MinPidsLimit, MaxPidsLimit))
	}
	// Detection refuses this pair at build time; say so now.
	if ps.StartCommand != "" && pipeline.ValidFramework(ps.Framework) && !pipeline.ServerFramework(ps.Framework) {
		errs = append(errs, invalid("start_command", "a start command needs a server framework (%s), not %s", pipeline.ServerFrameworkNames(), ps.Framework))
	}
	return errors.Join(errs...)
}

// ValidateHealthPath checks the path a server app must answer before it takes
// traffic: it must be a valid URL path the health checker can request (a
// path such as "/%zz" would leave the checker without a request).
func ValidateHealthPath(p string) error {
	bad := func() error {
		return invalid("health_path", "health path %q must be a URL path starting with /, such as /healthz", p)
	}
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || len(p) > MaxHealthPathLen {
		return bad()
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c == 0x7f || c == '#' {
			return bad()
		}
	}
	u, err := url.ParseRequestURI(p)
	if err != nil || u.Host != "" || u.Scheme != "" {
		return bad()
	}
	if _, err := url.PathUnescape(u.EscapedPath()); err != nil {
		return bad()
	}
	return nil
}

// ValidateBranch checks a branch name against the parts of git's ref-name
// rules that matter here: it ends up in refs/heads/<name> and in build logs.
func ValidateBranch(b string) *Error {
	bad := b == "" || len(b) > maxBranchNameBytes || strings.HasPrefix(b, "-") || strings.HasPrefix(b, "/") ||
		strings.HasSuffix(b, "/") || strings.HasSuffix(b, ".") || strings.HasSuffix(b, ".lock") ||
		strings.Contains(b, "..") || strings.Contains(b, "//") || strings.Contains(b, "@{") || b == "@"
	for _, r := range b {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r) {
			bad = true
		}
	}
	if bad {
		return invalid("branch", "%q is not a branch name", b)
	}
	return nil
}

// ParseHealthTries reads health tries as typed in a form or on a command
// line; the error is the one ValidateSettings gives for a number out of range.
func ParseHealthTries(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, invalid("health_tries", "health tries %q: want a whole number from %d to %d", s, MinHealthTries, MaxHealthTries)
	}
	return n, nil
}

// ParseHealthInterval reads a health interval as typed ("5s", "500ms").
func ParseHealthInterval(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, invalid("health_interval", "health interval %q: want a duration from %s to %s, such as 5s", s, MinHealthInterval, MaxHealthInterval)
	}
	return d, nil
}

// ParseMemoryLimit reads a project's memory limit as typed ("512M", "2G";
// "0" or "" for the server's default).
func ParseMemoryLimit(s string) (int64, error) {
	if strings.TrimSpace(s) == "" {
		return 0, nil
	}
	n, err := limits.ParseSize(s)
	if err != nil {
		return 0, invalid("memory_limit", "memory limit %q: want a size such as 512M or 2G, or 0 for the server's default", s)
	}
	return n, nil
}

// ParsePidsLimit reads a project's process limit as typed ("0" or "" for
// the server's default).
func ParsePidsLimit(s string) (int64, error) {
	if strings.TrimSpace(s) == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, invalid("pids_limit", "process limit %q: want a whole number from %d to %d, or 0 for the server's default", s, MinPidsLimit, MaxPidsLimit)
	}
	return n, nil
}

// DescribeLimits is a project's own limits in words, as `project show`
// prints them.
func DescribeLimits(ps schema.ProjectSettings) string {
	l := limits.Limits{Memory: ps.MemoryLimit, Pids: ps.PidsLimit}
	if l == (limits.Limits{}) {
		return "the server's defaults"
	}
	return l.String() + " (the server's defaults for the rest)"
}

// DescribeHealth is the health check in words, as `project show` prints it.
func DescribeHealth(ps schema.ProjectSettings) string {
	return fmt.Sprintf("GET %s, %d tries %s apart", ps.HealthPath, ps.HealthTries, time.Duration(ps.HealthIntervalMS)*time.Millisecond)
}
