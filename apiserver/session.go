package apiserver

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/apiserver/envelope"
)

// Browser sessions (the web console). The console exchanges the API key
// for a token at POST /console/session, which puts the token in an
// HttpOnly, SameSite=Strict cookie (Secure over TLS): no script in the
// page can read it, and no other site's page sends it. The API accepts the
// cookie in place of the Authorization header; a request that changes
// something must then also carry X-CSRF-Token, derived from the token
// (auth.CSRFToken) and handed to the page by the session endpoints — a
// forged request from elsewhere has the cookie at most, never the header.
// The session renews itself (POST with no key) while the console is open,
// for as long as the key is valid; deleting the key ends it.
const (
	// SessionCookie holds the console's bearer token.
	SessionCookie = "gpuspace_session"
	// HeaderCSRF carries the anti-forgery token of a cookie session.
	HeaderCSRF = "X-CSRF-Token"
	// HeaderConsole must be on session logins and renewals: a header no
	// cross-site form can send, and fetch only after a CORS preflight this
	// server never grants, so no other site can log a browser in.
	HeaderConsole = "X-Gpuspace-Console"
)

// SessionRequest is the body of POST /console/session.
type SessionRequest struct {
	_      struct{} `additionalProperties:"true"`
	APIKey string   `json:"apiKey,omitempty" maxLength:"256" doc:"The API key to log in with; empty to renew the current session (its cookie)"`
}

// Session is a console session.
type Session struct {
	Role      string `json:"role" enum:"Owner,Editor,Viewer"`
	Workspace string `json:"workspace" doc:"The workspace the key is limited to; empty for all"`
	KeyName   string `json:"keyName"`
	ExpiresAt string `json:"expiresAt" doc:"When the session's token expires unless renewed (RFC 3339)"`
	CSRFToken string `json:"csrfToken" doc:"Send as X-CSRF-Token on every request that changes something; empty when not authenticated by the session cookie"`
}

type sessionOutput struct {
	SetCookie http.Cookie `header:"Set-Cookie"`
	Body      envelope.Response[Session]
}

type sessionClearOutput struct {
	SetCookie http.Cookie `header:"Set-Cookie"`
	Body      envelope.Response[envelope.Empty]
}

type sessionInput struct {
	Console string `header:"X-Gpuspace-Console" doc:"Required (any value): proves the request comes from a page of this origin"`
	Cookie  string `cookie:"gpuspace_session"`
	Body    SessionRequest
	secure  bool
}

type sessionCookieInput struct {
	Cookie string `cookie:"gpuspace_session"`
	secure bool
}

// Resolve notes whether the client reached the server over TLS (directly
// or through a proxy that says so), for the cookie's Secure attribute.
func (in *sessionInput) Resolve(ctx huma.Context) []error {
	in.secure = overTLS(ctx)
	return nil
}

// Resolve notes whether the client reached the server over TLS.
func (in *sessionCookieInput) Resolve(ctx huma.Context) []error {
	in.secure = overTLS(ctx)
	return nil
}

func overTLS(ctx huma.Context) bool {
	return ctx.TLS() != nil || strings.EqualFold(ctx.Header("X-Forwarded-Proto"), "https")
}

func (s *Server) registerSession() {
	const tag = "Console session"
	register(s, opSpec{
		id: "createConsoleSession", method: http.MethodPost, path: "/api/v1/console/session", tag: tag,
		summary: "Log the web console in, or renew its session",
		description: "With apiKey: checks the key and sets the session cookie (HttpOnly, SameSite=Strict, Secure over TLS) holding a bearer token. Without: renews the session of the cookie sent. " +
			"Answers the role, the workspace, the expiry and the CSRF token to send as X-CSRF-Token with every change. Needs the X-Gpuspace-Console header. For scripts, POST /auth is the way.",
		roles:  rolesPublic,
		errors: []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusUnprocessableEntity},
	}, s.createSession)
	register(s, opSpec{
		id: "getConsoleSession", method: http.MethodGet, path: "/api/v1/console/session", tag: tag,
		summary:     "Show the caller's session",
		description: "The caller's role, workspace and token expiry, and, for a session cookie, its CSRF token: how the console, loaded again, learns who is logged in.",
		roles:       rolesReaders, scope: scopeNone, readOnly: true, idempotent: true,
	}, s.getSession)
	register(s, opSpec{
		id: "deleteConsoleSession", method: http.MethodDelete, path: "/api/v1/console/session", tag: tag,
		summary:     "Log the web console out",
		description: "Clears the session cookie. The token it held stays valid until it expires (tokens are not stored); delete the API key to revoke it at once.",
		roles:       rolesPublic, idempotent: true,
	}, s.deleteSession)
}

