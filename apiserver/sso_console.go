package apiserver

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/oauth2"
)

// The console's "Log in with SSO": the authorization code flow with PKCE,
// run by the server. GET /sso/login sends the browser to the provider with
// a fresh state and code challenge (kept in a short-lived HttpOnly
// cookie); GET /sso/callback checks the state, exchanges the code with the
// verifier, verifies the ID token and its role like any bearer token
// (auth.OIDC), and sets the console's session cookie to it. GET
// /sso/config tells the login page whether to offer the button. They are
// browser redirects, not API operations, so they live beside the console's
// pages, outside /api/v1.

const (
	ssoCookie    = "gpuspace_sso"
	ssoFlowTTL   = 10 * time.Minute
	ssoLoginPath = "/sso/login"
	ssoCallback  = "/sso/callback"
	ssoConfig    = "/sso/config"
)

func (s *Server) mountSSO(mux *http.ServeMux) {
	mux.HandleFunc("GET "+ssoConfig, s.ssoConfig)
	mux.HandleFunc("GET "+ssoLoginPath, s.ssoLogin)
	mux.HandleFunc("GET "+ssoCallback, s.ssoCallback)
}

func (s *Server) ssoConfig(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]bool{"enabled": s.cfg.OIDC != nil})
}

// oauth2For is the provider's client configuration with the callback on
// the host the browser used.
func (s *Server) oauth2For(r *http.Request) (*oauth2.Config, bool) {
	a := s.authenticator()
	if a == nil || a.OIDC() == nil {
		return nil, false
	}
	scheme := "http"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	cfg, err := a.OIDC().OAuth2(r.Context(), scheme+"://"+r.Host+ssoCallback)
	if err != nil {
		s.log.Warn("SSO: provider", zap.Error(err))
		return nil, false
	}
	return cfg, true
}

func (s *Server) ssoLogin(w http.ResponseWriter, r *http.Request) {
	cfg, ok := s.oauth2For(r)
	if !ok {
		http.Redirect(w, r, "/#/sso-unavailable", http.StatusFound)
		return
	}
	state, verifier := randomToken(), oauth2.GenerateVerifier()
	// Lax: the provider's redirect back is a cross-site navigation, which
	// a Strict cookie would not come with.
	http.SetCookie(w, &http.Cookie{Name: ssoCookie, Value: state + "." + verifier, Path: ssoCallback, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode, MaxAge: int(ssoFlowTTL / time.Second)})
	http.Redirect(w, r, cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)), http.StatusFound)
}

func (s *Server) ssoCallback(w http.ResponseWriter, r *http.Request) {
	fail := func(why string) {
		http.SetCookie(w, &http.Cookie{Name: ssoCookie, Path: ssoCallback, MaxAge: -1})
		http.Redirect(w, r, "/#/sso-failed/"+why, http.StatusFound)
	}
	cfg, ok := s.oauth2For(r)
	if !ok {
		fail("unavailable")
		return
	}
	c, err := r.Cookie(ssoCookie)
	state, verifier, _ := strings.Cut(func() string {
		if err != nil {
			return ""
		}
		return c.Value
	}(), ".")
	q := r.URL.Query()
	if q.Get("error") != "" {
		fail("refused")
		return
	}
	if state == "" || q.Get("state") != state {
		fail("state")
		return
	}
	tok, err := cfg.Exchange(r.Context(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		s.log.Info("SSO: code exchange failed", zap.String("reason", oauthReason(err)))
		fail("exchange")
		return
	}
	idToken, _ := tok.Extra("id_token").(string)
	p, err := s.Authenticate(r.Context(), idToken)
	if err != nil {
		s.log.Info("SSO: ID token refused", zap.Error(err))
		fail("refused")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: ssoCookie, Path: ssoCallback, MaxAge: -1})
	sc := sessionCookie(idToken, p.TokenExpiry, r.TLS != nil)
	http.SetCookie(w, &sc)
	http.Redirect(w, r, "/#/sso", http.StatusFound)
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// oauthReason is the provider's error code, never a body that could hold
// a token.
func oauthReason(err error) string {
	if re, ok := err.(*oauth2.RetrieveError); ok {
		return re.ErrorCode
	}
	return "transport"
}
