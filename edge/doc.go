// Package edge serves public traffic and deploys builds: it receives and
// extracts artifacts, serves static builds from their files, runs server
// apps and proxies to them, health-checks them, switches a project's
// production atomically, serves every build at preview URLs of its own and,
// when asked, obtains TLS certificates on demand.
//
// Server is a thin composition of parts, each its own type built from only
// what it needs, so each can be built and tested alone:
//
//   - routeTable (routes.go): project → production route, read without
//     locks so a request keeps the route it started with;
//   - router (router.go): the http.Handler; it parses the Host with package
//     hosts and dispatches to the route table, the static cache, the preview
//     pool, the panel and git, through small interfaces;
//   - siteResolver (resolve.go): the BuildLookup and DomainLookup behind
//     preview URLs and custom domains, with answers and misses remembered;
//   - staticCache (statics.go): reference-counted handlers of static builds
//     sharing one memory budget;
//   - deployments (deployments.go): where artifacts are read and extracted,
//     retried with backoff while an artifact is not whole yet;
//   - appRuntime (runtime.go, app.go, proxy.go): ports, processes, health
//     checks, supervision, the reverse proxy and draining;
//   - previewPool (preview.go): on-demand processes for server builds
//     outside production, given an appStarter;
//   - tlsServer (tls.go): certmagic with on-demand certificates decided by a
//     DomainPolicy, the HTTPS listener and the plain-HTTP redirect.
//
// Host names (production, build, branch, the /preview/<id>/ path form,
// custom domains) are built and parsed by package hosts alone.
package edge
