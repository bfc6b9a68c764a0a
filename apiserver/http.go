package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/apiserver/envelope"
	"github.com/gpuspace/gpuspace/console"
)

const apiDescription = `gpuspace's /api/v1 is wire-compatible with the EGS (Elastic GPU Service) API.

Every answer is the EGS envelope: {statusCode, status, message, data} on success, plus
error{errorKey, message, data} on failure. Authenticate with POST /api/v1/auth {"apiKey": ...}
and send the token it returns as "Authorization: Bearer <token>".

Roles: Owner (everything), Editor (the GPRs and kubeconfig of one workspace), Viewer (reads,
all workspaces or one).`

// build assembles the huma API, the routes outside it and the HTTP
// middleware around everything.
func (s *Server) build() {
	envelope.Install()
	s.mux = http.NewServeMux()

	cfg := huma.DefaultConfig("gpuspace API", s.cfg.Version)
	// No $schema property and Link header in answers: EGS clients get the
	// EGS shape and nothing else.
	cfg.CreateHooks = nil
	cfg.SchemasPath = ""
	cfg.Info.Description = apiDescription
	cfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"bearer": {Type: "http", Scheme: "bearer", BearerFormat: "JWT",
			Description: "Token from POST /api/v1/auth; expires after 15 minutes by default."},
	}
	s.api = humago.New(s.mux, cfg)
	s.api.UseMiddleware(s.metricsMiddleware, s.authMiddleware)
	s.registerOperations()
	s.registerTimeline()
	s.registerAccuracy()
	s.registerEvents()
	s.registerSession()

	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		envelope.WriteJSON(w, http.StatusOK, envelope.OK(health{Status: "ok"}).Body)
	})
	s.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.Ready() {
			envelope.Write(w, envelope.New(http.StatusServiceUnavailable, envelope.KeyUnavailable, "caches are not synced yet"))
			return
		}
		envelope.WriteJSON(w, http.StatusOK, envelope.OK(health{Status: "ready"}).Body)
	})
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.opts.gatherer, promhttp.HandlerOpts{}))
	// The web console, on the same origin as the API it calls (its cookie
	// session and CSRF rule rely on that): / and /ui/ only.
	console.Mount(s.mux)
	s.mountSSO(s.mux)

	s.handler = s.recoverer(jsonBodies(s.fallback(s.mux)))
}

// jsonBodies reads /api/v1 request bodies as JSON whatever their declared
// type: the EGS documentation's curl examples send JSON with curl's default
// Content-Type, application/x-www-form-urlencoded, and EGS accepts them.
func jsonBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") && r.ContentLength != 0 {
			ct := strings.ToLower(r.Header.Get("Content-Type"))
			if ct == "" || strings.HasPrefix(ct, "application/x-www-form-urlencoded") || strings.HasPrefix(ct, "text/plain") {
				r.Header.Set("Content-Type", "application/json")
			}
		}
		next.ServeHTTP(w, r)
	})
}

// health is the data of the health endpoints.
type health struct {
	Status string `json:"status" example:"ok"`
}

// fallback answers what the mux does not route — unknown paths (404) and
// known paths with another method (405) — with the envelope instead of the
// mux's text/plain.
func (s *Server) fallback(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		// Let the mux decide (it knows 404 from 405 and redirects), then
		// answer its verdict in the envelope.
		cw := &captureWriter{header: http.Header{}}
		h.ServeHTTP(cw, r)
		switch {
		case cw.code >= 300 && cw.code < 400:
			for k, v := range cw.header {
				w.Header()[k] = v
			}
			w.WriteHeader(cw.code)
		case cw.code == http.StatusMethodNotAllowed:
			allow := cw.header.Get("Allow")
			w.Header().Set("Allow", allow)
			envelope.Write(w, envelope.Errorf(http.StatusMethodNotAllowed, envelope.KeyMethodNotAllowed,
				"method %s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, allow))
		default:
			envelope.Write(w, envelope.NotFound("no endpoint %s %s; see /openapi.json", r.Method, r.URL.Path))
		}
	})
}

type captureWriter struct {
	header http.Header
	code   int
}

func (c *captureWriter) Header() http.Header { return c.header }
func (c *captureWriter) Write(b []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	return len(b), nil
}
func (c *captureWriter) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
}

// recoverer turns a panic anywhere below into a 500 envelope and a log
// line, so a bug costs one request, not the connection. It also logs each
// request (never its headers or body: they carry keys and tokens).
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tw := &trackingWriter{ResponseWriter: w}
		start := time.Now()
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler { //nolint:errorlint // sentinel panics are compared by identity
					panic(v)
				}
				s.metrics.panics.Inc()
				s.log.Error("panic serving request", zap.String("method", r.Method), zap.String("path", r.URL.Path),
					zap.Any("panic", v), zap.StackSkip("stack", 1))
				if !tw.wrote {
					envelope.Write(tw, envelope.Internal())
				}
			}
			s.log.Debug("request", zap.String("method", r.Method), zap.String("path", r.URL.Path),
				zap.Int("status", tw.code), zap.Duration("took", time.Since(start)))
		}()
		next.ServeHTTP(tw, r)
	})
}

