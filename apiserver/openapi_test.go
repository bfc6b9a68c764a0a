package apiserver

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// TestOpenAPI validates the served OpenAPI document (JSON and YAML) with
// kin-openapi, and checks the other non-API endpoints answer.
func TestOpenAPI(t *testing.T) {
	ts := newTestServer(t)
	for _, path := range []string{"/openapi.json", "/openapi.yaml"} {
		t.Run(path, func(t *testing.T) {
			r := ts.do(http.MethodGet, path, "", nil)
			if r.code != http.StatusOK {
				t.Fatalf("%d %s", r.code, trunc(r.raw))
			}
			loader := openapi3.NewLoader()
			doc, err := loader.LoadFromData([]byte(r.raw))
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if err := doc.Validate(context.Background()); err != nil {
				t.Fatalf("invalid OpenAPI document: %v", err)
			}
			if !doc.IsOpenAPI31OrLater() {
				t.Errorf("openapi %s, want 3.1", doc.OpenAPI)
			}
			// Every operation documents its errors in the envelope.
			for p, item := range doc.Paths.Map() {
				for method, op := range item.Operations() {
					if op.Responses.Value("200") == nil {
						t.Errorf("%s %s: no 200 response", method, p)
					}
					if op.Responses.Value("500") == nil {
						t.Errorf("%s %s: no 500 response", method, p)
					}
				}
			}
		})
	}
	for _, c := range []struct{ path, contains string }{
		{"/docs", "<html"},
		{"/metrics", "gpuspace_api_requests_total"},
	} {
		r := ts.do(http.MethodGet, c.path, "", nil)
		if r.code != http.StatusOK || !strings.Contains(r.raw, c.contains) {
			t.Errorf("GET %s: %d, want 200 containing %q: %s", c.path, r.code, c.contains, trunc(r.raw))
		}
	}
}

func trunc(s string) string {
	if len(s) > 400 {
		return s[:400] + "..."
	}
	return s
}

// TestOperationMetadata: every operation carries its declaration, tool
// names are unique, and every operation a workspace-limited key may call
// declares the workspace it acts on.
func TestOperationMetadata(t *testing.T) {
	names := map[string]string{}
	for _, op := range Operations(Describe("")) {
		o := OpOf(op)
		if o == nil {
			t.Errorf("%s: no declaration in Metadata", op.OperationID)
			continue
		}
		if name := o.MCPName(); name != "" {
			if prev, dup := names[name]; dup {
				t.Errorf("MCP name %s used by %s and %s", name, prev, op.OperationID)
			}
			names[name] = op.OperationID
		}
		if o.ReadOnly() && (op.Method != http.MethodGet && op.OperationID != "estimateGPRWaitTime") {
			t.Errorf("%s: readOnly but %s", op.OperationID, op.Method)
		}
		if o.aliasOf != "" && o.MCPName() != "" {
			t.Errorf("%s: an alias has no tool of its own", op.OperationID)
		}
		if len(o.Roles()) > 0 && len(op.Security) == 0 {
			t.Errorf("%s: has roles but no security requirement in OpenAPI", op.OperationID)
		}
		if needsScope(o.Roles()) && o.Scope().kind == scopeUndeclared {
			t.Errorf("%s: open to %s, which a key may hold for one workspace, but declares no scope", op.OperationID, roleList(o.Roles()))
		}
	}
}

// TestDescribe: the cluster-less description has the same operations as a
// running server.
func TestDescribe(t *testing.T) {
	ts := newTestServer(t)
	var want, got []string
	for _, op := range Operations(ts.srv.API()) {
		want = append(want, op.OperationID)
	}
	for _, op := range Operations(Describe("")) {
		got = append(got, op.OperationID)
	}
	if strings.Join(want, ",") != strings.Join(got, ",") {
		t.Errorf("Describe: %v, want %v", got, want)
	}
}
