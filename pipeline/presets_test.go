package pipeline

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// The package.json files below have the shapes each framework's
// create-* template or documentation writes (versions as ranges, as the
// templates have them); detection reads no network.
const (
	svelteKitPkg = `{
	"name": "my-app", "private": true, "version": "0.0.1", "type": "module",
	"scripts": {
		"dev": "vite dev",
		"build": "vite build",
		"preview": "vite preview",
		"prepare": "svelte-kit sync || echo ''",
		"check": "svelte-kit sync && svelte-check --tsconfig ./tsconfig.json"
	},
	"devDependencies": {
		"%s": "^5.0.0",
		"@sveltejs/kit": "^2.22.0",
		"@sveltejs/vite-plugin-svelte": "^6.0.0",
		"svelte": "^5.0.0",
		"svelte-check": "^4.0.0",
		"typescript": "^5.0.0",
		"vite": "^7.0.4"
	}
}`
	svelteConfig = `import adapter from '%s';
import { vitePreprocess } from '@sveltejs/vite-plugin-svelte';

/** @type {import('@sveltejs/kit').Config} */
const config = {
	preprocess: vitePreprocess(),
	kit: {
		// adapter-auto only supports some environments, see https://svelte.dev/docs/kit/adapter-auto
		adapter: adapter(%s)
	}
};

export default config;
`
	nuxtPkg = `{
  "name": "nuxt-app", "private": true, "type": "module",
  "scripts": {
    "build": "%s",
    "dev": "nuxt dev",
    "generate": "nuxt generate",
    "preview": "nuxt preview",
    "postinstall": "nuxt prepare"
  },
  "dependencies": { "nuxt": "^3.17.5", "vue": "^3.5.16", "vue-router": "^4.5.1" }
}`
	astroPkg = `{
  "name": "astro-minimal", "type": "module", "version": "0.0.1",
  "scripts": { "dev": "astro dev", "build": "astro build", "preview": "astro preview", "astro": "astro" },
  "dependencies": { "astro": "^5.9.2"%s }
}`
	astroNodeConfig = `// @ts-check
import { defineConfig } from 'astro/config';
import node from '@astrojs/node';

// https://astro.build/config
export default defineConfig({
  adapter: node({
    mode: '%s',
  }),
});
`
	reactRouterPkg = `{
  "private": true, "type": "module",
  "scripts": {
    "build": "react-router build",
    "dev": "react-router dev",
    %s
    "typecheck": "react-router typegen && tsc"
  },
  "dependencies": {
    "@react-router/node": "^7.7.1",
    %s
    "isbot": "^5.1.27",
    "react": "^19.1.0",
    "react-dom": "^19.1.0",
    "react-router": "^7.7.1"
  },
  "devDependencies": {
    "@react-router/dev": "^7.7.1",
    "@types/node": "^20",
    "typescript": "^5.8.3",
    "vite": "^6.3.3",
    "vite-tsconfig-paths": "^5.1.4"
  }
}`
	reactRouterConfig = `import type { Config } from "@react-router/dev/config";

export default {
  // Config options...
  // Server-side render by default, to enable SPA mode set this to ` + "`false`" + `
  ssr: %s,
} satisfies Config;
`
	remixPkg = `{
  "name": "remix-app", "private": true, "sideEffects": false, "type": "module",
  "scripts": {
    "build": "remix vite:build",
    "dev": "remix vite:dev",
    "start": "remix-serve ./build/server/index.js",
    "typecheck": "tsc"
  },
  "dependencies": {
    "@remix-run/node": "^2.16.0", "@remix-run/react": "^2.16.0", "@remix-run/serve": "^2.16.0",
    "isbot": "^4.1.0", "react": "^18.2.0", "react-dom": "^18.2.0"
  },
  "devDependencies": { "@remix-run/dev": "^2.16.0", "typescript": "^5.1.6", "vite": "^5.1.0" }
}`
	vitePkg = `{
  "name": "vite-project", "private": true, "version": "0.0.0", "type": "module",
  "scripts": { "dev": "vite", "build": "tsc -b && vite build", "lint": "eslint .", "preview": "vite preview" },
  "dependencies": { "react": "^19.1.0", "react-dom": "^19.1.0" },
  "devDependencies": { "@vitejs/plugin-react": "^4.6.0", "typescript": "~5.8.3", "vite": "^7.0.4" }
}`
	craPkg = `{
  "name": "my-app", "version": "0.1.0", "private": true,
  "dependencies": { "react": "^18.2.0", "react-dom": "^18.2.0", "react-scripts": "5.0.1", "web-vitals": "^2.1.4" },
  "scripts": { "start": "react-scripts start", "build": "react-scripts build", "test": "react-scripts test", "eject": "react-scripts eject" }
}`
	honoPkg = `{
  "name": "my-app", "type": "module",
  "scripts": { "dev": "tsx watch src/index.ts", "build": "tsc", "start": "node dist/index.js" },
  "dependencies": { "@hono/node-server": "^1.19.5", "hono": "^4.9.12" },
  "devDependencies": { "@types/node": "^20.11.17", "tsx": "^4.7.1", "typescript": "^5.8.3" }
}`
	nitroPkg = `{
  "private": true,
  "scripts": { "build": "nitro build", "dev": "nitro dev", "preview": "node .output/server/index.mjs" },
  "devDependencies": { "nitropack": "^2.11.0" }
}`
)