type trackingWriter struct {
	http.ResponseWriter
	wrote bool
	code  int
}

func (t *trackingWriter) WriteHeader(code int) {
	if !t.wrote {
		t.wrote, t.code = true, code
	}
	t.ResponseWriter.WriteHeader(code)
}

func (t *trackingWriter) Write(b []byte) (int, error) {
	if !t.wrote {
		t.wrote, t.code = true, http.StatusOK
	}
	return t.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (deadlines,
// flushing for streaming answers).
func (t *trackingWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// Flush passes flushes through for streaming answers.
func (t *trackingWriter) Flush() {
	if f, ok := t.ResponseWriter.(http.Flusher); ok {
		if !t.wrote {
			t.wrote, t.code = true, http.StatusOK
		}
		f.Flush()
	}
}

// authMiddleware is the one place roles are enforced: every operation
// declares its roles (Op), and no handler runs for a caller without a
// valid token of one of them. Workspace scope (Editor, scoped Viewer) is
// checked next, from the operation's declared Scope, by the check register
// puts in front of the handler (it needs the parsed input), with the
// principal this middleware puts in the context.
func (s *Server) authMiddleware(ctx huma.Context, next func(huma.Context)) {
	roles := OperationRoles(ctx.Operation())
	if len(roles) == 0 {
		next(ctx)
		return
	}
	a := s.authenticator()
	if a == nil {
		writeErr(ctx, envelope.New(http.StatusServiceUnavailable, envelope.KeyUnavailable, "the API is starting; retry shortly"))
		return
	}
	token, cookie, ok := credentials(ctx)
	if !ok {
		ctx.SetHeader("WWW-Authenticate", `Bearer realm="gpuspace"`)
		writeErr(ctx, unauthenticated("Unauthenticated: send Authorization: Bearer <token>; get a token from POST /api/v1/auth"))
		return
	}
	if cookie && !csrfOK(ctx, token) {
		// A page of another site can make the browser send the cookie,
		// never this header.
		writeErr(ctx, envelope.Errorf(http.StatusForbidden, envelope.KeyForbidden,
			"a request authenticated by the console's session cookie must send the session's %s header to change anything", HeaderCSRF))
		return
	}
	p, err := a.Verify(ctx.Context(), token)
	if err != nil {
		ctx.SetHeader("WWW-Authenticate", `Bearer realm="gpuspace", error="invalid_token"`)
		switch {
		case errors.Is(err, auth.ErrTokenExpired):
			writeErr(ctx, unauthenticated("Token has expired; get a new one from POST /api/v1/auth"))
		case errors.Is(err, auth.ErrKeyExpired):
			writeErr(ctx, unauthenticated("Api Key has expired"))
		case errors.Is(err, auth.ErrUnknownKey):
			writeErr(ctx, unauthenticated("Unauthenticated: the token's API key was deleted"))
		case errors.Is(err, auth.ErrNoRole):
			writeErr(ctx, envelope.Errorf(http.StatusForbidden, envelope.KeyForbidden,
				"%v: ask an Owner to map one of your groups to a role (the OIDC role mapping ConfigMap)", err))
		case errors.Is(err, auth.ErrTokenMalformed), errors.Is(err, auth.ErrTokenSignature), errors.Is(err, auth.ErrKeyRecordInvalid):
			writeErr(ctx, unauthenticated("Unauthenticated: invalid bearer token"))
		default:
			s.log.Error("verify token", zap.Error(err))
			writeErr(ctx, envelope.New(http.StatusServiceUnavailable, envelope.KeyUnavailable, "cannot verify the token now; retry shortly"))
		}
		return
	}
	if !p.Allowed(roles) {
		writeErr(ctx, envelope.Errorf(http.StatusForbidden, envelope.KeyForbidden,
			"role %s may not %s; it needs %s", p.Role, lowerFirst(ctx.Operation().Summary), roleList(roles)))
		return
	}
	pctx := auth.WithPrincipal(ctx.Context(), p)
	if cookie {
		pctx = context.WithValue(pctx, cookieSessionKey{}, true)
	}
	next(huma.WithContext(ctx, pctx))
}

func unauthenticated(msg string) *envelope.Error {
	return envelope.New(http.StatusUnauthorized, envelope.KeyUnauthenticated, msg,
		envelope.WithStatus(envelope.KeyUnauthenticated), envelope.WithTitle(msg), envelope.WithoutData())
}

func bearerToken(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

func roleList(roles []auth.Role) string {
	parts := make([]string, len(roles))
	for i, r := range roles {
		parts[i] = string(r)
	}
	return strings.Join(parts, " or ")
}

func lowerFirst(s string) string {
	if s == "" {
		return "call this operation"
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// writeErr writes an envelope error from a huma middleware.
func writeErr(ctx huma.Context, e *envelope.Error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		buf.Reset()
		fmt.Fprintf(&buf, `{"statusCode":500,"status":"Error","message":"Internal Server Error","data":null,"error":{"errorKey":%q,"message":"","data":null}}`+"\n", envelope.KeyInternal)
	}
	ctx.SetHeader("Content-Type", "application/json")
	ctx.SetStatus(e.StatusCode)
	_, _ = ctx.BodyWriter().Write(buf.Bytes())
}
