package edge

import (
	"testing"

	"pgregory.net/rapid"
)

// TestIsHashedAsset runs the caching rule over names real bundlers write
// (Vite 5 and 6, Next.js 14 and 15, Astro, SvelteKit, Nuxt, Create React
// App, webpack) and over names people write by hand.
func TestIsHashedAsset(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		want bool
	}{
		// Vite 5 and 6: assets/, Rollup's base64url hashes.
		{"assets/index--T1sQT3T.js", true},
		{"assets/index-DiwrgTda.js", true},
		{"assets/index-B-Fpq1Mq.css", true},
		{"assets/react-CHdo91hT.svg", true},
		{"assets/index-BbZJ9Nkq.js", true},
		{"assets/inter-latin-400-normal-BOOGhInR.woff2", true},
		{"assets/logo.png", false}, // copied by hand from public/assets/
		{"assets/index.html", false},
		{"assets/README", false},
		// Rollup's names outside assets/ (a custom assetsDir, a library).
		{"index--T1sQT3T.js", true},
		{"js/index-DiwrgTda.js", true},
		{"js/vendor-C8Nq0Zb1.js", true},
		{"font-Ab12Cd34.woff2", true},
		{"sub/assets/index-BqK3x_9a.js", true},
		{"sub/assets/logo.png", false}, // assets/ counts only at the root
		// Next.js 14 and 15.
		{"_next/static/chunks/framework-f66176bb897dc684.js", true},
		{"_next/static/chunks/pages/_app-0c3a3c8dcb6e6d1e.js", true},
		{"_next/static/chunks/app/page-2d1a5e4f3b6c7d8e.js", true},
		{"_next/static/chunks/main-app-a0b1c2d3e4f5a6b7.js", true},
		{"_next/static/css/7a2b5c8d9e0f1a2b.css", true},
		{"_next/static/yU7gS_CZ1gp1XsKDEkB5Z/_buildManifest.js", true},
		{"_next/static/yU7gS_CZ1gp1XsKDEkB5Z/_ssgManifest.js", true},
		{"_next/static/media/inter-latin.1c4e5e2f.woff2", true},
		{"_next/static/chunks/main.js", true},
		{"_next/static/page.html", false},
		// Astro.
		{"_astro/index.BXzJmE2F.css", true},
		{"_astro/hoisted.DkjpyXyf.js", true},
		{"_astro/astro-logo.Bn3Wc_U1.svg", true},
		{"_astro/index.astro_astro_type_script_index_0_lang.js", true},
		// SvelteKit.
		{"_app/immutable/entry/start.BVR-Z-tJ.js", true},
		{"_app/immutable/chunks/index.R8ovVqwX.js", true},
		{"_app/immutable/assets/0.DRUWX2Dq.css", true},
		{"_app/immutable/entry/start.js", true},
		{"_app/version.json", false},
		{"_app/env.js", false},
		// Nuxt 3.
		{"_nuxt/entry.DkqmR8aP.js", true},
		{"_nuxt/BlqIXfjU.js", true},
		{"_nuxt/entry.DZjBBdpU.css", true},
		{"_nuxt/builds/meta/3b6a1c1f-2d4e-4f5a-9b8c-7d6e5f4a3b2c.json", true},
		{"_nuxt/builds/latest.json", false}, // changes every build
		// Create React App.
		{"static/js/main.8a3b1c2d.js", true},
		{"static/js/787.4c5d6e7f.chunk.js", true},
		{"static/css/main.073c9b0a.css", true},
		{"static/media/logo.6ce24c58023cc2f8fd88fe9d219db6c6.svg", true},
		{"asset-manifest.json", false},
		{"manifest.json", false},
		{"logo192.png", false},
		{"static/other/site.js", false},
		{"static/css/main.1a2b3c4d.chunk.css", true},
		{"static/js/main.8f3a2b1c.js", true},
		{"assets/index-BcF3a7x9.js", true},
		// webpack, Parcel, Gatsby: hex after "." or "-".
		{"app.3f2a9c1b.js", true},
		{"assets2/main.a1b2c3d4e5.css", true},
		{"logo.12345678.png", true},
		{"app-5d1b1e8a9c3f2e4d6b7a.js", true},
		// Words, versions, and what is not an asset kind.
		{"my-long-wordname.js", false},
		{"bootstrap.min.js", false},
		{"app-settings.json", false},
		{"logo-dark.svg", false},
		{"main-component.js", false},
		{"jquery-ui.js", false},
		{"jquery-3.7.1.min.js", false},
		{"vue-router.esm-bundler.js", false},
		{"index-appState.js", false},
		{"data-Homepage.js", false},
		{"button-LoginForm.js", false},
		{"chunk-vendors.js", false},
		{"service-worker.js", false},
		{"app.abcdefgh.js", false},
		{"app.ABCDEFGH.js", false},
		{"app.3f2a9c1.js", false},
		{"3f2a9c1b.js", false},
		{".3f2a9c1b.js", false},
		{"app.js", false},
		{"index.3f2a9c1b.html", false},
		{"page-DiwrgTda.htm", false},
		{"data-3f2a9c1b.json", false}, // not an asset kind outside the bundlers' directories
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := isHashedAsset(tc.name); got != tc.want {
				t.Errorf("isHashedAsset(%q) = %v, want %v", tc.name, got, tc.want)
			}
		})
	}
}

