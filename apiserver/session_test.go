package apiserver

import (
	"net/http"
	"strings"
	"testing"
)

// TestConsoleSession: the console's cookie session. The key is exchanged
// for an HttpOnly, SameSite=Strict cookie; the cookie authenticates reads;
// a change needs the session's CSRF token as well; logins need the console
// header; the session renews and logs out.
func TestConsoleSession(t *testing.T) {
	ts := newTestServer(t)
	console := http.Header{HeaderConsole: {"1"}}

	if r := doHTTP(t, ts.http.URL, "POST", "/api/v1/console/session", "", map[string]string{"apiKey": ts.ownKey}, nil); r.code != http.StatusBadRequest {
		t.Errorf("login without %s: %d, want 400", HeaderConsole, r.code)
	}
	if r := doHTTP(t, ts.http.URL, "POST", "/api/v1/console/session", "", map[string]string{"apiKey": "gps_nope_nope"}, console); r.code != http.StatusUnauthorized {
		t.Errorf("login with a wrong key: %d, want 401", r.code)
	}
	r := doHTTP(t, ts.http.URL, "POST", "/api/v1/console/session", "", map[string]string{"apiKey": ts.ownKey}, console)
	if r.code != http.StatusOK {
		t.Fatalf("login: %d %s", r.code, r.raw)
	}
	set := r.header.Get("Set-Cookie")
	for _, want := range []string{SessionCookie + "=", "HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(set, want) {
			t.Errorf("Set-Cookie %q lacks %s", set, want)
		}
	}
	if strings.Contains(set, "Secure") {
		t.Errorf("Set-Cookie %q is Secure over plain HTTP (the browser would drop it)", set)
	}
	csrf, _ := r.data()["csrfToken"].(string)
	if csrf == "" || r.data()["role"] != "Owner" {
		t.Fatalf("session: %v", r.data())
	}
	cookie := strings.SplitN(set, ";", 2)[0]
	withCookie := func(extra ...string) http.Header {
		h := http.Header{"Cookie": {cookie}}
		for i := 0; i+1 < len(extra); i += 2 {
			h.Set(extra[i], extra[i+1])
		}
		return h
	}

	if r := doHTTP(t, ts.http.URL, "GET", "/api/v1/inventory/list", "", nil, withCookie()); r.code != http.StatusOK {
		t.Errorf("read with the cookie: %d %s", r.code, r.raw)
	}
	if r := doHTTP(t, ts.http.URL, "GET", "/api/v1/console/session", "", nil, withCookie()); r.data()["csrfToken"] != csrf {
		t.Errorf("GET session: csrfToken %v, want the login's", r.data()["csrfToken"])
	}
	key := map[string]any{"name": "from-console", "role": "Viewer"}
	r = doHTTP(t, ts.http.URL, "POST", "/api/v1/api-key", "", key, withCookie())
	if r.code != http.StatusForbidden || !strings.Contains(r.errMsg(), HeaderCSRF) {
		t.Errorf("change with the cookie and no CSRF token: %d %s, want 403", r.code, r.raw)
	}
	if r := doHTTP(t, ts.http.URL, "POST", "/api/v1/api-key", "", key, withCookie(HeaderCSRF, "forged")); r.code != http.StatusForbidden {
		t.Errorf("change with a wrong CSRF token: %d, want 403", r.code)
	}
	if r := doHTTP(t, ts.http.URL, "POST", "/api/v1/api-key", "", key, withCookie(HeaderCSRF, csrf)); r.code != http.StatusOK {
		t.Errorf("change with the CSRF token: %d %s", r.code, r.raw)
	}
	// A bearer token needs no CSRF token: no browser sends it on its own.
	if r := doHTTP(t, ts.http.URL, "POST", "/api/v1/api-key", ts.owner, map[string]any{"name": "bearer", "role": "Viewer"}, nil); r.code != http.StatusOK {
		t.Errorf("change with a bearer token: %d %s", r.code, r.raw)
	}

	r = doHTTP(t, ts.http.URL, "POST", "/api/v1/console/session", "", map[string]string{}, withCookie(HeaderConsole, "1"))
	if r.code != http.StatusOK || !strings.HasPrefix(r.header.Get("Set-Cookie"), SessionCookie+"=") {
		t.Errorf("renew: %d %s", r.code, r.raw)
	}
	r = doHTTP(t, ts.http.URL, "DELETE", "/api/v1/console/session", "", nil, withCookie())
	if r.code != http.StatusOK || !strings.Contains(r.header.Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("logout: %d %q", r.code, r.header.Get("Set-Cookie"))
	}
}
