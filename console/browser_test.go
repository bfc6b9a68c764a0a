package console_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gpuspace/gpuspace/apiserver/apiservertest"
	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
	"github.com/gpuspace/gpuspace/internal/server"
	"github.com/gpuspace/gpuspace/internal/server/servertest"
)

var env *testenv.Env

func TestMain(m *testing.M) { apiservertest.Main(m, &env) }

// chromium finds a Chromium to drive: $GPUSPACE_CHROMIUM, else Debian's
// chromium-headless-shell or chromium.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("GPUSPACE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium-headless-shell", "chromium", "headless_shell", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no chromium-headless-shell or chromium on PATH; CI must install one (.ci/run does: apt-get install chromium-headless-shell)")
	}
	t.Skip("skipping the browser test: no chromium-headless-shell or chromium on PATH (apt-get install chromium-headless-shell); CI runs it")
	return ""
}

// artifacts is where screenshots go: $GPUSPACE_ARTIFACTS_DIR, else a
// directory under the temp dir (logged).
func artifacts(t *testing.T) string {
	dir := os.Getenv("GPUSPACE_ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "gpuspace-console-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// TestConsoleInBrowser drives the console in a real headless Chromium
// against the whole control plane (controllers, API, console) on a real
// kube-apiserver with simulated GPU nodes: log in with an Owner key, the
// pool shows the nodes, a workspace and GPRs made through the forms, the
// timeline draws them and follows a GPR to Provisioned without a reload,
// early release, a request forged without the CSRF token is refused, a
// hostile workspace description stays text, a Viewer sees no control that
// changes anything; and the first load and a 500-node, 2000-GPR timeline
// are timed.
func TestConsoleInBrowser(t *testing.T) {
	exe := chromium(t)
	out := artifacts(t)
	ctx := context.Background()
	sfx := apiservertest.Suffix()
	ns := "gs-console-" + sfx
	base := servertest.Start(t, env.Config, server.Options{Namespace: ns, DefaultCluster: "worker-1"})
	// The H100 nodes sit in two GKE blocks (the built-in topology): the
	// pool groups them by block, the GPR page says where its nodes sit.
	blockOf := func(i int) string { return fmt.Sprintf("blk-%d-%s", min(i, 1), sfx) }
	for i := range 3 {
		if _, err := env.AddGPUNode(ctx, testenv.GPUNode{Name: fmt.Sprintf("h100-%d-%s", i, sfx), InstanceType: "p5.48xlarge",
			Product: "NVIDIA-H100-80GB-HBM3", MemoryMiB: 81559, GPUs: 8,
			Labels: map[string]string{"cloud.google.com/gce-topology-block": blockOf(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := env.AddGPUNode(ctx, testenv.GPUNode{Name: "t4-0-" + sfx, InstanceType: "n1-standard-8", Product: "Tesla-T4", MemoryMiB: 15360, GPUs: 1}); err != nil {
		t.Fatal(err)
	}
	ownerKey, _, err := auth.CreateKey(ctx, env.Client, ns, auth.KeyRequest{Name: "console-owner", Role: auth.RoleOwner}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	viewerKey, _, err := auth.CreateKey(ctx, env.Client, ns, auth.KeyRequest{Name: "console-viewer", Role: auth.RoleViewer}, time.Now())
	if err != nil {
		t.Fatal(err)
	}

	bctx := newBrowser(t, exe)

	var perrs *pageErrors // from the first page on
	fail := func(what string, err error) {
		t.Helper()
		url, _ := chromedp.Run(bctx, chromedp.Location())
		shot(t, bctx, filepath.Join(out, "failed.png"))
		t.Fatalf("%s: %v (at %s)", what, err, url)
	}
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			fail(what, err)
		}
		if perrs != nil {
			perrs.check(t, what)
		}
	}
	evalBool := func(what, js string) bool { t.Helper(); return evaluate[bool](t, bctx, fail, what, js) }
	evalNum := func(what, js string) float64 { t.Helper(); return evaluate[float64](t, bctx, fail, what, js) }
	evalStr := func(what, js string) string { t.Helper(); return evaluate[string](t, bctx, fail, what, js) }
	exec := func(what, js string) {
		t.Helper()
		evalBool(what, "(() => { "+js+"; return true })()")
	}
	waitJS := func(what, cond string) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for {
			if evalBool(what, "!!("+cond+")") {
				perrs.check(t, what)
				return
			}
			if time.Now().After(deadline) {
				shot(t, bctx, filepath.Join(out, "failed.png"))
				t.Fatalf("%s: %s never held; page: %s", what, cond, evalStr("page text", `location.href + " | " + document.body.innerText.slice(0, 800)`))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// The browser starts on the first action; time the page, not that.
	run("start the browser", chromedp.Navigate("about:blank"))
	perrs = listenPageErrors(t, bctx)
	defer func() { perrs.check(t, "the last page") }()
	// First load: the page, its assets and the login form.
	start := time.Now()
	run("open the console", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("apikey")))
	firstLoad := time.Since(start)
	navMs := evalNum("navigation timing", `(() => { const n = performance.getEntriesByType("navigation")[0]; return n.loadEventEnd - n.startTime; })()`)
	t.Logf("first load: login form visible after %v (navigation to load event %.0f ms)", firstLoad.Round(time.Millisecond), navMs)
	if firstLoad > time.Second {
		t.Errorf("first load took %v, want under 1s", firstLoad)
	}

	// Log in as Owner: the pool shows the simulated nodes.
	run("log in", chromedp.SendKeys(chromedp.ID("apikey"), ownerKey), chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)))
	waitJS("pool shows the nodes", `document.querySelectorAll("tr[data-node]").length >= 4 && document.querySelector("#live").textContent === "live"`)
	if evalBool("cookie is HttpOnly", `document.cookie.includes("gpuspace_session")`) {
		t.Error("the session cookie is readable by page scripts")
	}
	exec("mark the page", `window.__noReload = 1`)

	// A workspace through the form, its description hostile markup.
	ws := "web-" + sfx
	hostile := `<script>window.__xss=1</script><img src=x onerror="window.__xss=2">`
	run("new workspace", chromedp.Navigate(base+"/#/workspaces"),
		chromedp.WaitVisible(chromedp.CSS(`details.card > summary`)), chromedp.Click(chromedp.CSS(`details.card > summary`)),
		chromedp.SendKeys(chromedp.ID("wsname"), ws), chromedp.SendKeys(chromedp.ID("wsuser"), "Jane Doe"),
		chromedp.SendKeys(chromedp.ID("wsdesc"), hostile))
	// The name's pattern compiles (Chromium uses the v flag) and refuses
	// what a DNS label may not be.
	for name, bad := range map[string]bool{"Bad_Name": true, "-lead": true, "ok-name": false} {
		if got := evalBool("name pattern", fmt.Sprintf(`(() => { const i = document.querySelector("#wsname"), v = i.value;
			i.value = %q; const bad = i.validity.patternMismatch; i.value = v; return bad })()`, name)); got != bad {
			t.Errorf("workspace name %q: patternMismatch %v, want %v", name, got, bad)
		}
	}
	run("submit workspace", chromedp.Click(chromedp.CSS(`#ws-form button[type="submit"]`)))
	waitJS("workspace listed", fmt.Sprintf(`document.querySelector('tr[data-ws=%q]')`, ws))
	fired := evalStr("no script ran", `String(window.__xss ?? "")`)
	shown := evalStr("description as text", fmt.Sprintf(`document.querySelector('tr[data-ws=%q] .desc').textContent`, ws))
	made := evalNum("no elements made", `document.querySelectorAll('#view img, #view script').length`)
	if fired != "" || shown != hostile || made != 0 {
		t.Errorf("hostile description: fired %q, shown %q, %v elements made of it", fired, shown, made)
	}

	// GPR A takes every H100 node; B (same workspace) queues behind it.
	newGPR := func(name string, nodes int) string {
		t.Helper()
		run("new GPR "+name, chromedp.Navigate(base+"/#/new/"+ws), chromedp.WaitVisible(chromedp.ID("gpr-form")),
			chromedp.SetValue(chromedp.ID("g-name"), name), chromedp.SetValue(chromedp.ID("g-shape"), "H100"),
			chromedp.SetValue(chromedp.ID("g-gpus"), "8"), chromedp.SetValue(chromedp.ID("g-nodes"), fmt.Sprint(nodes)))
		exec("form input", `document.querySelector("#gpr-form").dispatchEvent(new Event("input", {bubbles: true}))`)
		waitJS("wait-time preview", `/Would likely start/.test(document.querySelector("#gpr-preview").textContent)`)
		run("create "+name, chromedp.Click(chromedp.ID("g-submit")))
		waitJS("GPR page", `location.hash.startsWith("#/gpr/gpr-")`)
		return strings.TrimPrefix(evalStr("GPR id", `location.hash`), "#/gpr/")
	}
	a := newGPR("big", 3)
	waitJS("A provisioned", `document.querySelector("#gpr-status") && document.querySelector("#gpr-status").textContent === "Provisioned"`)
	waitJS("A's blocks", fmt.Sprintf(`document.querySelector("#gpr-domains").textContent.includes("builtin-gke/%s (1)") && document.querySelector("#gpr-domains").textContent.includes("builtin-gke/%s (2)")`, blockOf(0), blockOf(1)))
	b := newGPR("next", 1)

	run("timeline", chromedp.Navigate(base+"/#/timeline"))
	waitJS("A and B on the timeline", fmt.Sprintf(`document.querySelector('.tl .bar.Provisioned[data-gpr=%q]') && document.querySelector('.tl .bar.Queued[data-gpr=%q]')`, a, b))
	// Keyboard: Tab to a bar, Enter selects it.
	run("select a bar", chromedp.Focus(chromedp.CSS(fmt.Sprintf(`.tl .bar[data-gpr=%q]`, b))), chromedp.KeyEvent("\r"))
	waitJS("selection shown", fmt.Sprintf(`document.querySelector("#tl-selected").textContent.includes(%q)`, "next"))
	shot(t, bctx, filepath.Join(out, "timeline.png"))

	// A request forged from the page, without the CSRF token: refused.
	forgeJS := fmt.Sprintf(`fetch("/api/v1/gpr", {method: "PUT", credentials: "same-origin",
		headers: {"Content-Type": "application/json"}, body: JSON.stringify({gprId: %q, priority: 7})}).then(r => r.status)`, b)
	var forged float64
	perrs.expect("status of 403", func() { forged = evalNum("forged request", forgeJS) })
	if forged != 403 {
		t.Errorf("forged PUT /gpr without the CSRF token: %v, want 403", forged)
	}

	// Early release of A from its page; B turns Provisioned on the
	// timeline, with no reload.
	run("early release", chromedp.Navigate(base+"/#/gpr/"+a), chromedp.WaitVisible(chromedp.ID("early-release")))
	exec("accept confirm", `window.confirm = () => true`)
	run("release", chromedp.Click(chromedp.ID("early-release")))
	waitJS("A complete", `document.querySelector("#gpr-status") && document.querySelector("#gpr-status").textContent === "Complete"`)
	run("timeline again", chromedp.Navigate(base+"/#/timeline"))
	waitJS("B provisioned live", fmt.Sprintf(`document.querySelector('.tl .bar.Provisioned[data-gpr=%q]') && window.__noReload === 1`, b))

	run("pool", chromedp.Navigate(base+"/#/pool"))
	waitJS("pool held by B", fmt.Sprintf(`[...document.querySelectorAll("tr[data-node]")].some(r => r.textContent.includes(%q))`, b))
	waitJS("pool grouped by block", fmt.Sprintf(`[...document.querySelectorAll(".card h2")].filter(e => e.textContent.includes("H100 · builtin-gke/blk-")).length === 2 && [...document.querySelectorAll(".card h2")].some(e => e.textContent.includes(%q))`, blockOf(1)))
	shot(t, bctx, filepath.Join(out, "pool.png"))

	// Policies and templates: a policy and a template made through the
	// API are listed, and (for an Owner) the bindings section is there.
	putPolicyAndTemplate(t, ctx, base, ownerKey, ws, sfx)
	run("policies", chromedp.Navigate(base+"/#/policies"))
	waitJS("policy and template listed", fmt.Sprintf(`document.querySelector('#policies tr[data-name=%q]') && document.querySelector('#templates tr[data-name=%q]') && document.querySelector("#bindings, #bindings-empty")`, ws, "tmpl-"+sfx))
	if got := evalStr("policy row", fmt.Sprintf(`document.querySelector('#policies tr[data-name=%q]').textContent`, ws)); !strings.Contains(got, "H100") || !strings.Contains(got, "5") {
		t.Errorf("policy row %q, want shapes H100 and 5 GPRs at once", got)
	}
	shot(t, bctx, filepath.Join(out, "policies.png"))

	// Phone width: nothing wider than the screen but the scrollable
	// tables and timeline.
	run("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)), chromedp.Navigate(base+"/#/pool"))
	waitJS("pool at phone width", `document.querySelectorAll("tr[data-node]").length >= 4`)
	if evalBool("overflow", `document.documentElement.scrollWidth > window.innerWidth + 1`) {
		t.Error("the pool is wider than a 390 px screen")
	}
	shot(t, bctx, filepath.Join(out, "pool-phone.png"))
	run("desktop", chromedp.EmulateReset(), chromedp.EmulateViewport(1280, 900))

	// 500 nodes and 2000 GPRs, drawn by the timeline code.
	renderMs := evalNum("big timeline", bigTimelineJS)
	t.Logf("timeline render, 500 nodes / 2000 GPRs: %.0f ms", renderMs)
	if renderMs > 2000 {
		t.Errorf("timeline of 500 nodes / 2000 GPRs took %.0f ms to render, want under 2 s", renderMs)
	}
	if n := evalNum("likely ends", `document.querySelectorAll("#timeline-bench .beyond").length`); n != 1000 {
		t.Errorf("big timeline draws %v likely-end marks, want 1000 (one per GPR with a likelyEnd before its end)", n)
	}
	shot(t, bctx, filepath.Join(out, "timeline-500.png"))

	// A Viewer: no control that changes anything, and changes refused.
	run("log out", chromedp.Navigate(base+"/#/pool"), chromedp.WaitVisible(chromedp.ID("logout")), chromedp.Click(chromedp.ID("logout")),
		chromedp.WaitVisible(chromedp.ID("apikey")))
	run("log in as Viewer", chromedp.SendKeys(chromedp.ID("apikey"), viewerKey), chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)))
	waitJS("viewer pool", `document.querySelectorAll("tr[data-node]").length >= 4`)
	navNew := evalBool("viewer nav", `!document.querySelector('#nav a[data-page="new"]').hidden || !document.querySelector('#nav a[data-page="keys"]').hidden`)
	run("viewer workspaces", chromedp.Navigate(base+"/#/workspaces"))
	waitJS("viewer workspaces listed", fmt.Sprintf(`document.querySelector('tr[data-ws=%q]')`, ws))
	newWS := evalBool("viewer new workspace", `!!document.querySelector("#ws-form")`)
	run("viewer GPR", chromedp.Navigate(base+"/#/gpr/"+b))
	waitJS("viewer GPR page", `document.querySelector("#gpr-facts")`)
	run("viewer policies", chromedp.Navigate(base+"/#/policies"))
	waitJS("viewer policies listed", fmt.Sprintf(`document.querySelector('#policies tr[data-name=%q]')`, ws))
	if evalBool("viewer bindings", `!!document.querySelector("#bindings, #bindings-empty")`) {
		t.Error("a Viewer is shown the template bindings (an Owner's list)")
	}
	run("viewer GPR again", chromedp.Navigate(base+"/#/gpr/"+b))
	waitJS("viewer GPR page again", `document.querySelector("#gpr-facts")`)
	actions := evalBool("viewer GPR actions", `!!document.querySelector("#gpr-actions, #early-release, #delete-gpr, button.danger, button.primary")`)
	if navNew || newWS || actions {
		t.Errorf("a Viewer sees mutating controls: nav %v, new workspace %v, GPR actions %v", navNew, newWS, actions)
	}
	// With the CSRF token (as the page itself would send it), still 403:
	// the role decides.
	var viewerPut float64
	perrs.expect("status of 403", func() {
		viewerPut = evalNum("viewer change", fmt.Sprintf(`(async () => {
		const csrf = (await (await fetch("/api/v1/console/session")).json()).data.csrfToken;
		const r = await fetch("/api/v1/gpr", {method: "PUT", credentials: "same-origin",
			headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}, body: JSON.stringify({gprId: %q, priority: 7})});
		return r.status })()`, b))
	})
	if viewerPut != 403 {
		t.Errorf("Viewer's PUT /gpr: %v, want 403", viewerPut)
	}
	for _, name := range []string{"pool.png", "timeline.png"} {
		if dst := os.Getenv("GPUSPACE_UPDATE_SCREENSHOTS"); dst != "" {
			b, _ := os.ReadFile(filepath.Join(out, name))
			if err := os.WriteFile(filepath.Join(dst, "console-"+name), b, 0o644); err != nil {
				t.Error(err)
			}
		}
	}
}

// evaluate runs js in the page (awaiting a promise) and returns its value;
// fail reports an error.
func evaluate[T any](t *testing.T, ctx context.Context, fail func(string, error), what, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		fail(what, err)
	}
	return v
}

func shot(t *testing.T, ctx context.Context, path string) {
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", path, err)
		return
	}
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Logf("screenshot %s: %v", path, err)
	}
}

// bigTimelineJS makes a plan of 500 nodes (5 shapes × 100) and 2000 GPRs
// (500 provisioned, 1500 queued in 3 waves; every other one likely
// released after an hour of its three) and times the console's
// timeline drawing it (model, SVG, layout).
const bigTimelineJS = `(() => {
  const now = Date.now(), shapes = ["H100", "A100", "L4", "T4", "B200"];
  const nodes = [], gprs = [];
  for (let i = 0; i < 500; i++) nodes.push({name: "node-" + i, clusterName: "worker-" + (1 + i % 2), gpuShape: shapes[i % 5],
    instanceType: "x", gpuCount: 8, memory: 80, healthy: i % 50 !== 0, state: i % 50 === 0 ? "unhealthy" : "held"});
  const iso = (t) => new Date(t).toISOString();
  for (let i = 0; i < 2000; i++) {
    const n = nodes[i % 500].name, wave = Math.floor(i / 500);
    const st = now + (wave === 0 ? -1800e3 : (wave * 3 - 1) * 3600e3), en = st + 3 * 3600e3;
    gprs.push({gprId: "gpr-" + i, gprName: "job-" + i, sliceName: "ws-" + (i % 40), provisioningStatus: wave === 0 ? "Provisioned" : "Queued",
      priority: 101, numberOfGPUs: 8, start: iso(st), end: iso(en), likelyEnd: i % 2 ? iso(st + 3600e3) : "", nodes: [n], reason: ""});
  }
  return window.gpuspaceConsole.renderTimeline({now: iso(now), nodes, gprs});
})()`
