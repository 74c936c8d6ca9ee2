package toolchain

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

// NPM is the part of npm's configuration the toolchain follows.
type NPM struct {
	// Registry is the registry's base URL, with a trailing slash.
	Registry string
	// CAFile is npm's cafile: the certificates npm trusts for the
	// registry (a TLS-inspecting proxy's, say). Empty: the system's.
	CAFile string
}

// NPMConfig returns the npm configuration the machine uses: the
// npm_config_registry and npm_config_cafile environment variables (any
// letter case) when set, else what `npm config get registry cafile`
// prints. The project never names a registry host itself.
func NPMConfig(ctx context.Context, getenv func(string) string) (NPM, error) {
	vals := map[string]string{}
	for _, k := range []string{"registry", "cafile"} {
		for _, name := range []string{"npm_config_" + k, "NPM_CONFIG_" + strings.ToUpper(k)} {
			if v := strings.TrimSpace(getenv(name)); v != "" && vals[k] == "" {
				vals[k] = v
			}
		}
	}
	if vals["registry"] == "" || vals["cafile"] == "" {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", "config", "get", "registry", "cafile")
		// npm needs HOME for its user config; nothing else of ours is passed.
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + getenv("HOME")}
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.Output()
		if err != nil {
			return NPM{}, fmt.Errorf("ask npm for its registry (npm config get registry): %w", err)
		}
		for line := range strings.Lines(string(out)) {
			k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
			if v = strings.TrimSpace(v); vals[k] == "" && v != "null" && v != "undefined" {
				vals[k] = v
			}
		}
	}
	reg, err := normalizeRegistry(vals["registry"])
	if err != nil {
		return NPM{}, err
	}
	return NPM{Registry: reg, CAFile: vals["cafile"]}, nil
}

// normalizeRegistry checks a registry URL and gives it a trailing slash.
func normalizeRegistry(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("registry %q is not an http(s) URL", s)
	}
	if !strings.HasSuffix(s, "/") {
		s += "/"
	}
	return s, nil
}

// packageNameRe is what an npm package name may be: a scope is allowed, a
// path is not, so a name can become a directory name safely.
var packageNameRe = regexp.MustCompile(`^(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*$`)

// dist is where a published version's tarball is and its hash.
type dist struct {
	Tarball   string `json:"tarball"`
	Integrity string `json:"integrity"`
}

// packument is the abbreviated package document ("corgi") of the npm
// registry protocol: every version with its dist.
type packument struct {
	DistTags map[string]string `json:"dist-tags"`
	Versions map[string]struct {
		Dist dist `json:"dist"`
	} `json:"versions"`
}

// releases returns the package's release versions (no prereleases) that
// parse, with their dist.
func (p *packument) releases() map[Version]dist {
	out := make(map[Version]dist, len(p.Versions))
	for s, v := range p.Versions {
		ver, err := ParseVersion(s)
		if err != nil || ver.Prerelease != "" {
			continue
		}
		out[ver] = v.Dist
	}
	return out
}

// packumentTTL is how long a package's version list is reused: a build
// resolving "22" again within minutes need not ask the registry again.
const packumentTTL = 5 * time.Minute

type cachedPackument struct {
	at  time.Time
	doc *packument
}

// Redacted is a registry URL without the password it may carry, for
// messages and logs.
func Redacted(registry string) string {
	if u, err := url.Parse(registry); err == nil {
		return u.Redacted()
	}
	return "the npm registry"
}

// packument returns the abbreviated document of the package name.
func (s *Store) packument(ctx context.Context, name string) (*packument, error) {
	if !packageNameRe.MatchString(name) {
		return nil, fmt.Errorf("read package %q: not a package name", name)
	}
	s.mu.Lock()
	c, ok := s.docs[name]
	s.mu.Unlock()
	if ok && time.Since(c.at) < packumentTTL {
		return c.doc, nil
	}
	u := s.cfg.Registry + strings.Replace(name, "/", "%2f", 1)
	where := Redacted(s.cfg.Registry)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.MetadataTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("read package %s: %w", name, err)
	}
	req.Header.Set("Accept", "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read package %s from %s: %w: %v", name, where, ErrRegistry, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		// A mirror without this package: it has no versions, and a
		// request another source satisfies still succeeds.
		return &packument{}, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("read package %s from %s: %w: %s", name, where, ErrRegistry, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.cfg.MaxMetadataBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read package %s from %s: %w: %v", name, where, ErrRegistry, err)
	}
	if int64(len(body)) > s.cfg.MaxMetadataBytes {
		return nil, fmt.Errorf("read package %s: document over %d bytes: %w", name, s.cfg.MaxMetadataBytes, ErrTooLarge)
	}
	doc := &packument{}
	if err := json.Unmarshal(body, doc); err != nil {
		return nil, fmt.Errorf("read package %s: %w: %v", name, ErrRegistry, err)
	}
	s.mu.Lock()
	s.docs[name] = cachedPackument{at: time.Now(), doc: doc}
	s.mu.Unlock()
	return doc, nil
}
