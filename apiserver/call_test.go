package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"

	"github.com/gpuspace/gpuspace/apiserver/auth"
)

// TestCall: operations invoked in memory (Do, what the MCP layer does) go
// through the same chain as HTTP.
func TestCall(t *testing.T) {
	ts := newTestServer(t)
	ctx := context.Background()
	viewer := ts.token(ts.createKey(auth.KeyRequest{Name: "v", Role: auth.RoleViewer}))
	tests := []struct {
		id, token string
		params    map[string]string
		body      any
		code      int
		key       string
	}{
		{"listWorkspaces", ts.owner, nil, nil, http.StatusOK, ""},
		{"getGPR", ts.owner, map[string]string{"gprId": "gpr-00000000-0000"}, nil, http.StatusNotFound, "NOT_FOUND"},
		{"getWorkspace", "", map[string]string{"name": "x"}, nil, http.StatusUnauthorized, "UNAUTHENTICATED"},
		{"createWorkspace", viewer, nil, map[string]any{"workspaceName": "x"}, http.StatusForbidden, "FORBIDDEN"},
		{"createGPR", ts.owner, nil, map[string]any{"gprName": "g", "sliceName": "s", "numberOfGPUs": 1, "exitDuration": "1h"}, http.StatusUnprocessableEntity, "VALIDATION_ERROR"},
		{"healthcheck", "", nil, nil, http.StatusOK, ""},
	}
	for _, tt := range tests {
		code, raw, err := ts.srv.call(ctx, tt.id, tt.token, tt.params, tt.body)
		if err != nil {
			t.Fatalf("%s: %v", tt.id, err)
		}
		var env struct {
			StatusCode int `json:"statusCode"`
			Error      *struct {
				ErrorKey string `json:"errorKey"`
			} `json:"error"`
		}
		if err := json.Unmarshal(raw, &env); err != nil {
			t.Fatalf("%s: %v: %s", tt.id, err, raw)
		}
		key := ""
		if env.Error != nil {
			key = env.Error.ErrorKey
		}
		if code != tt.code || env.StatusCode != tt.code || key != tt.key {
			t.Errorf("%s: %d %s, want %d %s: %s", tt.id, code, key, tt.code, tt.key, raw)
		}
	}
	if _, _, err := ts.srv.call(ctx, "nope", "", nil, nil); err == nil {
		t.Error("call of an unknown operation: no error")
	}
}

// TestNotStarted: before Start has synced the caches and loaded the
// signing key, probes and operations say so in the envelope.
func TestNotStarted(t *testing.T) {
	srv, err := New(Config{RESTConfig: env.Config, Namespace: "gs-unstarted"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		code int
	}{
		{"/healthz", http.StatusOK},
		{"/readyz", http.StatusServiceUnavailable},
		{"/api/v1/slice-workspace/list", http.StatusServiceUnavailable},
	} {
		req, _ := http.NewRequest(http.MethodGet, c.path, nil)
		req.Header.Set("Authorization", "Bearer x")
		res := srv.Do(req)
		var env struct {
			StatusCode int `json:"statusCode"`
		}
		_ = json.NewDecoder(res.Body).Decode(&env)
		res.Body.Close()
		if res.StatusCode != c.code || env.StatusCode != c.code {
			t.Errorf("GET %s before Start: %d (envelope %d), want %d", c.path, res.StatusCode, env.StatusCode, c.code)
		}
	}
}

// operation returns the registered operation with this OperationID, or nil.
func (s *Server) operation(id string) *huma.Operation {
	for _, op := range Operations(s.api) {
		if op.OperationID == id {
			return op
		}
	}
	return nil
}

// call invokes operation id through the full handler chain (Do), as an
// HTTP client would, and returns the HTTP status and the envelope it
// answered. params fill the operation's path parameters ({name}) and, for
// the rest, its query string; body, if not nil, is sent as JSON. token is
// the bearer token ("" for none).
func (s *Server) call(ctx context.Context, id, token string, params map[string]string, body any) (int, json.RawMessage, error) {
	op := s.operation(id)
	if op == nil {
		return 0, nil, fmt.Errorf("apiserver: no operation %q", id)
	}
	path := op.Path
	query := url.Values{}
	for k, v := range params {
		if ph := "{" + k + "}"; strings.Contains(path, ph) {
			path = strings.ReplaceAll(path, ph, url.PathEscape(v))
			continue
		}
		query.Set(k, v)
	}
	if len(query) > 0 {
		path += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, fmt.Errorf("apiserver: encode body of %s: %w", id, err)
		}
		rd = bytes.NewReader(b)
	}
	req := httptest.NewRequestWithContext(ctx, op.Method, path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res := s.Do(req)
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("apiserver: read answer of %s: %w", id, err)
	}
	return res.StatusCode, out, nil
}
