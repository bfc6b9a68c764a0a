package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gpuspace/gpuspace/apiserver"
	"github.com/gpuspace/gpuspace/apiserver/apiservertest"
	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { apiservertest.Main(m, &env) }

// harness is a started API with the MCP server mounted at /mcp on its
// mux — the way `gpuspace serve` wires it — on a loopback HTTP server
// (apiservertest.Harness).
type harness struct {
	h     *apiservertest.Harness
	api   *apiserver.Server
	mcp   *Server
	http  *httptest.Server
	ns    string
	owner string // Owner API key
}

func suffix() string { return apiservertest.Suffix() }

func newHarness(t testing.TB, opts ...Option) *harness {
	t.Helper()
	ns := "gs-mcp-" + suffix()
	api, err := apiserver.New(apiserver.Config{RESTConfig: env.Config, Namespace: ns})
	if err != nil {
		t.Fatalf("apiserver.New: %v", err)
	}
	srv, err := NewServer(api, opts...)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	api.Mux().Handle("/mcp", srv.HTTPHandler())
	h := apiservertest.Start(t, env.Client, ns, api)
	return &harness{h: h, api: api, mcp: srv, http: h.HTTP, ns: ns, owner: h.OwnerKey}
}

// key creates an API key directly, as `gpuspace apikey create` does.
func (h *harness) key(t testing.TB, req auth.KeyRequest) string {
	t.Helper()
	return h.h.CreateKey(t, req)
}

// token exchanges an API key for a bearer token over REST.
func (h *harness) token(t testing.TB, key string) string {
	t.Helper()
	return h.h.Token(t, key)
}

// rest sends a REST request over loopback HTTP and returns the status and
// body.
func (h *harness) rest(t testing.TB, method, path, token string, body any) (int, []byte) {
	t.Helper()
	r := apiservertest.Do(t, h.http.URL, method, path, token, body, nil)
	return r.Code, []byte(r.Raw)
}

// startControllers runs gpuspace's workspace and GPR controllers, so that
// workspaces become ready and GPRs really provision, until the test ends.
func startControllers(t *testing.T) {
	t.Helper()
	apiservertest.StartControllers(t, env.Config, "mcp-test-controllers")
}

// waitFor polls cond; it fails after a generous minute (a hang guard, not
// a timing assertion).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	apiservertest.WaitFor(t, what, time.Minute, cond)
}

// callResult is a tool result as either client library reports it.
type callResult struct {
	isError    bool
	text       string
	structured json.RawMessage
}

// data decodes the envelope's data of a successful result.
func (r callResult) data(t testing.TB) map[string]any {
	t.Helper()
	if r.isError {
		t.Fatalf("tool error: %s", r.text)
	}
	var env struct {
		StatusCode int            `json:"statusCode"`
		Data       map[string]any `json:"data"`
	}
	if err := json.Unmarshal(r.structured, &env); err != nil {
		t.Fatalf("structured content %s: %v", r.structured, err)
	}
	if env.StatusCode != http.StatusOK {
		t.Fatalf("statusCode %d in %s", env.StatusCode, r.structured)
	}
	// The text content is the same envelope, for clients that read text.
	if !jsonEqual(t, []byte(r.text), r.structured) {
		t.Errorf("text content %s differs from structured content %s", r.text, r.structured)
	}
	return env.Data
}

func jsonEqual(t testing.TB, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		return false
	}
	if err := json.Unmarshal(b, &y); err != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return bytes.Equal(ja, jb)
}

// client is an MCP client session, of either library over any transport.
type mcpClient interface {
	// tools lists the tools, each as its JSON.
	tools(t testing.TB) map[string]json.RawMessage
	call(t testing.TB, name string, args map[string]any) callResult
	// callErr calls a tool and returns the protocol error, if any.
	callErr(name string, args map[string]any) error
	close()
}

// mark3labs/mcp-go client.
type mcpgoClient struct {
	c   *client.Client
	ctx context.Context
}

func (c *mcpgoClient) tools(t testing.TB) map[string]json.RawMessage {
	t.Helper()
	res, err := c.c.ListTools(c.ctx, mcpgo.ListToolsRequest{})
	if err != nil {
		t.Fatalf("ListTools: %v", err)
	}
	return byName(t, res.Tools, func(tl mcpgo.Tool) string { return tl.Name })
}

// byName is a tool listing as JSON by tool name.
func byName[T any](t testing.TB, tools []T, name func(T) string) map[string]json.RawMessage {
	t.Helper()
	out := map[string]json.RawMessage{}
	for _, tl := range tools {
		b, err := json.Marshal(tl)
		if err != nil {
			t.Fatal(err)
		}
		out[name(tl)] = b
	}
	return out
}

func (c *mcpgoClient) call(t testing.TB, name string, args map[string]any) callResult {
	t.Helper()
	req := mcpgo.CallToolRequest{}
	req.Params.Name = name
	req.Params.Arguments = args
	res, err := c.c.CallTool(c.ctx, req)
	if err != nil {
		t.Fatalf("CallTool %s: %v", name, err)
	}
	r := callResult{isError: res.IsError}
	for _, ct := range res.Content {
		if tc, ok := ct.(mcpgo.TextContent); ok {
			r.text += tc.Text
		}
	}
	switch {
	case res.RawStructuredContent != nil:
		r.structured = res.RawStructuredContent
	case res.StructuredContent != nil:
		r.structured, _ = json.Marshal(res.StructuredContent)
	}
	return r
}

