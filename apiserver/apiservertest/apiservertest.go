// Package apiservertest is the harness of the API and MCP integration
// tests: the test binary's control plane, an API server started against it
// with an Owner key in a namespace of its own, served over loopback HTTP,
// plain HTTP calls with the envelope decoded, API keys and tokens, and
// gpuspace's controllers for tests that need workspaces to become ready and
// GPRs to provision.
//
// It does not import package apiserver, so that package's own tests use it
// as the MCP tests do: Start takes the server as a Server.
// internal/server/servertest is its counterpart for the whole control
// plane (server.Run).
package apiservertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	crzap "sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/controller"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
)

// Main runs the package's tests against one control plane (testenv.Main),
// with controller-runtime's logger discarded: the controllers some tests
// start log through it, and without one it prints a warning with a stack
// trace into the test output.
func Main(m *testing.M, env **testenv.Env) {
	ctrllog.SetLogger(crzap.New(crzap.WriteTo(io.Discard)))
	testenv.Main(m, env)
}

// Server is what Start runs: an *apiserver.Server.
type Server interface {
	// Start runs the server until ctx ends.
	Start(ctx context.Context) error
	// Ready reports whether it serves.
	Ready() bool
	// Handler is its HTTP surface.
	Handler() http.Handler
}

// Harness is a started API server on loopback HTTP with an Owner key.
type Harness struct {
	// URL is the base URL of the loopback HTTP server.
	URL string
	// HTTP is the loopback HTTP server.
	HTTP *httptest.Server
	// Namespace holds the server's API keys.
	Namespace string
	// OwnerKey is an Owner API key, Owner a bearer token for it.
	OwnerKey, Owner string

	client client.Client
}

// Suffix is a short random string for names of a test's own.
func Suffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Start runs srv until the test ends, waits until it is ready, serves its
// Handler on loopback HTTP and creates an Owner key and token. ns is where
// srv keeps its keys (its Config.Namespace); c writes them there.
func Start(t testing.TB, c client.Client, ns string, srv Server) *Harness {
	t.Helper()
	RunUntilCleanup(t, "API server", srv.Start)
	WaitFor(t, "the API server ready", time.Minute, srv.Ready)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	h := &Harness{URL: hs.URL, HTTP: hs, Namespace: ns, client: c}
	h.OwnerKey = h.CreateKey(t, auth.KeyRequest{Name: "owner", Role: auth.RoleOwner})
	h.Owner = h.Token(t, h.OwnerKey)
	return h
}

// CreateKey creates an API key directly, as `gpuspace apikey create` does.
func (h *Harness) CreateKey(t testing.TB, req auth.KeyRequest) string {
	t.Helper()
	key, _, err := auth.CreateKey(context.Background(), h.client, h.Namespace, req, time.Now())
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	return key
}

// Token exchanges an API key for a bearer token at POST /api/v1/auth.
func (h *Harness) Token(t testing.TB, key string) string {
	t.Helper()
	r := Do(t, h.URL, http.MethodPost, "/api/v1/auth", "", map[string]string{"apiKey": key}, nil)
	tok, _ := r.Data()["token"].(string)
	if r.Code != http.StatusOK || tok == "" {
		t.Fatalf("auth: %d %s", r.Code, r.Raw)
	}
	return tok
}

// Result is an HTTP answer, its body decoded when it is JSON.
type Result struct {
	Code   int
	Header http.Header
	Raw    string
	// Body is the decoded JSON body (the envelope), nil if not JSON.
	Body map[string]any
}

// Data returns the envelope's data as an object.
func (r Result) Data() map[string]any {
	d, _ := r.Body["data"].(map[string]any)
	return d
}

// ErrMsg returns the envelope's error.message.
func (r Result) ErrMsg() string { return r.errField("message") }

// ErrKey returns the envelope's error.errorKey.
func (r Result) ErrKey() string { return r.errField("errorKey") }

func (r Result) errField(name string) string {
	e, _ := r.Body["error"].(map[string]any)
	s, _ := e[name].(string)
	return s
}

// Do sends a request to base+path with token as its bearer ("" for none)
// and the headers hdr. body is nil, a string or []byte (sent as is) or a
// value (sent as JSON). A JSON answer that does not parse fails the test.
func Do(t testing.TB, base, method, path, token string, body any, hdr http.Header) Result {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := Result{Code: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &r.Body); err != nil {
			t.Fatalf("%s %s: answer is not JSON: %v: %s", method, path, err, raw)
		}
	}
	return r
}

// StartControllers runs gpuspace's controllers (workspace, GPR) against
// cfg until the test ends, so that workspaces become ready and GPRs really
// provision. agent names them to the apiserver.
func StartControllers(t *testing.T, cfg *rest.Config, agent string) {
	t.Helper()
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = agent
	mgr, err := controller.NewManager(cfg, controller.ManagerOptions{})
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	if err := controller.Setup(mgr, controller.Options{SkipNameValidation: true}); err != nil {
		t.Fatalf("controller.Setup: %v", err)
	}
	RunUntilCleanup(t, "controllers", mgr.Start)
}

// RunUntilCleanup runs run in the background until the test ends, then
// cancels its context, waits for it to return and fails the test with its
// error, if any.
func RunUntilCleanup(t testing.TB, what string, run func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: %v", what, err)
		}
	})
}

// WaitFor polls cond every 10ms until it holds, failing the test after
// timeout (a hang guard, not a timing assertion).
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
