// Package mcp serves gpuspace's API operations as MCP tools for LLM agents
// (Claude Desktop, Cursor, IDE agents, CI bots), with
// github.com/mark3labs/mcp-go.
//
// Nothing is defined twice: every operation the API registers with huma
// and whose declaration (apiserver.OpOf) names an MCP tool becomes one
// tool, whose input schema is the operation's path, query and body
// parameters flattened into one self-contained JSON schema, whose output
// schema is the operation's success envelope, and whose annotations,
// guidance and units come from the declaration. A tool call becomes that operation's HTTP request,
// with the caller's bearer token, and runs through the API's own handler
// chain — in process through apiserver.Server.Do, or over HTTP from the
// stdio client — so validation, authentication, roles, errors and the EGS
// envelope are exactly what a REST client gets. An error envelope becomes
// a tool error whose text starts with the errorKey.
//
// Two transports: streamable HTTP (HTTPHandler, mounted at /mcp on the
// API's listener, bearer token per request) and stdio (ServeStdio, for
// `gpuspace mcp`: a thin client of a remote API, authenticated with an API
// key or a token).
package mcp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"go.uber.org/zap"

	"github.com/gpuspace/gpuspace/apiserver"
	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/apiserver/envelope"
)

// Option changes how a Server is built.
type Option func(*options)

type options struct {
	readOnly           bool
	disableDestructive bool
	logger             *zap.Logger
	version            string
}

// WithReadOnly serves only the tools of read-only operations (the
// --read-only switch): the others are not registered at all, so they are
// neither listed nor callable.
func WithReadOnly(on bool) Option { return func(o *options) { o.readOnly = on } }

// WithDisableDestructive leaves out the tools of destructive operations —
// deletes and early release — (the --disable-destructive switch).
func WithDisableDestructive(on bool) Option {
	return func(o *options) { o.disableDestructive = on }
}

// WithLogger sets the logger (default: none). Tool calls are logged at
// debug level with their name, status and duration, never their arguments
// (they may hold API keys).
func WithLogger(l *zap.Logger) Option { return func(o *options) { o.logger = l } }

// WithVersion sets the version the server reports to clients (default
// "dev").
func WithVersion(v string) Option { return func(o *options) { o.version = v } }

// backend is where tool calls go and who the caller is: the API in this
// process, or a remote API over HTTP.
type backend interface {
	// do runs an operation's request with the caller's credentials.
	do(ctx context.Context, t *tool, args map[string]any) (*http.Response, error)
	// principal is the caller; known is false when the backend cannot
	// tell (tools/list then shows every tool, and the API still decides).
	principal(ctx context.Context) (p *auth.Principal, known bool)
}

// Server is the MCP server: the tools of the API's operations on an
// mcp-go server.
type Server struct {
	mcp     *server.MCPServer
	tools   map[string]*tool
	backend backend
	opts    options
	authn   func(ctx context.Context, token string) (*auth.Principal, error)
}

// NewServer builds the MCP server of api: tool calls run in this process
// through api.Do with the caller's bearer token. Serve it with
// HTTPHandler, or in process with MCPServer.
func NewServer(api *apiserver.Server, opts ...Option) (*Server, error) {
	s, err := newServer(api.API(), &inProcess{api: api}, opts...)
	if err != nil {
		return nil, err
	}
	s.authn = api.Authenticate
	return s, nil
}

func newServer(api huma.API, b backend, opts ...Option) (*Server, error) {
	o := options{logger: zap.NewNop(), version: "dev"}
	for _, opt := range opts {
		opt(&o)
	}
	all, err := buildTools(api)
	if err != nil {
		return nil, fmt.Errorf("mcp: tools from the API's operations: %w", err)
	}
	s := &Server{tools: map[string]*tool{}, backend: b, opts: o}
	s.mcp = server.NewMCPServer("gpuspace", o.version,
		server.WithToolCapabilities(false),
		server.WithInstructions(instructions),
		server.WithToolFilter(s.roleFilter),
		server.WithRecovery(),
	)
	var serverTools []server.ServerTool
	for _, t := range all {
		if (o.readOnly && !t.readOnly) || (o.disableDestructive && t.destruct) {
			continue
		}
		s.tools[t.def.Name] = t
		serverTools = append(serverTools, server.ServerTool{Tool: t.def, Handler: s.handler(t)})
	}
	s.mcp.AddTools(serverTools...)
	return s, nil
}

// MCPServer is the underlying mcp-go server, for in-process clients and
// other transports. In-process callers put the bearer token in the
// context of each request with ContextWithToken.
func (s *Server) MCPServer() *server.MCPServer { return s.mcp }

// roleFilter shows a caller only the tools its role may call.
//
// mcp-go applies filters to tools/call as well, passing just the tool
// called. Roles are the API's to enforce, so that a caller who calls a
// tool its role may not use gets the API's 403 envelope (errorKey
// FORBIDDEN and which role it needs) like a REST client, not "tool not
// found": a one-tool call-time check therefore passes. A tools/list always
// has more candidates than one, since the read-only tools are never
// switched off.
func (s *Server) roleFilter(ctx context.Context, tools []mcpgo.Tool) []mcpgo.Tool {
	if len(tools) == 1 {
		return tools
	}
	p, known := s.backend.principal(ctx)
	if !known {
		return tools
	}
	out := tools[:0:0]
	for _, td := range tools {
		t := s.tools[td.Name]
		if t == nil || apiserver.Allowed(p, t.op) {
			out = append(out, td)
		}
	}
	return out
}

