package apiserver

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

	"go.uber.org/zap/zaptest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	crzap "sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	// The controllers (e2e test) log through controller-runtime; without a
	// logger it prints a warning with a stack trace into the test output.
	ctrllog.SetLogger(crzap.New(crzap.WriteTo(io.Discard)))
	testenv.Main(m, &env)
}

// testServer is a started API on a loopback HTTP server, with its own
// namespace for keys, and an Owner token.
type testServer struct {
	t      testing.TB
	srv    *Server
	http   *httptest.Server
	ns     string
	owner  string // Owner bearer token
	ownKey string // Owner API key
}

func suffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newTestServer(t testing.TB, opts ...Option) *testServer {
	t.Helper()
	return newTestServerIn(t, "gs-test-"+suffix(), opts...)
}

// newTestServerIn is newTestServer with keys in ns, for several servers
// (replicas) sharing one namespace.
func newTestServerIn(t testing.TB, ns string, opts ...Option) *testServer {
	t.Helper()
	cfg := Config{RESTConfig: env.Config, Namespace: ns}
	// Log into the test's output; fuzzers and benchmarks must not log
	// through F or B from inside their iterations.
	if tt, ok := t.(*testing.T); ok {
		opts = append([]Option{WithLogger(zaptest.NewLogger(tt))}, opts...)
	}
	srv, err := New(cfg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start: %v", err)
		}
	})
	waitFor(t, "server ready", srv.Ready)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	ts := &testServer{t: t, srv: srv, http: hs, ns: ns}
	ts.ownKey = ts.createKey(auth.KeyRequest{Name: "owner", Role: auth.RoleOwner})
	ts.owner = ts.token(ts.ownKey)
	return ts
}

// createKey creates a key directly, as `gpuspace apikey create` does.
func (ts *testServer) createKey(req auth.KeyRequest) string {
	ts.t.Helper()
	key, _, err := auth.CreateKey(context.Background(), env.Client, ts.ns, req, time.Now())
	if err != nil {
		ts.t.Fatalf("CreateKey: %v", err)
	}
	return key
}

func (ts *testServer) token(key string) string {
	ts.t.Helper()
	res := ts.do(http.MethodPost, "/api/v1/auth", "", map[string]string{"apiKey": key})
	if res.code != http.StatusOK {
		ts.t.Fatalf("auth: %d %s", res.code, res.raw)
	}
	return res.body["data"].(map[string]any)["token"].(string)
}

type result struct {
	code   int
	header http.Header
	raw    string
	body   map[string]any
}

// data returns body.data as a map.
func (r result) data() map[string]any {
	d, _ := r.body["data"].(map[string]any)
	return d
}

// errMsg returns body.error.message.
func (r result) errMsg() string {
	e, _ := r.body["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

func (r result) errKey() string {
	e, _ := r.body["error"].(map[string]any)
	m, _ := e["errorKey"].(string)
	return m
}

// do sends a request; body may be nil, a string (sent raw) or a value
// (sent as JSON).
func (ts *testServer) do(method, path, token string, body any) result {
	ts.t.Helper()
	r := doHTTP(ts.t, ts.http.URL, method, path, token, body, nil)
	ts.checkOpenAPI(method, path, r)
	return r
}

func doHTTP(t testing.TB, base, method, path, token string, body any, hdr http.Header) result {
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
	r := result{code: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			t.Fatalf("%s %s: answer is not JSON: %v: %s", method, path, err, raw)
		}
	}
	return r
}

// waitFor polls cond until it holds; it fails the test after a generous
// minute (a hang, not a timing assertion).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
