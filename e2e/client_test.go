package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// The suite is configured by environment, so the same tests run against
// `gpuspace dev` (make e2e) and a kind cluster (make e2e-kind).
const (
	envAPI        = "GPUSPACE_E2E_API"        // e.g. http://127.0.0.1:8080
	envAPIKey     = "GPUSPACE_E2E_API_KEY"    // an Owner API key
	envKubeconfig = "GPUSPACE_E2E_KUBECONFIG" // an admin kubeconfig
)

type suite struct {
	api   string
	owner string // Owner bearer token
	kube  kubernetes.Interface
	http  *http.Client
}

func newSuite(t *testing.T) *suite {
	t.Helper()
	api, key, kc := os.Getenv(envAPI), os.Getenv(envAPIKey), os.Getenv(envKubeconfig)
	if api == "" || key == "" || kc == "" {
		t.Skipf("set %s, %s and %s to run the e2e suite (make e2e does)", envAPI, envAPIKey, envKubeconfig)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatalf("kubeconfig %s: %v", kc, err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &suite{api: strings.TrimRight(api, "/"), kube: cs, http: &http.Client{Timeout: 30 * time.Second}}
	s.owner = s.token(t, key)
	return s
}

// envelope is the EGS response envelope.
type envelope struct {
	StatusCode int             `json:"statusCode"`
	Status     string          `json:"status"`
	Message    string          `json:"message"`
	Data       json.RawMessage `json:"data"`
	Error      *struct {
		ErrorKey string `json:"errorKey"`
		Message  string `json:"message"`
	} `json:"error"`
}

// call sends one API request and decodes the envelope. body may be nil.
func (s *suite) call(ctx context.Context, t *testing.T, token, method, path string, body any) (int, envelope) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.api+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("%s %s: %d, body is not the EGS envelope: %v\n%s", method, path, resp.StatusCode, err, raw)
	}
	if env.StatusCode != resp.StatusCode {
		t.Errorf("%s %s: envelope statusCode %d != HTTP %d", method, path, env.StatusCode, resp.StatusCode)
	}
	return resp.StatusCode, env
}

// must calls and fails the test unless the answer is 200; it decodes data
// into out when out is not nil.
func (s *suite) must(ctx context.Context, t *testing.T, token, method, path string, body, out any) {
	t.Helper()
	code, env := s.call(ctx, t, token, method, path, body)
	if code != http.StatusOK {
		msg := env.Message
		if env.Error != nil {
			msg = env.Error.ErrorKey + ": " + env.Error.Message
		}
		t.Fatalf("%s %s: HTTP %d: %s", method, path, code, msg)
	}
	if out != nil {
		if err := json.Unmarshal(env.Data, out); err != nil {
			t.Fatalf("%s %s: decode data: %v\n%s", method, path, err, env.Data)
		}
	}
}

// token exchanges an API key for a bearer token.
func (s *suite) token(t *testing.T, apiKey string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var data struct {
		Token string `json:"token"`
	}
	s.must(ctx, t, "", http.MethodPost, "/api/v1/auth", map[string]string{"apiKey": apiKey}, &data)
	if data.Token == "" {
		t.Fatal("POST /api/v1/auth returned no token")
	}
	return data.Token
}

// eventually polls cond every 200ms until it returns true or timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s (last error: %v)", timeout, what, last)
}

func unique(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1_000_000)
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