func sessionCookie(token string, exp time.Time, secure bool) http.Cookie {
	c := http.Cookie{Name: SessionCookie, Value: token, Path: "/", HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode}
	if token == "" {
		c.MaxAge = -1
	} else {
		c.Expires = exp
	}
	return c
}

func (s *Server) createSession(ctx context.Context, in *sessionInput) (*sessionOutput, error) {
	if in.Console == "" {
		return nil, envelope.Errorf(http.StatusBadRequest, envelope.KeyBadRequest, "console sessions need the %s header", HeaderConsole)
	}
	a := s.authenticator()
	if a == nil {
		return nil, envelope.New(http.StatusServiceUnavailable, envelope.KeyUnavailable, "the API is starting; retry shortly")
	}
	var (
		tok string
		exp time.Time
		p   *auth.Principal
		err error
	)
	switch key := strings.TrimSpace(in.Body.APIKey); {
	case key != "":
		tok, exp, err = a.Exchange(ctx, key)
		if err == nil {
			p, err = a.Verify(ctx, tok)
		}
	case in.Cookie != "":
		tok, exp, p, err = a.Renew(ctx, in.Cookie)
	default:
		return nil, unauthenticated("Unauthenticated: send apiKey, or the session cookie to renew")
	}
	switch {
	case err == nil:
	case errors.Is(err, auth.ErrKeyExpired):
		return nil, unauthenticated("Api Key has expired")
	case errors.Is(err, auth.ErrUnknownKey), errors.Is(err, auth.ErrTokenExpired), errors.Is(err, auth.ErrTokenMalformed),
		errors.Is(err, auth.ErrTokenSignature), errors.Is(err, auth.ErrKeyRecordInvalid):
		return nil, unauthenticated("Unauthenticated")
	default:
		return nil, s.kubeErr(err, "API key")
	}
	return &sessionOutput{
		SetCookie: sessionCookie(tok, exp, in.secure),
		Body: envelope.OK(Session{Role: string(p.Role), Workspace: p.Workspace, KeyName: p.Name,
			ExpiresAt: exp.UTC().Format(time.RFC3339), CSRFToken: auth.CSRFToken(tok)}).Body,
	}, nil
}

func (s *Server) getSession(ctx context.Context, in *sessionCookieInput) (*envelope.Output[Session], error) {
	p := principal(ctx)
	out := Session{Role: string(p.Role), Workspace: p.Workspace, KeyName: p.Name, ExpiresAt: p.TokenExpiry.UTC().Format(time.RFC3339)}
	if sessionFromCookie(ctx) {
		out.CSRFToken = auth.CSRFToken(in.Cookie)
	}
	return envelope.OK(out), nil
}

func (s *Server) deleteSession(_ context.Context, in *sessionCookieInput) (*sessionClearOutput, error) {
	return &sessionClearOutput{SetCookie: sessionCookie("", time.Time{}, in.secure), Body: envelope.OK(envelope.Empty{}).Body}, nil
}

type cookieSessionKey struct{}

// sessionFromCookie reports whether the caller authenticated with the
// session cookie (not the Authorization header).
func sessionFromCookie(ctx context.Context) bool {
	v, _ := ctx.Value(cookieSessionKey{}).(bool)
	return v
}

// credentials are the caller's token: the Authorization header's, else the
// session cookie's (cookie true).
func credentials(ctx huma.Context) (token string, cookie, ok bool) {
	if tok, ok := bearerToken(ctx.Header("Authorization")); ok {
		return tok, false, true
	}
	if c, err := huma.ReadCookie(ctx, SessionCookie); err == nil && c.Value != "" {
		return c.Value, true, true
	}
	return "", false, false
}

// csrfOK reports whether a cookie-authenticated request may go ahead:
// reads always; anything else only with the session's X-CSRF-Token.
func csrfOK(ctx huma.Context, token string) bool {
	switch ctx.Method() {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	got := ctx.Header(HeaderCSRF)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(auth.CSRFToken(token))) == 1
}
