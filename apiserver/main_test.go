package apiserver

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/gpuspace/gpuspace/apiserver/apiservertest"
	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { apiservertest.Main(m, &env) }

// testServer is a started API on a loopback HTTP server, with its own
// namespace for keys, and an Owner token (apiservertest.Harness), plus the
// server itself for tests that reach inside.
type testServer struct {
	h      *apiservertest.Harness
	t      testing.TB
	srv    *Server
	http   *httptest.Server
	ns     string
	owner  string // Owner bearer token
	ownKey string // Owner API key
}

func suffix() string { return apiservertest.Suffix() }

func newTestServer(t testing.TB, opts ...Option) *testServer {
	t.Helper()
	return newTestServerIn(t, "gs-test-"+suffix(), opts...)
}

// newTestServerIn is newTestServer with keys in ns, for several servers
// (replicas) sharing one namespace.
func newTestServerIn(t testing.TB, ns string, opts ...Option) *testServer {
	t.Helper()
	// Log into the test's output; fuzzers and benchmarks must not log
	// through F or B from inside their iterations.
	if tt, ok := t.(*testing.T); ok {
		opts = append([]Option{WithLogger(zaptest.NewLogger(tt))}, opts...)
	}
	srv, err := New(Config{RESTConfig: env.Config, Namespace: ns}, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h := apiservertest.Start(t, env.Client, ns, srv)
	return &testServer{h: h, t: t, srv: srv, http: h.HTTP, ns: ns, owner: h.Owner, ownKey: h.OwnerKey}
}

// createKey creates a key directly, as `gpuspace apikey create` does.
func (ts *testServer) createKey(req auth.KeyRequest) string {
	ts.t.Helper()
	return ts.h.CreateKey(ts.t, req)
}

func (ts *testServer) token(key string) string {
	ts.t.Helper()
	return ts.h.Token(ts.t, key)
}

// result is an answer as the tests read it.
type result struct {
	code   int
	header http.Header
	raw    string
	body   map[string]any
	res    apiservertest.Result
}

// data returns body.data as a map.
func (r result) data() map[string]any { return r.res.Data() }

// errMsg returns body.error.message.
func (r result) errMsg() string { return r.res.ErrMsg() }

func (r result) errKey() string { return r.res.ErrKey() }

// do sends a request; body may be nil, a string (sent raw) or a value
// (sent as JSON). Every answer is checked against the OpenAPI document.
func (ts *testServer) do(method, path, token string, body any) result {
	ts.t.Helper()
	r := doHTTP(ts.t, ts.http.URL, method, path, token, body, nil)
	ts.checkOpenAPI(method, path, r)
	return r
}

func doHTTP(t testing.TB, base, method, path, token string, body any, hdr http.Header) result {
	t.Helper()
	r := apiservertest.Do(t, base, method, path, token, body, hdr)
	return result{code: r.Code, header: r.Header, raw: r.Raw, body: r.Body, res: r}
}

// startControllers runs gpuspace's real Workspace and GPR controllers
// until the test ends.
func startControllers(t *testing.T) {
	t.Helper()
	apiservertest.StartControllers(t, env.Config, "apiserver-test-controllers")
}

// waitFor polls cond until it holds; it fails the test after a generous
// minute (a hang, not a timing assertion).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	apiservertest.WaitFor(t, what, time.Minute, cond)
}