// sprintf is fmt.Sprintf for the fixtures above, whose %s mark the parts
// that vary.
func sprintf(format string, a ...string) string {
	for _, s := range a {
		format = strings.Replace(format, "%s", s, 1)
	}
	return format
}

// withNPM completes a preset's expected plan with the npm install and
// build script every fixture below has (no lockfile).
func withNPM(p Plan) Plan {
	p.PackageManager, p.Install = "npm", []string{"npm", "install"}
	if p.Build == nil {
		p.Build = []string{"npm", "run", "build"}
	}
	return p
}

func TestDetectPresets(t *testing.T) {
	cases := []struct {
		name     string
		files    map[string]string
		settings Settings
		want     Plan
		describe string
	}{
		{
			name: "sveltekit adapter-node",
			files: map[string]string{"package.json": sprintf(svelteKitPkg, "@sveltejs/adapter-node"),
				"svelte.config.js": sprintf(svelteConfig, "@sveltejs/adapter-node", "")},
			want: withNPM(Plan{Kind: KindNode, Preset: "sveltekit", Reason: "@sveltejs/kit and @sveltejs/adapter-node in package.json",
				Start: "node build", Entry: "build/index.js", OutputDir: ".", OutputCandidates: []string{"."}}),
			describe: "SvelteKit (@sveltejs/kit and @sveltejs/adapter-node in package.json) → Node server, start: node build",
		},
		{
			name: "sveltekit adapter-node with out option",
			files: map[string]string{"package.json": sprintf(svelteKitPkg, "@sveltejs/adapter-node"),
				"svelte.config.js": sprintf(svelteConfig, "@sveltejs/adapter-node", "{ out: './server-build/' }")},
			want: withNPM(Plan{Kind: KindNode, Preset: "sveltekit", Reason: "@sveltejs/kit and @sveltejs/adapter-node in package.json",
				Start: "node server-build", Entry: "server-build/index.js", OutputDir: ".", OutputCandidates: []string{"."}}),
		},
		{
			name: "sveltekit adapter-node out option with shell characters is ignored",
			files: map[string]string{"package.json": sprintf(svelteKitPkg, "@sveltejs/adapter-node"),
				"svelte.config.js": sprintf(svelteConfig, "@sveltejs/adapter-node", "{ out: 'x;reboot' }")},
			want: withNPM(Plan{Kind: KindNode, Preset: "sveltekit", Reason: "@sveltejs/kit and @sveltejs/adapter-node in package.json",
				Start: "node build", Entry: "build/index.js", OutputDir: ".", OutputCandidates: []string{"."}}),
		},
		{
			name: "sveltekit adapter-node with a custom server start script",
			files: map[string]string{"package.json": strings.Replace(sprintf(svelteKitPkg, "@sveltejs/adapter-node"),
				`"dev": "vite dev",`, `"dev": "vite dev", "start": "node server.js",`, 1)},
			want: withNPM(Plan{Kind: KindNode, Preset: "sveltekit", Reason: "@sveltejs/kit and @sveltejs/adapter-node in package.json, start script",
				Start: "node server.js", OutputDir: ".", OutputCandidates: []string{"."}}),
		},
		{
			name: "sveltekit adapter-static",
			files: map[string]string{"package.json": sprintf(svelteKitPkg, "@sveltejs/adapter-static"),
				"svelte.config.js": sprintf(svelteConfig, "@sveltejs/adapter-static", "{ pages: 'site', assets: 'site', fallback: undefined }")},
			want: withNPM(Plan{Kind: KindNPM, Preset: "sveltekit", Reason: "@sveltejs/kit and @sveltejs/adapter-static in package.json",
				OutputCandidates: []string{"site"}}),
			describe: "SvelteKit (@sveltejs/kit and @sveltejs/adapter-static in package.json) → npm build (npm), output site",
		},
		{
			name:  "sveltekit without build script",
			files: map[string]string{"package.json": `{"devDependencies":{"@sveltejs/kit":"2","@sveltejs/adapter-static":"3"}}`},
			want: withNPM(Plan{Kind: KindNPM, Preset: "sveltekit", Reason: "@sveltejs/kit and @sveltejs/adapter-static in package.json",
				Build: []string{"npx", "--no-install", "vite", "build"}, OutputCandidates: []string{"build"}}),
		},
		{
			name:  "nuxt build",
			files: map[string]string{"package.json": sprintf(nuxtPkg, "nuxt build"), "nuxt.config.ts": "export default defineNuxtConfig({})\n"},
			want: withNPM(Plan{Kind: KindNode, Preset: "nuxt", Reason: "nuxt in package.json",
				Start: "node server/index.mjs", Entry: ".output/server/index.mjs", OutputDir: ".output", OutputCandidates: []string{".output"}}),
			describe: "Nuxt (nuxt in package.json) → Node server, start: node server/index.mjs",
		},
		{
			name:  "nuxt generate",
			files: map[string]string{"package.json": sprintf(nuxtPkg, "nuxt generate")},
			want: withNPM(Plan{Kind: KindNPM, Preset: "nuxt", Reason: "nuxt in package.json, build script runs nuxt generate",
				OutputCandidates: []string{".output/public"}}),
			describe: "Nuxt (nuxt in package.json, build script runs nuxt generate) → npm build (npm), output .output/public",
		},
		{
			name:  "nuxi generate",
			files: map[string]string{"package.json": sprintf(nuxtPkg, "nuxi generate --dotenv .env.production")},
			want: withNPM(Plan{Kind: KindNPM, Preset: "nuxt", Reason: "nuxt in package.json, build script runs nuxt generate",
				OutputCandidates: []string{".output/public"}}),
		},
		{
			name:  "nuxt with its own start script",
			files: map[string]string{"package.json": strings.Replace(sprintf(nuxtPkg, "nuxt build"), `"dev"`, `"start": "node .output/server/index.mjs", "dev"`, 1)},
			want: withNPM(Plan{Kind: KindNode, Preset: "nuxt", Reason: "nuxt in package.json, start script",
				Start: "node .output/server/index.mjs", OutputDir: ".", OutputCandidates: []string{"."}}),
		},
		{
			name:  "nitro",
			files: map[string]string{"package.json": nitroPkg},
			want: withNPM(Plan{Kind: KindNode, Preset: "nitro", Reason: "nitropack in package.json",
				Start: "node server/index.mjs", Entry: ".output/server/index.mjs", OutputDir: ".output", OutputCandidates: []string{".output"}}),
		},
		{
			name:  "astro static",
			files: map[string]string{"package.json": sprintf(astroPkg, ""), "astro.config.mjs": "import { defineConfig } from 'astro/config';\nexport default defineConfig({});\n"},
			want: withNPM(Plan{Kind: KindNPM, Preset: "astro", Reason: "astro in package.json",
				SPAHint: SPANo, OutputCandidates: []string{"dist"}}),
			describe: "Astro (astro in package.json) → npm build (npm), output dist",
		},
		{
			name: "astro node standalone",
			files: map[string]string{"package.json": sprintf(astroPkg, `, "@astrojs/node": "^9.2.2"`),
				"astro.config.mjs": sprintf(astroNodeConfig, "standalone")},
			want: withNPM(Plan{Kind: KindNode, Preset: "astro", Reason: "astro and @astrojs/node in package.json",
				Start: "node ./dist/server/entry.mjs", Entry: "dist/server/entry.mjs", OutputDir: ".", OutputCandidates: []string{"."}}),
			describe: "Astro (astro and @astrojs/node in package.json) → Node server, start: node ./dist/server/entry.mjs",
		},
		{
			name: "react-router server with its start script",
			files: map[string]string{"package.json": sprintf(reactRouterPkg, `"start": "react-router-serve ./build/server/index.js",`, `"@react-router/serve": "^7.7.1",`),
				"react-router.config.ts": sprintf(reactRouterConfig, "true")},
			want: withNPM(Plan{Kind: KindNode, Preset: "react-router", Reason: "@react-router/dev in package.json, start script",
				Start: "react-router-serve ./build/server/index.js", OutputDir: ".", OutputCandidates: []string{"."}}),
			describe: "React Router (@react-router/dev in package.json, start script) → Node server, start: react-router-serve ./build/server/index.js",
		},
		{
			name:  "react-router server without start script",
			files: map[string]string{"package.json": sprintf(reactRouterPkg, "", `"@react-router/serve": "^7.7.1",`)},
			want: withNPM(Plan{Kind: KindNode, Preset: "react-router", Reason: "@react-router/dev and @react-router/serve in package.json",
				Start: "node_modules/.bin/react-router-serve ./build/server/index.js", Entry: "build/server/index.js",
				OutputDir: ".", OutputCandidates: []string{"."}}),
		},
		{
			name: "react-router spa mode",
			files: map[string]string{"package.json": sprintf(reactRouterPkg, "", ""),
				"react-router.config.ts": sprintf(reactRouterConfig, "false")},
			want: withNPM(Plan{Kind: KindNPM, Preset: "react-router", Reason: "@react-router/dev in package.json, ssr: false",
				OutputCandidates: []string{"build/client"}}),
		},
		{
			name: "react-router found by its vite plugin",
			files: map[string]string{"package.json": `{"scripts":{"build":"react-router build","start":"node server.js"},"dependencies":{"express":"5"}}`,
				"vite.config.ts": "import { reactRouter } from \"@react-router/dev/vite\";\nexport default { plugins: [reactRouter()] };\n"},
			want: withNPM(Plan{Kind: KindNode, Preset: "react-router", Reason: "vite.config.ts uses @react-router/dev/vite, start script",
				Start: "node server.js", OutputDir: ".", OutputCandidates: []string{"."}}),
		},
		{
			name:  "remix",
			files: map[string]string{"package.json": remixPkg, "vite.config.ts": "export default {}"},
			want: withNPM(Plan{Kind: KindNode, Preset: "remix", Reason: "@remix-run/dev in package.json, start script",
				Start: "remix-serve ./build/server/index.js", OutputDir: ".", OutputCandidates: []string{"."}}),
		},
		{
			name:  "vite spa",
			files: map[string]string{"package.json": vitePkg, "index.html": "<div id=root>"},
			want: withNPM(Plan{Kind: KindNPM, Preset: "vite", Reason: "vite in package.json", SPAHint: SPAYes,
				OutputCandidates: npmCandidates}),
			describe: "Vite (vite in package.json) → npm build (npm), output first of dist, build, out, public",
		},
		{
			name:  "create react app",
			files: map[string]string{"package.json": craPkg},
			want: withNPM(Plan{Kind: KindNPM, Preset: "create-react-app", Reason: "react-scripts in package.json", SPAHint: SPAYes,
				OutputCandidates: npmCandidates}),
		},
		{
			name:  "hono",
			files: map[string]string{"package.json": honoPkg},
			want: withNPM(Plan{Kind: KindNode, Preset: "hono", Reason: "hono in package.json, start script",
				Start: "node dist/index.js", OutputDir: ".", OutputCandidates: []string{"."}}),
			describe: "Hono (hono in package.json, start script) → Node server, start: node dist/index.js",
		},
		// Settings win over a preset.
		{
			name:     "start command on astro static",
			files:    map[string]string{"package.json": sprintf(astroPkg, "")},
			settings: Settings{StartCommand: "node serve.mjs"},
			want: withNPM(Plan{Kind: KindNode, Preset: "astro", Reason: "astro in package.json",
				Start: "node serve.mjs", OutputDir: ".", OutputCandidates: []string{"."}}),
		},
		{
			name:     "commands and output on nuxt",
			files:    map[string]string{"package.json": sprintf(nuxtPkg, "nuxt build")},
			settings: Settings{InstallCommand: "npm ci", BuildCommand: "npm run build:prod", OutputDir: "."},
			want: Plan{Kind: KindNode, PackageManager: "npm", Install: []string{"sh", "-c", "npm ci"}, Build: []string{"sh", "-c", "npm run build:prod"},
				Preset: "nuxt", Reason: "nuxt in package.json",
				Start: "node server/index.mjs", Entry: ".output/server/index.mjs", OutputDir: ".", OutputCandidates: []string{"."}},
		},
		{
			name: "start command replaces sveltekit adapter-auto",
			files: map[string]string{"package.json": sprintf(svelteKitPkg, "@sveltejs/adapter-auto"),
				"svelte.config.js": sprintf(svelteConfig, "@sveltejs/adapter-auto", "")},
			settings: Settings{StartCommand: "node my-server.js"},
			want:     withNPM(Plan{Kind: KindNode, Start: "node my-server.js", OutputDir: ".", OutputCandidates: []string{"."}}),
		},
		{
			name:     "a forced kind ignores presets",
			files:    map[string]string{"package.json": sprintf(svelteKitPkg, "@sveltejs/adapter-auto")},
			settings: Settings{Framework: "npm"},
			want:     withNPM(Plan{Kind: KindNPM, OutputCandidates: npmCandidates}),
		},
		{
			name:     "framework astro forces the preset",
			files:    map[string]string{"package.json": `{"scripts":{"build":"astro build"}}`, "Procfile": "not a procfile"},
			settings: Settings{Framework: "Astro"},
			want: Plan{Kind: KindNPM, PackageManager: "npm", Build: []string{"npm", "run", "build"}, Preset: "astro",
				Reason: "framework astro in the project settings", SPAHint: SPANo, OutputCandidates: []string{"dist"}},
			describe: "Astro (framework astro in the project settings) → npm build (npm), output dist; no dependencies, install skipped",
		},
		{
			name: "framework sveltekit with adapter-node",
			files: map[string]string{"package.json": `{"dependencies":{"@sveltejs/adapter-node":"5"}}`,
				"svelte.config.js": sprintf(svelteConfig, "@sveltejs/adapter-node", "")},
			settings: Settings{Framework: "sveltekit"},
			want: withNPM(Plan{Kind: KindNode, Preset: "sveltekit", Reason: "framework sveltekit in the project settings, @sveltejs/adapter-node in package.json",
				Build: []string{"npx", "--no-install", "vite", "build"}, Start: "node build", Entry: "build/index.js", OutputDir: ".", OutputCandidates: []string{"."}}),
		},
		{
			name:  "react-router found by its config file",
			files: map[string]string{"package.json": `{"scripts":{"build":"react-router build","start":"node server.js"}}`, "react-router.config.js": "export default {}"},
			want: Plan{Kind: KindNode, PackageManager: "npm", Build: []string{"npm", "run", "build"}, Preset: "react-router",
				Reason: "react-router.config.js at the root, start script", Start: "node server.js", OutputDir: ".", OutputCandidates: []string{"."}},
		},
		{
			name:     "framework nuxt without package.json",
			files:    map[string]string{"nuxt.config.ts": "export default {}"},
			settings: Settings{Framework: "nuxt"},
			want: Plan{Kind: KindNode, PackageManager: "npm", Build: []string{"npx", "--no-install", "nuxt", "build"}, Preset: "nuxt",
				Reason: "framework nuxt in the project settings", Start: "node server/index.mjs", Entry: ".output/server/index.mjs",
				OutputDir: ".output", OutputCandidates: []string{".output"}},
		},
		{
			name:  "procfile wins over a preset",
			files: map[string]string{"Procfile": "web: node build", "package.json": sprintf(svelteKitPkg, "@sveltejs/adapter-auto")},
			want:  withNPM(Plan{Kind: KindProcfile, Start: "node build", OutputDir: ".", OutputCandidates: []string{"."}}),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Detect(tree(t, tc.files), tc.settings)
			if err != nil {
				t.Fatalf("Detect: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Detect =\n %+v\nwant\n %+v", got, tc.want)
			}
			if tc.describe != "" && got.Describe() != tc.describe {
				t.Errorf("Describe =\n %q\nwant\n %q", got.Describe(), tc.describe)
			}
		})
	}
}

