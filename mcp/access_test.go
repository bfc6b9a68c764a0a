package mcp

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gpuspace/gpuspace/apiserver/auth"
)

var (
	viewerTools = []string{"gpr_templates_get", "gpr_templates_list", "gprs_estimate_accuracy", "gprs_get", "gprs_list",
		"gprs_waittime", "inventory_list", "inventory_workspace", "policies_get", "policies_list",
		"workspaces_get", "workspaces_list", "workspaces_network_metrics"}
	editorTools = []string{"gpr_templates_get", "gpr_templates_list", "gprs_create", "gprs_delete",
		"gprs_estimate_accuracy", "gprs_get", "gprs_list", "gprs_update", "gprs_waittime", "inventory_list", "inventory_workspace",
		"policies_get", "policies_list", "workspaces_get", "workspaces_kubeconfig", "workspaces_list",
		"workspaces_network_metrics"}
	ownerTools = []string{"apikeys_create", "apikeys_delete", "apikeys_list",
		"gpr_template_bindings_create", "gpr_template_bindings_delete", "gpr_template_bindings_get",
		"gpr_template_bindings_list", "gpr_template_bindings_update", "gpr_templates_create",
		"gpr_templates_delete", "gpr_templates_get", "gpr_templates_list", "gpr_templates_update",
		"gprs_create", "gprs_delete", "gprs_estimate_accuracy", "gprs_get", "gprs_list", "gprs_update", "gprs_waittime",
		"inventory_list", "inventory_workspace", "policies_get", "policies_list", "policies_update",
		"workspaces_create", "workspaces_delete", "workspaces_get", "workspaces_kubeconfig", "workspaces_list",
		"workspaces_network_metrics", "workspaces_update"}
	readOnlyOwnerTools = []string{"apikeys_list", "gpr_template_bindings_get", "gpr_template_bindings_list",
		"gpr_templates_get", "gpr_templates_list", "gprs_estimate_accuracy", "gprs_get", "gprs_list", "gprs_waittime", "inventory_list",
		"inventory_workspace", "policies_get", "policies_list", "workspaces_get", "workspaces_list",
		"workspaces_network_metrics"}
	nonDestructiveOwnerTools = []string{"apikeys_create", "apikeys_list", "gpr_template_bindings_create",
		"gpr_template_bindings_get", "gpr_template_bindings_list", "gpr_template_bindings_update",
		"gpr_templates_create", "gpr_templates_get", "gpr_templates_list", "gpr_templates_update",
		"gprs_create", "gprs_estimate_accuracy", "gprs_get", "gprs_list", "gprs_waittime", "inventory_list", "inventory_workspace",
		"policies_get", "policies_list", "policies_update", "workspaces_create", "workspaces_get",
		"workspaces_kubeconfig", "workspaces_list", "workspaces_network_metrics", "workspaces_update"}
)

