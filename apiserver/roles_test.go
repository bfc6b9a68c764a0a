package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
)

// TestRoleMatrix calls every operation as every kind of caller and checks
// who gets through: Owner, Editor of the workspace and of another one,
// Viewer of everything and of the workspace, no token, an expired token, a
// forged token, and the token of a deleted key. It fails if an operation
// is registered without a row here.
func TestRoleMatrix(t *testing.T) {
	ts := newTestServer(t)
	ctx := context.Background()
	sfx := suffix()
	wsA, wsB := "rm-a-"+sfx, "rm-b-"+sfx
	addNode(t, testenv.GPUNode{Name: "rm-h100-" + sfx, InstanceType: "p5.48xlarge", Product: "NVIDIA-H100-80GB-HBM3", MemoryMiB: 81559, GPUs: 8})
	for _, ws := range []string{wsA, wsB} {
		createWorkspace(t, ts, ws, ws+"-ns")
		readyWorkspace(t, ws)
	}
	t.Cleanup(func() {
		for _, ws := range []string{wsA, wsB} {
			ts.do(http.MethodDelete, "/api/v1/slice-workspace", ts.owner, map[string]string{"workspaceName": ws})
			_ = env.Kube.CoreV1().Namespaces().Delete(ctx, ws+"-ns", metav1.DeleteOptions{})
		}
	})

	tokens := map[string]string{
		"owner":        ts.owner,
		"editor-own":   ts.token(ts.createKey(auth.KeyRequest{Name: "ed-a", Role: auth.RoleEditor, Workspace: wsA})),
		"editor-other": ts.token(ts.createKey(auth.KeyRequest{Name: "ed-b", Role: auth.RoleEditor, Workspace: wsB})),
		"viewer":       ts.token(ts.createKey(auth.KeyRequest{Name: "view", Role: auth.RoleViewer})),
		"viewer-own":   ts.token(ts.createKey(auth.KeyRequest{Name: "view-a", Role: auth.RoleViewer, Workspace: wsA})),
		"viewer-other": ts.token(ts.createKey(auth.KeyRequest{Name: "view-b", Role: auth.RoleViewer, Workspace: wsB})),
		"no-token":     "",
		"expired":      expiredToken(t, ts),
		"forged":       forgedToken(t),
	}
	deletedKey := ts.createKey(auth.KeyRequest{Name: "doomed", Role: auth.RoleOwner})
	tokens["deleted-key"] = ts.token(deletedKey)
	if r := ts.do(http.MethodDelete, "/api/v1/api-key", ts.owner, map[string]string{"apiKey": deletedKey}); r.code != http.StatusOK {
		t.Fatalf("delete key: %d %s", r.code, r.raw)
	}
	callers := make([]string, 0, len(tokens))
	for c := range tokens {
		callers = append(callers, c)
	}
	sort.Strings(callers)

	gprBody := func() map[string]any {
		return map[string]any{"gprName": "rm", "sliceName": wsA, "numberOfGPUs": 1, "exitDuration": "0d1h0m", "gpuShape": "H100", "priority": 50}
	}
	newGPR := func() string {
		r := ts.do(http.MethodPost, "/api/v1/gpr", ts.owner, gprBody())
		if r.code != http.StatusOK {
			t.Fatalf("create GPR: %d %s", r.code, r.raw)
		}
		return r.data()["gprId"].(string)
	}
	gpr := newGPR()
	n := 0
	fresh := func(prefix string) string { n++; return fmt.Sprintf("%s-%s-%d", prefix, sfx, n) }
	wsBody := func(name string) map[string]any {
		return map[string]any{"workspaceName": name, "clusters": []string{"worker-1"}, "namespaces": []string{name + "-ns"}, "username": "u"}
	}

	tmpl := fresh("rmt")
	mustOK(t, ts.do("POST", "/api/v1/gpr-template", ts.owner, templateBody(tmpl)))
	mustOK(t, ts.do("POST", "/api/v1/gpr-template-binding", ts.owner, bindingBody(wsA, tmpl)))

	// ok: callers that get through; every other caller with a valid token
	// gets 403, and invalid or missing tokens get 401.
	readers := []string{"owner", "editor-own", "editor-other", "viewer", "viewer-own", "viewer-other"}
	readersA := []string{"owner", "editor-own", "viewer", "viewer-own"}
	writersA := []string{"owner", "editor-own"}
	writers := []string{"owner", "editor-own", "editor-other"}
	ownerOnly := []string{"owner"}
	type req struct {
		method, path string
		body         any
	}
	rows := map[string]struct {
		ok  []string
		req func() req
	}{
		"authenticate": {ok: callers, req: func() req { return req{"POST", "/api/v1/auth", map[string]string{"apiKey": ts.ownKey}} }},
		"healthcheck":  {ok: callers, req: func() req { return req{"GET", "/api/v1/healthcheck", nil} }},
		"createWorkspace": {ok: ownerOnly, req: func() req {
			name := fresh("rmc")
			t.Cleanup(func() { ts.do("DELETE", "/api/v1/slice-workspace", ts.owner, map[string]string{"workspaceName": name}) })
			return req{"POST", "/api/v1/slice-workspace", wsBody(name)}
		}},
		"listWorkspaces": {ok: readers, req: func() req { return req{"GET", "/api/v1/slice-workspace/list", nil} }},
		"getWorkspace":   {ok: readersA, req: func() req { return req{"GET", "/api/v1/slice-workspace/" + wsA, nil} }},
		"updateWorkspace": {ok: ownerOnly, req: func() req {
			b := wsBody(wsA)
			delete(b, "workspaceName")
			return req{"PUT", "/api/v1/slice-workspace/" + wsA, b}
		}},
		"updateWorkspaceByBody": {ok: ownerOnly, req: func() req { return req{"PUT", "/api/v1/slice-workspace", wsBody(wsA)} }},
		"deleteWorkspace": {ok: ownerOnly, req: func() req {
			name := fresh("rmd")
			createWorkspace(t, ts, name, name+"-ns")
			t.Cleanup(func() { ts.do("DELETE", "/api/v1/slice-workspace", ts.owner, map[string]string{"workspaceName": name}) })
			return req{"DELETE", "/api/v1/slice-workspace", map[string]string{"workspaceName": name}}
		}},
		"getWorkspaceOverlayMetrics": {ok: readersA, req: func() req { return req{"GET", "/api/v1/workspace/overlaynetworkmetrics/" + wsA, nil} }},
		"createWorkspaceKubeconfig": {ok: writersA, req: func() req {
			return req{"POST", "/api/v1/slice-workspace/kube-config", map[string]string{"workspaceName": wsA}}
		}},
		"getWorkspaceKubeconfig": {ok: writersA, req: func() req { return req{"GET", "/api/v1/slice-workspace/kube-config?workspaceName=" + wsA, nil} }},
		"getPlan":                {ok: readers, req: func() req { return req{"GET", "/api/v1/plan", nil} }},
		"streamEvents":           {ok: readers, req: func() req { return req{"GET", "/api/v1/events?timeout=100ms", nil} }},
		"createConsoleSession": {ok: callers, req: func() req {
			return req{"POST", "/api/v1/console/session", map[string]string{"apiKey": ts.ownKey}}
		}},
		"getConsoleSession":     {ok: readers, req: func() req { return req{"GET", "/api/v1/console/session", nil} }},
		"deleteConsoleSession":  {ok: callers, req: func() req { return req{"DELETE", "/api/v1/console/session", nil} }},
		"listInventory":         {ok: readers, req: func() req { return req{"GET", "/api/v1/inventory/list", nil} }},
		"getWorkspaceInventory": {ok: readersA, req: func() req { return req{"GET", "/api/v1/inventory?sliceName=" + wsA, nil} }},
		"createGPR": {ok: writersA, req: func() req {
			return req{"POST", "/api/v1/gpr", gprBody()}
		}},
		"estimateGPRWaitTime": {ok: readersA, req: func() req { return req{"POST", "/api/v1/gpr/waittime", gprBody()} }},
		"updateGPR":           {ok: writersA, req: func() req { return req{"PUT", "/api/v1/gpr", map[string]any{"gprId": gpr, "priority": 10 + n%50}} }},
		"deleteGPR":           {ok: writersA, req: func() req { return req{"DELETE", "/api/v1/gpr", map[string]any{"gprId": newGPR()}} }},
		"getGPR":              {ok: readersA, req: func() req { return req{"GET", "/api/v1/gpr?gprId=" + gpr, nil} }},
		"listGPRs":            {ok: readersA, req: func() req { return req{"GET", "/api/v1/gpr/list?sliceName=" + wsA, nil} }},
		"getEstimateAccuracy": {ok: readersA, req: func() req { return req{"GET", "/api/v1/gpr/estimate-accuracy?sliceName=" + wsA, nil} }},
		"createAPIKey": {ok: ownerOnly, req: func() req {
			return req{"POST", "/api/v1/api-key", map[string]any{"name": fresh("k"), "role": "Viewer"}}
		}},
		"deleteAPIKey": {ok: ownerOnly, req: func() req {
			name := fresh("del")
			ts.createKey(auth.KeyRequest{Name: name, Role: auth.RoleViewer})
			return req{"DELETE", "/api/v1/api-key", map[string]any{"name": name}}
		}},
		"listAPIKeys":           {ok: ownerOnly, req: func() req { return req{"GET", "/api/v1/api-key/list", nil} }},
		"listWorkspacePolicies": {ok: readers, req: func() req { return req{"GET", "/api/v1/workspace-policies", nil} }},
		"getWorkspacePolicy":    {ok: readersA, req: func() req { return req{"GET", "/api/v1/workspace-policies/" + wsA, nil} }},
		"putWorkspacePolicy": {ok: ownerOnly, req: func() req {
			// Limits the other rows never reach.
			return req{"PUT", "/api/v1/workspace-policies/" + wsA, map[string]any{"priorityRange": "high", "maxGPRs": 100000, "maxExitDurationPerGPR": "12M"}}
		}},
		"createGPRTemplate": {ok: ownerOnly, req: func() req { return req{"POST", "/api/v1/gpr-template", templateBody(fresh("rmt"))} }},
		"updateGPRTemplate": {ok: ownerOnly, req: func() req { return req{"PUT", "/api/v1/gpr-template", templateBody(tmpl)} }},
		"getGPRTemplate":    {ok: readers, req: func() req { return req{"GET", "/api/v1/gpr-template?gprTemplateName=" + tmpl, nil} }},
		"listGPRTemplates":  {ok: readers, req: func() req { return req{"GET", "/api/v1/gpr-template/list", nil} }},
		"deleteGPRTemplate": {ok: ownerOnly, req: func() req {
			name := fresh("rmtd")
			mustOK(t, ts.do("POST", "/api/v1/gpr-template", ts.owner, templateBody(name)))
			return req{"DELETE", "/api/v1/gpr-template", map[string]any{"gprTemplateName": name}}
		}},
		"createGPRTemplateBinding": {ok: ownerOnly, req: func() req {
			ts.do("DELETE", "/api/v1/gpr-template-binding", ts.owner, map[string]any{"gprTemplateBindingName": wsB})
			return req{"POST", "/api/v1/gpr-template-binding", bindingBody(wsB, tmpl)}
		}},
		"updateGPRTemplateBinding": {ok: ownerOnly, req: func() req { return req{"PUT", "/api/v1/gpr-template-binding", bindingBody(wsA, tmpl)} }},
		"getGPRTemplateBinding":    {ok: ownerOnly, req: func() req { return req{"GET", "/api/v1/gpr-template-binding?gprTemplateBindingName=" + wsA, nil} }},
		"listGPRTemplateBindings":  {ok: ownerOnly, req: func() req { return req{"GET", "/api/v1/gpr-template-binding/list", nil} }},
		"deleteGPRTemplateBinding": {ok: ownerOnly, req: func() req {
			ts.do("POST", "/api/v1/gpr-template-binding", ts.owner, bindingBody(wsB, tmpl))
			return req{"DELETE", "/api/v1/gpr-template-binding", map[string]any{"gprTemplateBindingName": wsB}}
		}},
		// Not served (501), behind the roles all the same.
		"listInferenceEndpoints":    {ok: readers, req: func() req { return req{"GET", "/api/v1/inference-endpoint/list?workspace=" + wsA, nil} }},
		"describeInferenceEndpoint": {ok: readers, req: func() req { return req{"GET", "/api/v1/inference-endpoint?workspace=" + wsA, nil} }},
		"createInferenceEndpoint": {ok: writers, req: func() req {
			return req{"POST", "/api/v1/inference-endpoint", map[string]any{"workspace": wsA, "endpointName": "llm"}}
		}},
		"deleteInferenceEndpoint": {ok: writers, req: func() req {
			return req{"DELETE", "/api/v1/inference-endpoint", map[string]any{"workspace": wsA, "endpoint": "llm"}}
		}},
	}

	for _, op := range Operations(ts.srv.API()) {
		if _, ok := rows[op.OperationID]; !ok {
			t.Errorf("operation %s (%s %s) has no row in the role matrix", op.OperationID, op.Method, op.Path)
		}
	}
	for opID, row := range rows {
		allowed := map[string]bool{}
		for _, c := range row.ok {
			allowed[c] = true
		}
		for _, caller := range callers {
			t.Run(opID+"/"+caller, func(t *testing.T) {
				rq := row.req()
				r := ts.do(rq.method, rq.path, tokens[caller], rq.body)
				var want int
				switch {
				case allowed[caller]:
				case caller == "no-token" || caller == "expired" || caller == "forged" || caller == "deleted-key":
					want = http.StatusUnauthorized
				default:
					want = http.StatusForbidden
				}
				if want == 0 {
					// 501: the inference endpoints, which gpuspace does not serve.
					if r.code == http.StatusUnauthorized || r.code == http.StatusForbidden || (r.code >= 500 && r.code != http.StatusNotImplemented) {
						t.Errorf("%s %s as %s: %d, want it let through: %s", rq.method, rq.path, caller, r.code, r.raw)
					}
					return
				}
				wantKey := map[int]string{401: "UNAUTHENTICATED", 403: "FORBIDDEN"}[want]
				if r.code != want || r.errKey() != wantKey {
					t.Errorf("%s %s as %s: %d %s, want %d %s: %s", rq.method, rq.path, caller, r.code, r.errKey(), want, wantKey, r.raw)
				}
			})
		}
	}

	// Scope: a workspace-limited caller lists only its workspace.
	r := ts.do("GET", "/api/v1/slice-workspace/list", tokens["viewer-own"], nil)
	var names []string
	for _, w := range r.data()["workspaces"].([]any) {
		names = append(names, w.(map[string]any)["name"].(string))
	}
	if len(names) != 1 || names[0] != wsA {
		t.Errorf("viewer of %s lists %v, want only its workspace", wsA, names)
	}
}

