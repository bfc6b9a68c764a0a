package console

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func serve(t *testing.T, path string) *httptest.ResponseRecorder {
	t.Helper()
	mux := http.NewServeMux()
	Mount(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

// TestServes: the page at / and /ui/, assets with their types, every
// answer with the Content-Security-Policy and the other headers; nothing
// outside / and /ui/ is claimed.
func TestServes(t *testing.T) {
	for path, ctype := range map[string]string{
		"/": "text/html", "/ui/": "text/html", "/ui/app.js": "text/javascript", "/ui/style.css": "text/css", "/ui/favicon.svg": "image/svg+xml",
	} {
		rec := serve(t, path)
		if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), ctype) {
			t.Errorf("%s: %d %s, want 200 %s", path, rec.Code, rec.Header().Get("Content-Type"), ctype)
		}
		if rec.Header().Get("Content-Security-Policy") != ContentSecurityPolicy || rec.Header().Get("X-Frame-Options") != "DENY" ||
			rec.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: security headers %v", path, rec.Header())
		}
	}
	if rec := serve(t, "/ui/nope.js"); rec.Code != http.StatusNotFound {
		t.Errorf("/ui/nope.js: %d", rec.Code)
	}
	mux := http.NewServeMux()
	Mount(mux)
	if _, pattern := mux.Handler(httptest.NewRequest(http.MethodGet, "/api/v1/nope", nil)); pattern != "" {
		t.Errorf("the console claims /api/v1/nope (pattern %q)", pattern)
	}
	if !strings.Contains(ContentSecurityPolicy, "script-src 'self';") || strings.Contains(ContentSecurityPolicy, "unsafe") {
		t.Errorf("policy %q", ContentSecurityPolicy)
	}
}

// TestAssetsRules: what the CSP and the text-only rule need of the assets
// themselves — no inline script, no inline style, no event attributes in
// the HTML, no innerHTML/outerHTML/insertAdjacentHTML/document.write/eval
// in the script, and nothing from another origin.
func TestAssetsRules(t *testing.T) {
	html, _ := fs.ReadFile(static, "static/index.html")
	js, _ := fs.ReadFile(static, "static/app.js")
	css, _ := fs.ReadFile(static, "static/style.css")
	for _, m := range regexp.MustCompile(`<script[^>]*>`).FindAllString(string(html), -1) {
		if !strings.Contains(m, `src="/ui/`) {
			t.Errorf("index.html: inline script %s", m)
		}
	}
	if regexp.MustCompile(`\son[a-z]+=|\sstyle=`).Match(html) {
		t.Error("index.html: an inline event handler or style attribute")
	}
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", `setAttribute("style"`} {
		if strings.Contains(string(js), bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
	for name, b := range map[string][]byte{"index.html": html, "app.js": js, "style.css": css} {
		if regexp.MustCompile(`(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/`).Match(b) && !strings.Contains(string(b), "http://www.w3.org/2000/svg") {
			t.Errorf("%s references another origin", name)
		}
	}
}