// TestRoleFiltering checks that tools/list shows each role the tools it
// may call, over each transport, and that calling a tool the role may not
// use answers the API's own 403 envelope as a tool error.
func TestRoleFiltering(t *testing.T) {
	h := newHarness(t)
	ws := "roles-" + suffix()
	keys := map[auth.Role]string{
		auth.RoleOwner:  h.owner,
		auth.RoleEditor: h.key(t, auth.KeyRequest{Name: "editor", Role: auth.RoleEditor, Workspace: ws}),
		auth.RoleViewer: h.key(t, auth.KeyRequest{Name: "viewer", Role: auth.RoleViewer}),
	}
	want := map[auth.Role][]string{auth.RoleOwner: ownerTools, auth.RoleEditor: editorTools, auth.RoleViewer: viewerTools}
	transports := []struct {
		name    string
		connect func(t *testing.T, key string) mcpClient
	}{
		{"mcpgo-inprocess", func(t *testing.T, key string) mcpClient { return mcpgoInProcess(t, h.mcp, h.token(t, key)) }},
		{"mcpgo-http", func(t *testing.T, key string) mcpClient { return mcpgoHTTP(t, h.http.URL+"/mcp", h.token(t, key)) }},
		{"sdk-http", func(t *testing.T, key string) mcpClient { return sdkHTTP(t, h.http.URL+"/mcp", h.token(t, key)) }},
		{"sdk-stdio", func(t *testing.T, key string) mcpClient {
			return sdkStdio(t, StdioConfig{ServerURL: h.http.URL, APIKey: key})
		}},
	}
	for _, tr := range transports {
		for _, role := range auth.Roles {
			t.Run(tr.name+"/"+string(role), func(t *testing.T) {
				c := tr.connect(t, keys[role])
				defer c.close()
				if diff := cmp.Diff(want[role], names(c.tools(t))); diff != "" {
					t.Errorf("tools/list for %s (-want +got):\n%s", role, diff)
				}
				if role != auth.RoleViewer {
					return
				}
				// The same request over REST and as a tool: the same 403.
				args := map[string]any{"sliceName": ws, "gprName": "x", "numberOfGPUs": 1, "exitDuration": "0d1h0m"}
				r := c.call(t, "gprs_create", args)
				code, body := h.rest(t, http.MethodPost, "/api/v1/gpr", h.token(t, keys[role]), args)
				if code != http.StatusForbidden {
					t.Fatalf("REST: %d %s", code, body)
				}
				checkSameError(t, r, body)
			})
		}
	}
}

