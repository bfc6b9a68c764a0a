package mcp

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/mark3labs/mcp-go/server"
	"go.uber.org/zap"

	"github.com/gpuspace/gpuspace/apiserver"
	"github.com/gpuspace/gpuspace/apiserver/auth"
)

// Environment variables `gpuspace mcp` reads its credentials from.
const (
	EnvAPIKey = "GPUSPACE_API_KEY"
	EnvToken  = "GPUSPACE_TOKEN"
)

// StdioConfig configures ServeStdio.
type StdioConfig struct {
	// ServerURL is the gpuspace API, e.g. http://127.0.0.1:8080. Required.
	ServerURL string
	// APIKey is exchanged for bearer tokens at POST /api/v1/auth, again
	// whenever the token is about to expire or is refused. Set APIKey or
	// Token, not both.
	APIKey string
	// Token is a bearer token used as is; when it expires, tool calls
	// answer UNAUTHENTICATED.
	Token string
	// ReadOnly and DisableDestructive are WithReadOnly and
	// WithDisableDestructive.
	ReadOnly, DisableDestructive bool
	// HTTPClient calls the API; default a client with a 60 s timeout.
	HTTPClient *http.Client
	// In and Out are the stdio streams; default os.Stdin and os.Stdout.
	// Nothing else may write to Out.
	In  io.Reader
	Out io.Writer
	// Logger logs to stderr, never to Out; default none.
	Logger *zap.Logger
	// Version is reported to clients; default "dev".
	Version string
}

// StdioConfigFromEnv fills APIKey and Token from GPUSPACE_API_KEY and
// GPUSPACE_TOKEN where they are empty.
func StdioConfigFromEnv(c StdioConfig) StdioConfig {
	if c.APIKey == "" {
		c.APIKey = os.Getenv(EnvAPIKey)
	}
	if c.Token == "" {
		c.Token = os.Getenv(EnvToken)
	}
	return c
}

// ServeStdio serves MCP on stdin and stdout (`gpuspace mcp`) until the
// input ends or ctx is done, forwarding each tool call to the API at
// cfg.ServerURL over HTTP with a bearer token.
//
// The tools are built from the operations this binary registers — the very
// registration `gpuspace serve` uses — so the stdio server needs no
// Kubernetes connection and lists the tools the HTTP endpoint lists; the
// remote API does the rest. tools/list shows the tools the token's role
// may call.
//
// Only one ServeStdio may run in a process at a time: mcp-go keeps the
// stdio session in a package variable.
func ServeStdio(ctx context.Context, cfg StdioConfig, opts ...Option) error {
	s, err := NewRemoteServer(ctx, cfg, opts...)
	if err != nil {
		return err
	}
	in, out := cfg.In, cfg.Out
	if in == nil {
		in = os.Stdin
	}
	if out == nil {
		out = os.Stdout
	}
	stdio := server.NewStdioServer(s.mcp)
	stdio.SetErrorLogger(log.New(io.Discard, "", 0))
	if cfg.Logger != nil {
		stdio.SetErrorLogger(zap.NewStdLog(cfg.Logger.Named("mcp-stdio")))
	}
	if err := stdio.Listen(ctx, in, out); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, io.EOF) {
		return fmt.Errorf("mcp: stdio: %w", err)
	}
	return nil
}

// NewRemoteServer builds the MCP server that forwards tool calls to the
// API at cfg.ServerURL (what ServeStdio serves). It authenticates once
// before returning, so a wrong URL or key fails here, not on the first
// tool call. opts come after the ones cfg implies.
func NewRemoteServer(ctx context.Context, cfg StdioConfig, opts ...Option) (*Server, error) {
	if cfg.ServerURL == "" {
		return nil, errors.New("mcp: the API's URL is required (--server)")
	}
	u, err := url.Parse(cfg.ServerURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("mcp: server URL %q: want http(s)://host[:port]", cfg.ServerURL)
	}
	switch {
	case cfg.APIKey != "" && cfg.Token != "":
		return nil, fmt.Errorf("mcp: set %s or %s, not both", EnvAPIKey, EnvToken)
	case cfg.APIKey == "" && cfg.Token == "":
		return nil, fmt.Errorf("mcp: no credentials: set %s (an API key) or %s (a bearer token)", EnvAPIKey, EnvToken)
	}
	// The operations this binary registers, with nothing behind them:
	// the remote API runs them.
	api := apiserver.Describe(cfg.Version)
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	r := &remote{base: strings.TrimSuffix(cfg.ServerURL, "/"), client: hc, apiKey: cfg.APIKey, token: cfg.Token}
	if cfg.APIKey != "" {
		authOp := operation(api, "authenticate")
		if authOp == nil || authOp.Method != http.MethodPost {
			return nil, errors.New("mcp: the API registers no POST authenticate operation")
		}
		r.authPath = authOp.Path
		if _, err := r.currentToken(ctx, true); err != nil {
			return nil, err
		}
	}
	all := []Option{WithReadOnly(cfg.ReadOnly), WithDisableDestructive(cfg.DisableDestructive)}
	if cfg.Logger != nil {
		all = append(all, WithLogger(cfg.Logger))
	}
	if cfg.Version != "" {
		all = append(all, WithVersion(cfg.Version))
	}
	return newServer(api, r, append(all, opts...)...)
}