func createWorkspace(t testing.TB, ts *testServer, name string, namespaces ...string) {
	t.Helper()
	r := ts.do(http.MethodPost, "/api/v1/slice-workspace", ts.owner, map[string]any{
		"workspaceName": name, "clusters": []string{"worker-1"}, "namespaces": namespaces, "username": "test", "email": "t@example.com",
	})
	if r.code != http.StatusOK {
		t.Fatalf("create workspace %s: %d %s", name, r.code, r.raw)
	}
}

// expiredToken signs, with the server's real key, a token for the Owner
// key that expired a minute ago.
func expiredToken(t *testing.T, ts *testServer) string {
	t.Helper()
	sec, err := env.Kube.CoreV1().Secrets(ts.ns).Get(context.Background(), auth.SigningKeySecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := auth.NewSigner(sec.Data["key"])
	if err != nil {
		t.Fatal(err)
	}
	claims := ownerClaims(t, ts)
	claims.IssuedAt = time.Now().Add(-16 * time.Minute).Unix()
	claims.ExpiresAt = time.Now().Add(-time.Minute).Unix()
	tok, err := s.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// ownerClaims are the claims of a valid Owner token of ts.
func ownerClaims(t *testing.T, ts *testServer) auth.Claims {
	t.Helper()
	p, err := ts.srv.Authenticate(context.Background(), ts.owner)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := env.Kube.CoreV1().Secrets(ts.ns).Get(context.Background(), auth.SecretPrefix+p.KeyID, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return auth.Claims{KeyID: p.KeyID, KeyUID: string(sec.UID), Role: auth.RoleOwner, IssuedAt: time.Now().Unix(), ExpiresAt: time.Now().Add(time.Hour).Unix()}
}

// forgedToken is a well-formed token signed with a key the server never had.
func forgedToken(t *testing.T) string {
	t.Helper()
	s, err := auth.NewSigner([]byte("an attacker's key, 32 bytes long!"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.Sign(auth.Claims{KeyID: "0123456789abcdef", Role: auth.RoleOwner, ExpiresAt: time.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