// TestDetectUnservablePresets: a framework whose build nothing here can run
// fails at detection, saying what to change.
func TestDetectUnservablePresets(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"sveltekit adapter-auto", map[string]string{"package.json": sprintf(svelteKitPkg, "@sveltejs/adapter-auto"),
			"svelte.config.js": sprintf(svelteConfig, "@sveltejs/adapter-auto", "")},
			[]string{"SvelteKit with @sveltejs/adapter-auto", "@sveltejs/adapter-node", "@sveltejs/adapter-static"}},
		{"sveltekit adapter-vercel", map[string]string{"package.json": sprintf(svelteKitPkg, "@sveltejs/adapter-vercel")},
			[]string{"SvelteKit with @sveltejs/adapter-vercel"}},
		{"sveltekit without adapter", map[string]string{"package.json": `{"scripts":{"build":"vite build"},"devDependencies":{"@sveltejs/kit":"2"}}`},
			[]string{"SvelteKit with no adapter"}},
		{"astro node middleware", map[string]string{"package.json": sprintf(astroPkg, `, "@astrojs/node": "^9.2.2"`),
			"astro.config.mjs": sprintf(astroNodeConfig, "middleware")},
			[]string{"middleware mode", "start script"}},
		{"astro cloudflare", map[string]string{"package.json": sprintf(astroPkg, `, "@astrojs/cloudflare": "^12.0.0"`)},
			[]string{"Astro with @astrojs/cloudflare", "@astrojs/node"}},
		{"react-router without serve", map[string]string{"package.json": sprintf(reactRouterPkg, "", ""),
			"react-router.config.ts": sprintf(reactRouterConfig, "true")},
			[]string{"React Router builds a server", "@react-router/serve", "ssr: false"}},
		{"react-router with ssr false only in a comment", map[string]string{"package.json": sprintf(reactRouterPkg, "", ""),
			"react-router.config.ts": "export default {\n  // ssr: false,\n};\n"},
			[]string{"React Router builds a server"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Detect(tree(t, tc.files), Settings{})
			if !errors.Is(err, ErrUnservable) {
				t.Fatalf("Detect = %+v, %v; want ErrUnservable", p, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestResolveServerEntry: a server preset whose build did not write its
// entry fails naming the file, before anything is packed.
func TestResolveServerEntry(t *testing.T) {
	files := map[string]string{"package.json": sprintf(svelteKitPkg, "@sveltejs/adapter-node"), "build/client/app.js": "x"}
	dir := tree(t, files)
	p, err := Detect(dir, Settings{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ResolveOutput(dir, &p); !errors.Is(err, ErrNoOutput) || !strings.Contains(err.Error(), "build/index.js") {
		t.Fatalf("ResolveOutput = %v, want ErrNoOutput naming build/index.js", err)
	}
	writeFile(t, dir+"/build/index.js", "import './handler.js'", 0o644)
	if err := ResolveOutput(dir, &p); err != nil || p.OutputDir != "." || p.SPA {
		t.Fatalf("ResolveOutput = %v, OutputDir %q SPA %v; want the whole app", err, p.OutputDir, p.SPA)
	}
}

// TestServerBundleIsNeverPublished is the regression test for SvelteKit's
// server bundle and its source maps served as static files: a static
// build whose output holds server code fails instead of being published.
func TestServerBundleIsNeverPublished(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"sveltekit adapter-node", map[string]string{"build/index.js": "x", "build/handler.js": "x", "build/env.js": "x",
			"build/server/chunks/handler-YXFODty4.js.map": "{}", "build/client/_app/version.json": "{}"}, "SvelteKit's adapter-node server"},
		{"nitro", map[string]string{"dist/nitro.json": "{}", "dist/public/robots.txt": "x"}, "a Nitro build"},
		{"nitro server", map[string]string{"out/server/index.mjs": "x", "out/public/index.html": "x"}, "a Nitro server"},
		{"astro server", map[string]string{"dist/server/entry.mjs": "x", "dist/client/index.html": "x"}, "an Astro server"},
		{"react-router server", map[string]string{"build/server/index.js": "x", "build/client/index.html": "x"}, "a server build (server/index.js)"},
		{"source maps under server", map[string]string{"dist/index.html": "x", "dist/server/chunks/api.mjs.map": "{}"},
			"server code with source maps (server/chunks/api.mjs.map)"},
		{"vite ssr", map[string]string{"dist/client/index.html": "x", "dist/server/entry-server.js": "export function render() {}"},
			"server code (server/entry-server.js)"},
		{"cloudflare worker", map[string]string{"dist/index.html": "x", "dist/_worker.js/index.js": "export default {}"},
			"a Cloudflare worker (_worker.js/index.js)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := Plan{Kind: KindNPM, OutputCandidates: npmCandidates}
			err := ResolveOutput(tree(t, tc.files), &p)
			if !errors.Is(err, ErrUnservable) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "start command") {
				t.Fatalf("ResolveOutput = %v, want ErrUnservable naming %q and what to do", err, tc.want)
			}
		})
	}
	t.Run("a static site with a server section", func(t *testing.T) {
		p := Plan{Kind: KindNPM, OutputCandidates: npmCandidates}
		err := ResolveOutput(tree(t, map[string]string{"dist/index.html": "x", "dist/server/index.html": "docs", "dist/server/app.js": "x"}), &p)
		if err != nil {
			t.Fatalf("ResolveOutput: %v", err)
		}
	})
	t.Run("server apps keep their bundle", func(t *testing.T) {
		p := Plan{Kind: KindNode, Start: "node build", OutputDir: ".", OutputCandidates: []string{"."}}
		if err := ResolveOutput(tree(t, map[string]string{"build/index.js": "x", "build/handler.js": "x"}), &p); err != nil {
			t.Fatalf("ResolveOutput: %v", err)
		}
	})
}

// TestSPADecision is the 404 table: the index.html fallback only for
// single-page apps.
func TestSPADecision(t *testing.T) {
	cases := []struct {
		name  string
		hint  SPAHint
		files map[string]string
		spa   bool
	}{
		{"one page", SPAAuto, map[string]string{"dist/index.html": "x", "dist/assets/app-1a2b.js": "x"}, true},
		{"one page with its own 404", SPAAuto, map[string]string{"dist/index.html": "x", "dist/404.html": "x"}, false},
		{"several pages", SPAAuto, map[string]string{"dist/index.html": "x", "dist/about.html": "x"}, false},
		{"pages in folders", SPAAuto, map[string]string{"dist/index.html": "x", "dist/blog/first/index.html": "x"}, false},
		{"upper-case extension", SPAAuto, map[string]string{"dist/index.html": "x", "dist/LEGAL.HTML": "x"}, false},
		{"no index", SPAAuto, map[string]string{"dist/app.js": "x"}, false},
		{"index only in a folder", SPAAuto, map[string]string{"dist/app/index.html": "x"}, false},
		{"vite with a second entry", SPAYes, map[string]string{"dist/index.html": "x", "dist/silent-check-sso.html": "x"}, true},
		{"vite with its own 404", SPAYes, map[string]string{"dist/index.html": "x", "dist/404.html": "x"}, false},
		{"astro one page", SPANo, map[string]string{"dist/index.html": "x"}, false},
		{"astro pages", SPANo, map[string]string{"dist/index.html": "x", "dist/about/index.html": "x", "dist/404.html": "x"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := Plan{Kind: KindNPM, SPAHint: tc.hint, OutputCandidates: []string{"dist"}}
			if err := ResolveOutput(tree(t, tc.files), &p); err != nil {
				t.Fatal(err)
			}
			if p.SPA != tc.spa {
				t.Errorf("SPA = %v, want %v", p.SPA, tc.spa)
			}
		})
	}
	t.Run("a static kind is never an SPA", func(t *testing.T) {
		p := Plan{Kind: KindStatic, SPAHint: SPAYes, OutputDir: "."}
		if err := ResolveOutput(tree(t, map[string]string{"index.html": "x"}), &p); err != nil || p.SPA {
			t.Fatalf("ResolveOutput = %v, SPA %v", err, p.SPA)
		}
	})
}

// TestSPAProperty: with the automatic rule, an output is an SPA exactly
// when it has index.html at its root and no other .html file.
func TestSPAProperty(t *testing.T) {
	names := []string{"index.html", "404.html", "about.html", "a/index.html", "a/b/page.html", "app.js", "a/style.css", "b/data.json"}
	rapid.Check(t, func(rt *rapid.T) {
		chosen := rapid.SliceOfDistinct(rapid.SampledFrom(names), rapid.ID[string]).Draw(rt, "files")
		files := map[string]string{"dist/": ""}
		html := 0
		index := false
		for _, n := range chosen {
			files["dist/"+n] = "x"
			if strings.HasSuffix(n, ".html") {
				html++
			}
			index = index || n == "index.html"
		}
		p := Plan{Kind: KindNPM, OutputCandidates: []string{"dist"}}
		if err := ResolveOutput(tree(t, files), &p); err != nil {
			rt.Fatal(err)
		}
		if want := index && html == 1; p.SPA != want {
			rt.Fatalf("files %v: SPA = %v, want %v", chosen, p.SPA, want)
		}
	})
}

// TestFrameworkNames: every value the front ends offer is accepted, kinds
// keep their names, and every preset has its rule and label.
func TestFrameworkNames(t *testing.T) {
	for _, f := range Frameworks {
		if !ValidFramework(f.Name) || !ValidFramework(strings.ToUpper(f.Name)) {
			t.Errorf("ValidFramework(%q) = false", f.Name)
		}
		if f.Kind != 0 && f.Name != f.Kind.String() {
			t.Errorf("framework %q forces kind %v: names differ", f.Name, f.Kind)
		}
		if f.Kind == 0 && (presetRuleNamed(f.Name) == nil || PresetLabel(f.Name) == f.Name) {
			t.Errorf("preset %q has no rule or no label", f.Name)
		}
		if want := f.Kind != KindStatic && f.Kind != KindNPM; ServerFramework(f.Name) != want {
			t.Errorf("ServerFramework(%q) = %v, want %v", f.Name, !want, want)
		}
	}
	for _, r := range presetRules {
		if !ValidFramework(r.name) {
			t.Errorf("preset %q cannot be chosen in the settings", r.name)
		}
	}
	if ValidFramework("vite") || ValidFramework("rails") || !ValidFramework("") {
		t.Error("ValidFramework accepts a name it cannot force, or refuses detection")
	}
	if got := FrameworkNames(); !strings.HasPrefix(got, "static, npm, nextjs, node, procfile, sveltekit, nuxt") {
		t.Errorf("FrameworkNames = %q", got)
	}
	if got := ServerFrameworkNames(); strings.Contains(got, "static") || strings.Contains(got, "npm,") || !strings.Contains(got, "astro") {
		t.Errorf("ServerFrameworkNames = %q", got)
	}
	_, err := Detect(tree(t, map[string]string{"package.json": `{"devDependencies":{"svelte":"5"}}`}), Settings{Framework: "sveltekit"})
	if !errors.Is(err, ErrUnservable) || !strings.Contains(err.Error(), "SvelteKit with no adapter") {
		t.Errorf("framework sveltekit without an adapter: err = %v, want ErrUnservable", err)
	}
}