func operation(api huma.API, id string) *huma.Operation {
	for _, op := range apiserver.Operations(api) {
		if op.OperationID == id {
			return op
		}
	}
	return nil
}

// remote forwards tool calls to the API over HTTP.
type remote struct {
	base     string
	client   *http.Client
	apiKey   string
	authPath string

	mu      sync.Mutex
	token   string
	expires time.Time // zero: unknown (a token given as is)
}

// refreshBefore is how long before its expiry a token is replaced.
const refreshBefore = time.Minute

func (r *remote) do(ctx context.Context, t *tool, args map[string]any) (*http.Response, error) {
	req, err := t.request(ctx, r.base, args)
	if err != nil {
		return nil, err
	}
	tok, err := r.currentToken(ctx, false)
	if err != nil {
		return nil, err
	}
	resp, err := r.send(req, tok)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || r.apiKey == "" {
		return resp, err
	}
	// The token was refused (revoked, or the clock disagrees): one new
	// token, one retry. A key that was deleted answers 401 again, and that
	// answer is the result.
	resp.Body.Close()
	if tok, err = r.currentToken(ctx, true); err != nil {
		return nil, err
	}
	if req.GetBody != nil {
		if req.Body, err = req.GetBody(); err != nil {
			return nil, fmt.Errorf("replay request body: %w", err)
		}
	}
	return r.send(req, tok)
}

func (r *remote) send(req *http.Request, tok string) (*http.Response, error) {
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), err)
	}
	return resp, nil
}

// currentToken returns a valid token, exchanging the API key for a new
// one when there is none, it is about to expire, or force is set.
func (r *remote) currentToken(ctx context.Context, force bool) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.apiKey == "" {
		return r.token, nil
	}
	if !force && r.token != "" && time.Until(r.expires) > refreshBefore {
		return r.token, nil
	}
	tok, exp, err := r.exchange(ctx)
	if err != nil {
		return "", err
	}
	r.token, r.expires = tok, exp
	return tok, nil
}

// exchange trades the API key for a token at the authenticate operation.
func (r *remote) exchange(ctx context.Context) (string, time.Time, error) {
	body, _ := json.Marshal(map[string]string{"apiKey": r.apiKey}) // strings always encode
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.base+r.authPath, bytes.NewReader(body))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("mcp: authenticate: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "gpuspace-mcp")
	resp, err := r.client.Do(req)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("mcp: authenticate at %s: %w", r.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("mcp: authenticate: read answer: %w", err)
	}
	var env struct {
		Data struct {
			Token string `json:"token"`
			// ExpiresAt: servers before the expiry moved to a header.
			ExpiresAt time.Time `json:"expiresAt"`
		} `json:"data"`
		Error *struct {
			ErrorKey string `json:"errorKey"`
			Message  string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return "", time.Time{}, fmt.Errorf("mcp: authenticate: HTTP %d, not the API's envelope: %s", resp.StatusCode, truncate(string(raw), 200))
	}
	if resp.StatusCode != http.StatusOK || env.Data.Token == "" {
		if env.Error != nil {
			return "", time.Time{}, fmt.Errorf("mcp: authenticate: %s (HTTP %d): %s", env.Error.ErrorKey, resp.StatusCode, env.Error.Message)
		}
		return "", time.Time{}, fmt.Errorf("mcp: authenticate: HTTP %d without a token", resp.StatusCode)
	}
	exp := env.Data.ExpiresAt
	if h := resp.Header.Get(apiserver.HeaderTokenExpiresAt); h != "" {
		if t, err := time.Parse(time.RFC3339, h); err == nil {
			exp = t
		}
	}
	return env.Data.Token, exp, nil
}

// principal reads the role and workspace from the token's claims. They
// only decide what tools/list shows: the API checks every call against the
// key itself. A token that is not a gpuspace JWT shows every tool.
func (r *remote) principal(ctx context.Context) (*auth.Principal, bool) {
	tok, err := r.currentToken(ctx, false)
	if err != nil {
		return nil, false
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, false
	}
	var c auth.Claims
	if err := json.Unmarshal(raw, &c); err != nil || c.Role == "" {
		return nil, false
	}
	return &auth.Principal{KeyID: c.KeyID, Role: c.Role, Workspace: c.Workspace}, true
}