func (c *mcpgoClient) callErr(name string, args map[string]any) error {
	req := mcpgo.CallToolRequest{}
	req.Params.Name = name
	req.Params.Arguments = args
	_, err := c.c.CallTool(c.ctx, req)
	return err
}

func (c *mcpgoClient) close() { _ = c.c.Close() }

func startMCPGo(t testing.TB, c *client.Client, ctx context.Context, version string) *mcpgoClient {
	t.Helper()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("client Start: %v", err)
	}
	init := mcpgo.InitializeRequest{}
	init.Params.ProtocolVersion = version
	init.Params.ClientInfo = mcpgo.Implementation{Name: "gpuspace-test", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatalf("Initialize: %v", err)
	}
	mc := &mcpgoClient{c: c, ctx: ctx}
	t.Cleanup(mc.close)
	return mc
}

// mcpgoInProcess is mcp-go's in-process client; the token travels in the
// context of each request.
func mcpgoInProcess(t testing.TB, s *Server, token string) mcpClient {
	t.Helper()
	c, err := client.NewInProcessClient(s.MCPServer())
	if err != nil {
		t.Fatal(err)
	}
	return startMCPGo(t, c, ContextWithToken(context.Background(), token), "")
}

// mcpgoHTTP is mcp-go's streamable HTTP client. It speaks protocol
// 2025-06-18 (initialize handshake and session id), as most desktop
// clients still do; the other clients speak the current one.
func mcpgoHTTP(t testing.TB, url, token string) mcpClient {
	t.Helper()
	c, err := client.NewStreamableHttpClient(url, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token}))
	if err != nil {
		t.Fatal(err)
	}
	return startMCPGo(t, c, context.Background(), "2025-06-18")
}

// Official Go SDK client.
type sdkClient struct {
	s       *sdk.ClientSession
	cleanup func()
	once    sync.Once
}

func (c *sdkClient) tools(t testing.TB) map[string]json.RawMessage {
	t.Helper()
	res, err := c.s.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatalf("ListTools: %v", err)
	}
	return byName(t, res.Tools, func(tl *sdk.Tool) string { return tl.Name })
}

func (c *sdkClient) call(t testing.TB, name string, args map[string]any) callResult {
	t.Helper()
	res, err := c.s.CallTool(context.Background(), &sdk.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("CallTool %s: %v", name, err)
	}
	r := callResult{isError: res.IsError}
	for _, ct := range res.Content {
		if tc, ok := ct.(*sdk.TextContent); ok {
			r.text += tc.Text
		}
	}
	if res.StructuredContent != nil {
		r.structured, _ = json.Marshal(res.StructuredContent)
	}
	return r
}

func (c *sdkClient) callErr(name string, args map[string]any) error {
	_, err := c.s.CallTool(context.Background(), &sdk.CallToolParams{Name: name, Arguments: args})
	return err
}

func (c *sdkClient) close() {
	c.once.Do(func() {
		_ = c.s.Close()
		if c.cleanup != nil {
			c.cleanup()
		}
	})
}

func newSDKClient() *sdk.Client {
	return sdk.NewClient(&sdk.Implementation{Name: "gpuspace-test-sdk", Version: "1"}, nil)
}

// bearerTransport adds a bearer token to every request.
type bearerTransport struct{ token string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// sdkHTTP is the official SDK's streamable HTTP client.
func sdkHTTP(t testing.TB, url, token string) mcpClient {
	t.Helper()
	tr := &sdk.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: bearerTransport{token}}, MaxRetries: -1}
	s, err := newSDKClient().Connect(context.Background(), tr, nil)
	if err != nil {
		t.Fatalf("SDK connect %s: %v", url, err)
	}
	c := &sdkClient{s: s}
	t.Cleanup(c.close)
	return c
}

// stdioMu serialises stdio servers: mcp-go keeps the stdio session in a
// package variable.
var stdioMu sync.Mutex

// sdkStdio runs ServeStdio in process over pipes — what `gpuspace mcp`
// runs — against the API at url, and connects the official SDK's client
// to it.
func sdkStdio(t testing.TB, cfg StdioConfig) mcpClient {
	t.Helper()
	stdioMu.Lock()
	clientR, serverW := io.Pipe()
	serverR, clientW := io.Pipe()
	cfg.In, cfg.Out = serverR, serverW
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeStdio(ctx, cfg) }()
	s, err := newSDKClient().Connect(context.Background(), &sdk.IOTransport{Reader: clientR, Writer: clientW}, nil)
	if err != nil {
		cancel()
		_ = clientW.Close()
		_ = clientR.Close()
		serr := <-done
		stdioMu.Unlock()
		t.Fatalf("SDK connect over stdio: %v (server: %v)", err, serr)
	}
	c := &sdkClient{s: s, cleanup: func() {
		_ = clientW.Close() // EOF on the server's stdin ends ServeStdio
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeStdio: %v", err)
		}
		_ = clientR.Close()
		stdioMu.Unlock()
	}}
	t.Cleanup(c.close)
	return c
}

// names returns the sorted keys of a tool listing.
func names(tools map[string]json.RawMessage) []string {
	out := make([]string, 0, len(tools))
	for n := range tools {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