// TestImmutableNotForHandNamedFiles: files people name by hand, in Vite's
// assets/ and CRA's static/ (which projects also fill themselves) or
// anywhere, with hyphens, sizes and years in their names, are never cached
// for a year: only a name's last segment can be a hash.
func TestImmutableNotForHandNamedFiles(t *testing.T) {
	t.Parallel()
	for _, name := range []string{
		"assets/css/main.css",
		"assets/images/logo.png",
		"assets/logo.png",
		"static/js/app.js",
		"static/css/site.css",
		"static/media/hero.jpg",
		"android-chrome-192x192.png",
		"assets/android-chrome-192x192.png",
		"apple-touch-icon-180x180.png",
		"static/apple-touch-icon-180x180.png",
		"icon-arrow-left-16.svg",
		"assets/icon-arrow-left-16.svg",
		"style-2023-redesign.css",
		"assets/style-2023-redesign.css",
		"favicon-32x32.png",
		"font-awesome-6.4.0.min.css",
	} {
		if isHashedAsset(name) || immutable(name, contentType(name, nil)) {
			t.Errorf("%s is immutable", name)
		}
	}
}

// TestImmutableNeverHTML is a property: no page is ever cached for a year,
// whatever its directory or name, whether HTML by extension or by content.
func TestImmutableNeverHTML(t *testing.T) {
	t.Parallel()
	dir := rapid.SampledFrom(append([]string{"", "sub/", "assets/assets/"}, immutableDirs...))
	stem := rapid.StringMatching(`[A-Za-z0-9_.-]{0,12}([-.][A-Za-z0-9_-]{8,20})?`)
	rapid.Check(t, func(rt *rapid.T) {
		base := dir.Draw(rt, "dir") + stem.Draw(rt, "stem")
		ext := rapid.SampledFrom([]string{".html", ".HTML", ".htm", ".xhtml"}).Draw(rt, "ext")
		if immutable(base+ext, "text/html; charset=utf-8") || isHashedAsset(base+ext) {
			rt.Fatalf("%s is immutable", base+ext)
		}
		other := rapid.SampledFrom([]string{".js", ".css", ".png", ".woff2", ""}).Draw(rt, "other ext")
		for _, ct := range []string{"text/html; charset=utf-8", "application/xhtml+xml"} {
			if immutable(base+other, ct) {
				rt.Fatalf("%s served as %s is immutable", base+other, ct)
			}
		}
	})
}
