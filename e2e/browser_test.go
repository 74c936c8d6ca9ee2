package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"minivercel/internal/testenv"

	"github.com/chromedp/chromedp"
)

const chromiumPath = "/usr/bin/chromium"

// browser is one headless Chromium tab on the panel of a running server.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string // http://localhost:<edge port>
}

// newBrowser starts Debian's Chromium with a fresh profile. When Chromium is
// not installed it skips the test (fails it in CI, see testenv.Skipf): the
// rest of the suite needs no browser.
func newBrowser(t *testing.T, s *server) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		testenv.Skipf(t, "browser tests need Chromium at %s (apt-get install chromium): %v", chromiumPath, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox, // running as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser, bound to ctx
		t.Fatalf("start chromium: %v", err)
	}
	return &browser{t: t, ctx: ctx, base: fmt.Sprintf("http://localhost:%d", s.httpPort)}
}

// do runs steps with a deadline, failing the test with the page's URL on error.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		loc, _ := chromedp.Run(b.ctx, chromedp.Location())
		body, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		b.t.Fatalf("%s: %v\nat %s:\n%s", what, err, loc, body)
	}
}

// eval runs a script and returns its value.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS waits until a script's value is truthy.
func (b *browser) waitJS(what, expr string) {
	b.t.Helper()
	b.do(what, func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(80*time.Second))(ctx, t)
		return chromedp.Void{}, err
	})
}