// checkSameError checks that a tool error is the REST answer rest: the
// text starts with its errorKey, status and message, and carries the
// whole envelope.
func checkSameError(t *testing.T, r callResult, rest []byte) {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(rest, &e); err != nil || e.Error == nil {
		t.Fatalf("REST answer is no error envelope: %s", rest)
	}
	if !r.isError {
		t.Fatalf("tool result is no error: %s", r.text)
	}
	prefix := e.Error.ErrorKey + " (HTTP " + itoa(e.StatusCode) + "): " + e.Error.Message + "\n\n"
	if !strings.HasPrefix(r.text, prefix) {
		t.Fatalf("tool error %q does not start with %q", r.text, prefix)
	}
	if !jsonEqual(t, []byte(strings.TrimPrefix(r.text, prefix)), rest) {
		t.Errorf("tool error envelope differs from REST's:\n%s\nREST:\n%s", strings.TrimPrefix(r.text, prefix), rest)
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// TestSameErrorsAsREST checks that invalid arguments, missing objects and
// scope violations give an agent exactly what a REST client gets.
func TestSameErrorsAsREST(t *testing.T) {
	h := newHarness(t)
	owner := h.token(t, h.owner)
	editor := h.token(t, h.key(t, auth.KeyRequest{Name: "editor", Role: auth.RoleEditor, Workspace: "only-this-one"}))
	tests := []struct {
		name         string
		token        string
		tool         string
		args         map[string]any
		method, path string // the same request over REST; args are its body
		wantKey      string
	}{
		{"priority out of range", owner, "gprs_create",
			map[string]any{"sliceName": "nope", "gprName": "x", "numberOfGPUs": 1, "exitDuration": "0d1h0m", "priority": 500},
			http.MethodPost, "/api/v1/gpr", "VALIDATION_ERROR"},
		{"bad duration", owner, "gprs_waittime",
			map[string]any{"sliceName": "nope", "gprName": "x", "numberOfGPUs": 1, "exitDuration": "90 minutes"},
			http.MethodPost, "/api/v1/gpr/waittime", "VALIDATION_ERROR"},
		{"missing required fields", owner, "workspaces_create",
			map[string]any{"workspaceName": "w-" + suffix()},
			http.MethodPost, "/api/v1/slice-workspace", "VALIDATION_ERROR"},
		{"unknown workspace", owner, "gprs_create",
			map[string]any{"sliceName": "no-such-ws", "gprName": "x", "numberOfGPUs": 1, "exitDuration": "0d1h0m"},
			http.MethodPost, "/api/v1/gpr", "NOT_FOUND"},
		{"unknown GPR", owner, "gprs_delete", map[string]any{"gprId": "gpr-nope"},
			http.MethodDelete, "/api/v1/gpr", "NOT_FOUND"},
		{"editor outside its workspace", editor, "gprs_create",
			map[string]any{"sliceName": "another", "gprName": "x", "numberOfGPUs": 1, "exitDuration": "0d1h0m"},
			http.MethodPost, "/api/v1/gpr", "FORBIDDEN"},
		{"no token", "", "inventory_list", nil, http.MethodGet, "/api/v1/inventory/list", "UNAUTHENTICATED"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := mcpgoInProcess(t, h.mcp, tc.token)
			r := c.call(t, tc.tool, tc.args)
			var body any
			if tc.args != nil {
				body = tc.args
			}
			_, rest := h.rest(t, tc.method, tc.path, tc.token, body)
			checkSameError(t, r, rest)
			if !strings.HasPrefix(r.text, tc.wantKey+" ") {
				t.Errorf("error %q, want errorKey %s", r.text, tc.wantKey)
			}
		})
	}

	// Arguments the tool cannot place in a request at all are its own
	// validation errors.
	c := mcpgoInProcess(t, h.mcp, owner)
	for _, tc := range []struct {
		tool string
		args map[string]any
		want string
	}{
		{"workspaces_get", nil, `VALIDATION_ERROR: argument "name" is required`},
		{"inventory_list", map[string]any{"cluster": "x"}, `VALIDATION_ERROR: unknown argument "cluster"; inventory_list takes no arguments`},
	} {
		if r := c.call(t, tc.tool, tc.args); !r.isError || r.text != tc.want {
			t.Errorf("%s %v: isError %v %q, want %q", tc.tool, tc.args, r.isError, r.text, tc.want)
		}
	}
}

// TestSafetySwitches checks --read-only and --disable-destructive: the
// tools they switch off are neither listed nor callable, whatever the
// caller's role, in process and over stdio.
func TestSafetySwitches(t *testing.T) {
	h := newHarness(t)
	owner := h.token(t, h.owner)
	tests := []struct {
		name                   string
		readOnly, noDestructve bool
		want                   []string
		off                    string // a tool switched off
	}{
		{"read-only", true, false, readOnlyOwnerTools, "gprs_create"},
		{"disable-destructive", false, true, nonDestructiveOwnerTools, "gprs_delete"},
		{"both", true, true, readOnlyOwnerTools, "workspaces_delete"},
		{"neither", false, false, ownerTools, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewServer(h.api, WithReadOnly(tc.readOnly), WithDisableDestructive(tc.noDestructve))
			if err != nil {
				t.Fatal(err)
			}
			clients := map[string]mcpClient{
				"mcpgo-inprocess": mcpgoInProcess(t, s, owner),
				"sdk-stdio":       sdkStdio(t, StdioConfig{ServerURL: h.http.URL, APIKey: h.owner, ReadOnly: tc.readOnly, DisableDestructive: tc.noDestructve}),
			}
			for name, c := range clients {
				if diff := cmp.Diff(tc.want, names(c.tools(t))); diff != "" {
					t.Errorf("%s tools/list (-want +got):\n%s", name, diff)
				}
				if tc.off == "" {
					continue
				}
				err := c.callErr(tc.off, map[string]any{"gprId": "gpr-x", "workspaceName": "x"})
				if err == nil || !strings.Contains(err.Error(), "not found") {
					t.Errorf("%s: calling switched-off %s: %v, want a tool-not-found error", name, tc.off, err)
				}
				c.close() // one stdio server at a time
			}
		})
	}
}

