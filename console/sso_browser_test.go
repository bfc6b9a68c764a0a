package console_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/oauth2-proxy/mockoidc"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/apiserver"
	"github.com/gpuspace/gpuspace/apiserver/apiservertest"
	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/internal/server"
	"github.com/gpuspace/gpuspace/internal/server/servertest"
)

// newBrowser starts a headless Chromium for the test (closed at its end).
func newBrowser(t *testing.T, exe string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("headless", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelA)
	bctx, cancelB := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancelB)
	return bctx
}

// TestConsoleSSOInBrowser: "Log in with SSO" in a real Chromium against
// an OpenID Provider in process (mockoidc): the console sends the browser
// to the provider, comes back through the server's code exchange (PKCE)
// with the HttpOnly session cookie, and shows the role the user's group
// maps to; a callback with a forged state lands on the login form with the
// reason; no console error on any page.
func TestConsoleSSOInBrowser(t *testing.T) {
	exe := chromium(t)
	out := artifacts(t)
	ctx := context.Background()
	op, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = op.Shutdown() })
	ns := "gs-console-sso-" + apiservertest.Suffix()
	base := servertest.Start(t, env.Config, server.Options{Namespace: ns, API: apiserver.Config{
		OIDC: &auth.OIDCConfig{IssuerURL: op.Issuer(), ClientID: op.ClientID, ClientSecret: op.ClientSecret}}})
	if err := env.Client.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: auth.DefaultOIDCRolesConfigMap},
		Data: map[string]string{auth.OIDCRolesKey: "groups:\n  platform: {role: Owner}\n"}}); err != nil {
		t.Fatal(err)
	}
	op.QueueUser(&mockoidc.MockUser{Subject: "u-1", Email: "ops@example.com", Groups: []string{"platform"}})

	bctx := newBrowser(t, exe)
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	perrs := listenPageErrors(t, bctx)
	defer func() { perrs.check(t, "the last page") }()
	step := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			shot(t, bctx, filepath.Join(out, "sso-failed.png"))
			t.Fatalf("%s: %v", what, err)
		}
		perrs.check(t, what)
	}
	fail := func(what string, err error) { t.Helper(); t.Fatalf("%s: %v", what, err) }
	waitJS := func(what, cond string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !evaluate[bool](t, bctx, fail, what, "!!("+cond+")") {
			if time.Now().After(deadline) {
				shot(t, bctx, filepath.Join(out, "sso-failed.png"))
				t.Fatalf("%s: %s never held; page: %s", what, cond, evaluate[string](t, bctx, fail, "page", `location.href + " | " + document.body.innerText.slice(0, 400)`))
			}
			time.Sleep(100 * time.Millisecond)
		}
		perrs.check(t, what)
	}

	step("open the console", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("sso-login")))
	step("log in with SSO", chromedp.Click(chromedp.ID("sso-login")))
	waitJS("logged in by SSO", `location.href.startsWith(`+fmt.Sprintf("%q", base)+`) && document.querySelector("#identity") && document.querySelector("#identity").textContent.startsWith("Owner")`)
	if evaluate[bool](t, bctx, fail, "cookie", `document.cookie.includes("gpuspace_s")`) {
		t.Error("a session or SSO cookie is readable by page scripts")
	}
	shot(t, bctx, filepath.Join(out, "sso-logged-in.png"))

	// A callback whose state this browser did not start: refused.
	step("log out", chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("apikey")))
	step("forged callback", chromedp.Navigate(base+"/sso/callback?code=forged&state=forged"))
	waitJS("refused with the reason", `/did not succeed \(state\)/.test(document.querySelector("#login-error").textContent)`)
}