// shot saves a full-page screenshot to screenshots/<name>.png for people to
// look at; the directory is git-ignored.
func (b *browser) shot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll("screenshots", 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("screenshots", name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) phone() chromedp.Action[chromedp.Void] {
	return chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
}

func (b *browser) desktop() chromedp.Action[chromedp.Void] {
	return chromedp.EmulateViewport(1280, 900)
}

// TestBrowserPanel drives the panel as a person would in Chromium: log in,
// find the pushed project, watch a running build's log grow live, then roll
// production back with the Activate button and its confirmation.
func TestBrowserPanel(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	b := newBrowser(t, s)
	const password = "panel-test-password"
	if out, code := s.admin(t, password+"\n", "user", "set-password", "admin", "--password-stdin"); code != 0 {
		t.Fatalf("set password exited %d:\n%s", code, out)
	}

	// Version one is live; version two's build waits at a gate the test
	// opens once the build page is showing, so the line printed after the
	// gate can only reach the page live.
	marker := newGate(t, "open")

	// Login, with the page that asked for it remembered.
	b.do("open the panel",
		chromedp.Navigate(b.base+"/keys"),
		chromedp.WaitVisible(chromedp.CSS("#username")),
	)
	b.shot("login")
	b.do("wrong password",
		chromedp.SendKeys(chromedp.CSS("#username"), "admin"),
		chromedp.SendKeys(chromedp.CSS("#password"), "wrong-password"),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS("#login-error")),
	)
	if msg := eval[string](b, `document.getElementById("login-error").textContent`); !strings.Contains(msg, "Invalid username or password") {
		t.Errorf("login error = %q", msg)
	}
	b.do("log in",
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS("#public_key")),
	)
	if n := eval[int](b, `document.querySelectorAll(".key").length`); n != 1 {
		t.Errorf("keys page lists %d keys, want the admin's one", n)
	}
	b.shot("keys")

	// Before the first push the dashboard explains how to deploy.
	b.do("empty dashboard", chromedp.Navigate(b.base+"/"), chromedp.WaitVisible(chromedp.CSS(".empty .snippet")))
	if got := eval[string](b, `document.querySelector(".snippet").innerText`); !strings.Contains(got, "git remote add minivercel ssh://git@localhost:2222/my-app.git") {
		t.Errorf("empty dashboard snippet:\n%s", got)
	}
	b.shot("dashboard-empty")
	r := newRepo(t, "main", map[string]string{"index.html": "version one"})
	s.mustPush(r, "blog")
	s.waitBody("blog.localhost", "/", "version one")

	// The dashboard shows the pushed project with its status and URL.
	b.do("dashboard", chromedp.Navigate(b.base+"/"), chromedp.WaitVisible(chromedp.CSS(`a[href="/projects/blog"]`)))
	card := eval[string](b, `document.querySelector(".project-card").innerText`)
	for _, want := range []string{"blog", "blog.localhost", "Succeeded", "Healthy"} {
		if !strings.Contains(card, want) {
			t.Errorf("dashboard card lacks %q:\n%s", want, card)
		}
	}
	b.shot("dashboard")
	b.do("phone", b.phone())
	b.shot("dashboard-phone")
	b.do("desktop", b.desktop())

	// Version two: the push runs until its build ends, so it runs aside.
	r.commit("version two", gatedBuild("blog", marker, "version two"))
	push := s.pushCmd(r, s.key, s.remote("blog"), "HEAD")
	startUntil(t, push, "waiting for the gate")

	b.do("project page with the running build",
		chromedp.Navigate(b.base+"/projects/blog"),
		chromedp.WaitVisible(chromedp.CSS(`.badge-running`)),
	)
	b.shot("project-building")
	b.do("open the running build",
		chromedp.Click(chromedp.CSS(`tbody tr:first-child a.build-link`)),
		chromedp.WaitVisible(chromedp.CSS(`#log[data-live="true"]`)),
	)
	// Wait until the websocket is subscribed, then open the gate.
	b.waitJS("log goes live", `document.getElementById("log-state").textContent === "Live"`)
	if got := eval[string](b, `document.getElementById("log").innerText`); !strings.Contains(got, "waiting for the gate") || strings.Contains(got, "gate opened") {
		t.Fatalf("log before the gate opened:\n%s", got)
	}
	b.shot("build-running")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	b.waitJS("line printed after the page loaded appears",
		`document.getElementById("log").innerText.includes("gate opened: building version two")`)
	b.waitJS("status badge turns succeeded", `document.querySelector("#build-status .badge").dataset.status === "succeeded"`)
	b.waitJS("the finished build's URL appears without a reload", `!!document.querySelector('#build-meta a[href*="blog--"]')`)
	// Every line once, in order: the replay after subscribing overlaps the
	// lines rendered with the page.
	if dup := eval[string](b, `(() => {
		const seqs = [...document.querySelectorAll("#log .ln")].map(e => Number(e.dataset.seq));
		for (let i = 1; i < seqs.length; i++) if (seqs[i] !== seqs[i-1] + 1) return "seq " + seqs[i-1] + " then " + seqs[i];
		return seqs[0] === 1 ? "" : "first seq " + seqs[0];
	})()`); dup != "" {
		t.Errorf("log lines out of order or repeated: %s", dup)
	}
	b.shot("build")
	push.Wait()
	s.waitBody("blog.localhost", "/", "version two")

	b.do("build page on a phone", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#log")), b.phone())
	b.shot("build-phone")
	b.do("desktop", b.desktop())

	// Roll back to version one with the button and its confirmation.
	b.do("roll back",
		chromedp.Navigate(b.base+"/projects/blog"),
		chromedp.WaitVisible(chromedp.CSS(`tr.is-live`)),
		chromedp.Click(chromedp.Search(`//button[normalize-space()="Roll back"]`)),
		chromedp.WaitVisible(chromedp.CSS("#confirm-dialog[open]")),
	)
	b.shot("rollback-confirm")
	b.do("confirm the rollback",
		chromedp.Click(chromedp.CSS("#confirm-ok")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	if msg := eval[string](b, `document.querySelector(".flash").textContent`); !strings.Contains(msg, "is live") {
		t.Fatalf("after rollback the page says %q", msg)
	}
	b.shot("project")
	b.do("project page on a phone", b.phone())
	b.shot("project-phone")
	b.do("desktop", b.desktop())
	if code, body := s.get("blog.localhost", "/"); code != 200 || body != "version one" {
		t.Fatalf("after rollback blog serves %d %q", code, body)
	}

	// Settings: a refused value is explained next to its field.
	b.do("settings",
		chromedp.Navigate(b.base+"/projects/blog/settings"),
		chromedp.WaitVisible(chromedp.CSS("#health_tries")),
		chromedp.SetValue(chromedp.CSS("#health_tries"), "0"),
		chromedp.Submit(chromedp.CSS("#health_tries")),
		chromedp.WaitVisible(chromedp.CSS("#health_tries-err")),
	)
	b.shot("settings")

	b.do("not found", chromedp.Navigate(b.base+"/projects/nope"), chromedp.WaitVisible(chromedp.CSS(".error-page")))
	b.shot("error")
}
