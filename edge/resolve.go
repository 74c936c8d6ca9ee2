package edge

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"golang.org/x/sync/singleflight"

	"minivercel/hosts"
)

const (
	// siteTTL is how long a build found by slug or id is remembered. Builds
	// are immutable; the bound only limits how long a retired build keeps
	// answering from memory.
	siteTTL = time.Minute
	// branchTTL is how long a branch URL's build is remembered: a page and
	// its assets make one lookup, and a new push shows within seconds.
	branchTTL = 5 * time.Second
	// domainTTL is how long a custom domain's project (or its absence) is
	// remembered: a domain added or removed takes effect within seconds.
	domainTTL = 10 * time.Second
	// negativeTTL is how long "no such build" is remembered for a build
	// URL: long enough to absorb a burst of scanner requests, short enough
	// that a build created right after a miss appears within seconds.
	negativeTTL = 10 * time.Second
	// cacheMax bounds each lookup cache; beyond it expired entries go, and
	// if that is not enough the cache is cleared, so random hosts cannot
	// grow memory.
	cacheMax = 4096
	// lookupTimeout bounds one BuildLookup or DomainLookup call. It is
	// detached from the request because concurrent requests share the call.
	lookupTimeout = 15 * time.Second
)

// DomainLookup maps custom domains to projects: a request whose Host is a
// custom domain of a project is served exactly like <project>.<base-domain>.
// ProjectForHost gets the lowercased host without port or trailing dot and is
// called concurrently from request goroutines. ok is false when host is no
// project's domain (the edge answers 404 and remembers that for a few
// seconds); an error is treated as temporary (503, not remembered). It should
// honour ctx cancellation.
type DomainLookup interface {
	ProjectForHost(ctx context.Context, host string) (project string, ok bool, err error)
}

// siteResolver answers which build a preview URL or custom domain names,
// through the BuildLookup and DomainLookup, remembering answers and misses
// for a while. Concurrent requests for one name share one lookup call. Safe
// for concurrent use.
type siteResolver struct {
	lookup  BuildLookup
	domains DomainLookup // nil: no custom domains
	// branchTTL is how long a branch's build (or its absence) is
	// remembered; a field so tests can follow new builds quickly.
	branchTTL time.Duration

	sf          singleflight.Group
	sites       *ttlCache[Site]     // found builds, by lookup key
	misses      *ttlCache[struct{}] // lookup keys that found no build
	domainCache *ttlCache[string]   // custom domain → project; "" when none
}

func newSiteResolver(lookup BuildLookup, domains DomainLookup) *siteResolver {
	return &siteResolver{
		lookup: lookup, domains: domains, branchTTL: branchTTL,
		sites: newTTLCache[Site](cacheMax), misses: newTTLCache[struct{}](cacheMax),
		domainCache: newTTLCache[string](cacheMax),
	}
}

// bySlug returns the build a build host names.
func (r *siteResolver) bySlug(ctx context.Context, project, slug string) (Site, error) {
	return r.resolve(ctx, "u/"+project+"/"+slug, siteTTL, negativeTTL, func(ctx context.Context) (Site, error) {
		site, err := r.lookup.SiteBySlug(ctx, project, slug)
		if err == nil && (site.Project != project || site.Slug != slug) {
			err = fmt.Errorf("lookup returned build %s of %s: %w", site.Slug, site.Project, ErrUnknownSite)
		}
		return site, err
	})
}

// byBranch returns the latest succeeded build of a branch host.
func (r *siteResolver) byBranch(ctx context.Context, project, branch string) (Site, error) {
	ttl := r.branchTTL
	return r.resolve(ctx, "g/"+project+"/"+branch, ttl, ttl, func(ctx context.Context) (Site, error) {
		site, err := r.lookup.SiteByBranch(ctx, project, branch)
		if err == nil && site.Project != project {
			err = fmt.Errorf("lookup returned project %s: %w", site.Project, ErrUnknownSite)
		}
		return site, err
	})
}

// byID returns the build the path form names.
func (r *siteResolver) byID(ctx context.Context, id int64) (Site, error) {
	return r.resolve(ctx, "i/"+strconv.FormatInt(id, 10), siteTTL, negativeTTL, func(ctx context.Context) (Site, error) {
		site, err := r.lookup.SiteByBuildID(ctx, id)
		if err == nil && site.BuildID != id {
			err = fmt.Errorf("lookup returned build %d: %w", site.BuildID, ErrUnknownSite)
		}
		return site, err
	})
}

// forget drops what is remembered of one build's URLs (its files are gone):
// the next request for them is looked up again.
func (r *siteResolver) forget(project, slug string, id int64) {
	for _, key := range []string{"u/" + project + "/" + slug, "i/" + strconv.FormatInt(id, 10)} {
		r.sites.delete(key)
		r.misses.delete(key)
	}
}

// resolve returns the build that key names, from memory when a recent lookup
// found it (hitTTL) or found nothing (missTTL), else through find. The call
// to find is detached from ctx because any of the requests sharing it may go
// away first.
func (r *siteResolver) resolve(ctx context.Context, key string, hitTTL, missTTL time.Duration, find func(context.Context) (Site, error)) (Site, error) {
	now := time.Now()
	if site, ok := r.sites.get(key, now); ok {
		return site, nil
	}
	if _, miss := r.misses.get(key, now); miss {
		return Site{}, ErrUnknownSite
	}
	v, err, _ := r.sf.Do(key, func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lookupTimeout)
		defer cancel()
		site, err := find(lctx)
		if err != nil {
			if errors.Is(err, ErrUnknownSite) {
				r.misses.put(key, struct{}{}, time.Now(), missTTL)
			}
			return nil, err
		}
		r.sites.put(key, site, time.Now(), hitTTL)
		return site, nil
	})
	if err != nil {
		return Site{}, fmt.Errorf("find build %s: %w", key, err)
	}
	return v.(Site), nil
}

// projectForHost returns the project of a custom domain, or an error wrapping
// ErrUnknownSite when it has none or there are no custom domains.
func (r *siteResolver) projectForHost(ctx context.Context, host string) (string, error) {
	if r.domains == nil {
		return "", fmt.Errorf("find project of %s: no custom domains: %w", host, ErrUnknownSite)
	}
	project, ok := r.domainCache.get(host, time.Now())
	if !ok {
		v, err, _ := r.sf.Do("d/"+host, func() (any, error) {
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lookupTimeout)
			defer cancel()
			project, ok, err := r.domains.ProjectForHost(lctx, host)
			if err != nil {
				return nil, err
			}
			if !ok || hosts.ValidateProject(project) != nil {
				project = ""
			}
			r.domainCache.put(host, project, time.Now(), domainTTL)
			return project, nil
		})
		if err != nil {
			return "", fmt.Errorf("find project of %s: %w", host, err)
		}
		project = v.(string)
	}
	if project == "" {
		return "", fmt.Errorf("find project of %s: %w", host, ErrUnknownSite)
	}
	return project, nil
}