// TestHTTPAuth checks the /mcp endpoint's bearer authentication.
func TestHTTPAuth(t *testing.T) {
	h := newHarness(t)
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}`
	tests := []struct {
		name          string
		authorization string
		wantCode      int
		wantAuthn     string
	}{
		{"no token", "", http.StatusUnauthorized, `Bearer realm="gpuspace"`},
		{"not bearer", "Basic dTpw", http.StatusUnauthorized, `Bearer realm="gpuspace"`},
		{"forged token", "Bearer abc.def.ghi", http.StatusUnauthorized, `Bearer realm="gpuspace", error="invalid_token"`},
		{"valid token", "Bearer " + h.token(t, h.owner), http.StatusOK, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, h.http.URL+"/mcp", strings.NewReader(init))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			if tc.authorization != "" {
				req.Header.Set("Authorization", tc.authorization)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Error *struct {
					ErrorKey string `json:"errorKey"`
				} `json:"error"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&body)
			got := []any{resp.StatusCode, resp.Header.Get("WWW-Authenticate")}
			if diff := cmp.Diff([]any{tc.wantCode, tc.wantAuthn}, got); diff != "" {
				t.Errorf("status, WWW-Authenticate (-want +got):\n%s", diff)
			}
			if tc.wantCode == http.StatusUnauthorized && (body.Error == nil || body.Error.ErrorKey != "UNAUTHENTICATED") {
				t.Errorf("401 body has no UNAUTHENTICATED envelope")
			}
		})
	}
}

// TestStdioCredentials checks how `gpuspace mcp` authenticates: API key
// or token from the environment, clear errors for a wrong or missing
// credential, and a new token when the API refuses the current one.
func TestStdioCredentials(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		cfg  StdioConfig
		want string
	}{
		{"wrong key", StdioConfig{ServerURL: h.http.URL, APIKey: "gsk_wrong"}, "mcp: authenticate: UNAUTHENTICATED (HTTP 401)"},
		{"no credentials", StdioConfig{ServerURL: h.http.URL}, "mcp: no credentials"},
		{"both", StdioConfig{ServerURL: h.http.URL, APIKey: "a", Token: "b"}, "not both"},
		{"no URL", StdioConfig{APIKey: "a"}, "URL is required"},
		{"bad URL", StdioConfig{ServerURL: "127.0.0.1:8080", APIKey: "a"}, "want http(s)://host[:port]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewRemoteServer(ctx, tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewRemoteServer: %v, want an error containing %q", err, tc.want)
			}
		})
	}

	t.Run("token from the environment", func(t *testing.T) {
		t.Setenv(EnvAPIKey, "")
		t.Setenv(EnvToken, h.token(t, h.key(t, auth.KeyRequest{Name: "viewer", Role: auth.RoleViewer})))
		c := sdkStdio(t, StdioConfigFromEnv(StdioConfig{ServerURL: h.http.URL}))
		if diff := cmp.Diff(viewerTools, names(c.tools(t))); diff != "" {
			t.Errorf("tools/list (-want +got):\n%s", diff)
		}
		c.call(t, "workspaces_list", nil).data(t)
	})

	t.Run("expiry from the X-Token-Expires-At header", func(t *testing.T) {
		s, err := NewRemoteServer(ctx, StdioConfig{ServerURL: h.http.URL, APIKey: h.owner})
		if err != nil {
			t.Fatal(err)
		}
		r := s.backend.(*remote)
		r.mu.Lock()
		left := time.Until(r.expires)
		r.mu.Unlock()
		if left <= refreshBefore || left > 24*time.Hour {
			t.Errorf("token expires in %s: not read from the answer (the token would be renewed on every call)", left)
		}
	})

	t.Run("refused token is replaced", func(t *testing.T) {
		s, err := NewRemoteServer(ctx, StdioConfig{ServerURL: h.http.URL, APIKey: h.owner})
		if err != nil {
			t.Fatal(err)
		}
		r := s.backend.(*remote)
		r.mu.Lock()
		r.token = "abc.def.ghi" // as if revoked: the API answers 401
		r.mu.Unlock()
		c := mcpgoInProcess(t, s, "")
		c.call(t, "inventory_list", nil).data(t)
	})
}
