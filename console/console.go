// Package console is gpuspace's web console: static pages and one small
// hand-written JavaScript module, embedded in the binary and served at /
// (assets under /ui/), that call the same /api/v1 REST API as every other
// client and follow GET /api/v1/events for live updates.
//
// No build step and no third-party front-end code: `go build` alone makes
// the binary, nothing is fetched from a CDN, and the Content-Security-Policy
// allows scripts, styles and connections from this origin only (no inline
// script, no eval). The page never holds a credential a script could steal:
// it logs in at POST /api/v1/console/session, which keeps the token in an
// HttpOnly cookie, and sends the session's CSRF token with every change.
package console

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// ContentSecurityPolicy is the policy of every console answer: everything
// from this origin only, no inline script or style attribute injection,
// no framing, no plugins, forms post only here.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Path is where the console's pages live; assets are under AssetPrefix.
const (
	Path        = "/"
	AssetPrefix = "/ui/"
)

// Mount adds the console to mux: the page at exactly "/" (and /ui/), the
// assets under /ui/. It claims no other path, so the API's own answers
// for unknown paths (the envelope's 404) stay as they are.
func Mount(mux *http.ServeMux) {
	h := Handler()
	mux.Handle("GET /{$}", h)
	mux.Handle("GET "+AssetPrefix, h)
}

// Handler serves the console: index.html for "/" and "/ui/", the embedded
// file for "/ui/<name>", with the security headers on every answer.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded directory exists at build time
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		name := strings.TrimPrefix(r.URL.Path, strings.TrimSuffix(AssetPrefix, "/"))
		if r.URL.Path == Path || name == "/" || name == "" {
			// The page: always the current one (it names its assets).
			h.Set("Cache-Control", "no-cache")
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/"
			files.ServeHTTP(w, r2)
			return
		}
		// Assets: revalidated (ETag-less embed FS: Last-Modified is
		// zero), small enough to fetch again.
		h.Set("Cache-Control", "no-cache")
		r2 := r.Clone(r.Context())
		r2.URL.Path = path.Clean(name)
		files.ServeHTTP(w, r2)
	})
}