func (s *Server) handler(t *tool) server.ToolHandlerFunc {
	return func(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
		start := time.Now()
		args, ok := req.Params.Arguments.(map[string]any)
		if !ok && req.Params.Arguments != nil {
			return mcpgo.NewToolResultErrorf("VALIDATION_ERROR: arguments of %s must be a JSON object", t.def.Name), nil
		}
		resp, err := s.backend.do(ctx, t, args)
		if err != nil {
			var ae *argError
			if errors.As(err, &ae) {
				return mcpgo.NewToolResultErrorf("VALIDATION_ERROR: %s", ae.msg), nil
			}
			s.opts.logger.Warn("MCP tool call failed", zap.String("tool", t.def.Name), zap.Error(err))
			return mcpgo.NewToolResultErrorf("UNAVAILABLE: calling the gpuspace API failed: %v", err), nil
		}
		status := resp.StatusCode
		res := result(resp)
		s.opts.logger.Debug("MCP tool call", zap.String("tool", t.def.Name), zap.Int("status", status),
			zap.Duration("took", time.Since(start)))
		return res, nil
	}
}

type ctxKey int

const (
	tokenKey ctxKey = iota
	principalKey
)

// ContextWithToken returns ctx carrying the bearer token (without
// "Bearer ") that in-process tool calls present to the API. HTTPHandler
// does this for every request from its Authorization header.
func ContextWithToken(ctx context.Context, token string) context.Context {
	return context.WithValue(ctx, tokenKey, token)
}

func tokenFrom(ctx context.Context) string {
	t, _ := ctx.Value(tokenKey).(string)
	return t
}

// inProcess calls the API in this process, with the caller's token.
type inProcess struct {
	api *apiserver.Server
}

func (b *inProcess) do(ctx context.Context, t *tool, args map[string]any) (*http.Response, error) {
	req, err := t.request(ctx, "", args)
	if err != nil {
		return nil, err
	}
	if tok := tokenFrom(ctx); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return b.api.Do(req), nil
}

func (b *inProcess) principal(ctx context.Context) (*auth.Principal, bool) {
	if p, ok := ctx.Value(principalKey).(*auth.Principal); ok {
		return p, true
	}
	tok := tokenFrom(ctx)
	if tok == "" {
		// No token: the caller may call public operations only.
		return &auth.Principal{}, true
	}
	p, err := b.api.Authenticate(ctx, tok)
	if err != nil {
		return &auth.Principal{}, true
	}
	return p, true
}

// HTTPHandler serves MCP over streamable HTTP, to be mounted at /mcp on
// the API's listener. Every request must carry "Authorization: Bearer
// <token>" (a token from POST /api/v1/auth): without one it answers 401
// with WWW-Authenticate: Bearer, as the MCP authorization spec asks, and
// with an invalid one 401 with error="invalid_token". The token is then
// what the tool calls of that request present to the API.
//
// The handler keeps no session state (any replica can answer any request)
// and does not offer the optional GET event stream: the tool list never
// changes while the server runs. (The listener of `gpuspace serve` exempts
// /mcp from its write timeout, so a streamed answer would not be cut.)
func (s *Server) HTTPHandler() http.Handler {
	h := server.NewStreamableHTTPServer(s.mcp, server.WithDisableStreaming(true))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gpuspace"`)
			envelope.Write(w, envelope.New(http.StatusUnauthorized, envelope.KeyUnauthenticated,
				"Unauthenticated: send Authorization: Bearer <token>; get a token from POST /api/v1/auth",
				envelope.WithStatus(envelope.KeyUnauthenticated), envelope.WithoutData()))
			return
		}
		authn := s.authn
		if authn == nil {
			http.Error(w, "this MCP server forwards to a remote API and serves no HTTP", http.StatusNotImplemented)
			return
		}
		p, err := authn(r.Context(), tok)
		if err != nil {
			if !isTokenError(err) {
				s.opts.logger.Error("verify MCP bearer token", zap.Error(err))
				envelope.Write(w, envelope.New(http.StatusServiceUnavailable, envelope.KeyUnavailable, "cannot verify the token now; retry shortly"))
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="gpuspace", error="invalid_token"`)
			envelope.Write(w, envelope.New(http.StatusUnauthorized, envelope.KeyUnauthenticated,
				"Unauthenticated: "+err.Error()+"; get a new token from POST /api/v1/auth",
				envelope.WithStatus(envelope.KeyUnauthenticated), envelope.WithoutData()))
			return
		}
		ctx := context.WithValue(ContextWithToken(r.Context(), tok), principalKey, p)
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// isTokenError reports whether err is the caller's fault (a bad, expired
// or revoked token) rather than the server's.
func isTokenError(err error) bool {
	for _, e := range []error{auth.ErrTokenMalformed, auth.ErrTokenSignature, auth.ErrTokenExpired,
		auth.ErrUnknownKey, auth.ErrKeyExpired, auth.ErrKeyRecordInvalid} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return tok, true
}
