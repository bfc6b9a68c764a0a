package apiserver

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fuzzBody fuzzes one operation's request body through the full handler
// chain (in memory, as Owner). Whatever the body, the answer is a JSON
// envelope whose statusCode is the HTTP status, and never a 5xx: bad input
// is the client's error, and a 500 would be a bug.
func fuzzBody(f *testing.F, method, path string, seeds ...string) {
	ts := newTestServer(f)
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(method, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+ts.owner)
		res := ts.srv.Do(req)
		defer res.Body.Close()
		var env struct {
			StatusCode *int    `json:"statusCode"`
			Status     *string `json:"status"`
			Message    *string `json:"message"`
			Error      *struct {
				ErrorKey string `json:"errorKey"`
				Message  string `json:"message"`
			} `json:"error"`
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("Content-Type %q", ct)
		}
		if err := json.NewDecoder(res.Body).Decode(&env); err != nil {
			t.Fatalf("answer is not JSON: %v", err)
		}
		if env.StatusCode == nil || *env.StatusCode != res.StatusCode || env.Status == nil || env.Message == nil {
			t.Fatalf("not an envelope, or statusCode differs from HTTP %d", res.StatusCode)
		}
		if res.StatusCode >= 500 {
			t.Fatalf("%d for body %q", res.StatusCode, body)
		}
		if res.StatusCode >= 400 && (env.Error == nil || env.Error.ErrorKey == "" || env.Error.Message == "") {
			t.Fatalf("%d without error key and message", res.StatusCode)
		}
	})
}

// Seeds are the spec's and the Postman collection's example bodies plus
// edge cases; `go test` runs them, `go test -fuzz FuzzX` explores.

func FuzzAuthBody(f *testing.F) {
	fuzzBody(f, http.MethodPost, "/api/v1/auth", `{"apiKey": "ff37ed55-1e76-4117-8eb4-f3f1ee688a7c"}`, `{}`, `{"apiKey": 1}`,
		`{"apiKey": "gps_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`, ``, `[`)
}

func FuzzCreateWorkspaceBody(f *testing.F) {
	fuzzBody(f, http.MethodPost, "/api/v1/slice-workspace",
		`{"workspaceName": "fz-ws", "clusters": ["worker-1"], "namespaces": ["fz-ns"], "username": "John Doe", "email": "john.doe@avesha.io",
		  "overlayNetworkDeploymentMode": "single-network", "sliceSubnet": "10.0.0.0/16", "sliceGWType": "OpenVPN", "standardQosProfileName": "default"}`,
		`{"workspaceName": "Bad", "clusters": [], "namespaces": ["kube-system"], "username": ""}`,
		`{"workspaceName": "x", "clusters": ["worker-1", "worker-1"], "namespaces": ["a", "a"], "username": "u", "maxClusters": 1}`,
		`{"workspaceName": null}`, `null`, `"str"`)
}

func FuzzUpdateWorkspaceBody(f *testing.F) {
	fuzzBody(f, http.MethodPut, "/api/v1/slice-workspace",
		`{"workspaceName": "fz-missing", "clusters": ["worker-1"], "namespaces": ["fz-ns2"], "username": "Jane"}`,
		`{"workspaceName": "", "clusters": ["worker-1"], "namespaces": ["n"], "username": "u"}`)
}

func FuzzDeleteWorkspaceBody(f *testing.F) {
	fuzzBody(f, http.MethodDelete, "/api/v1/slice-workspace", `{"workspaceName": "fz-none"}`, `{"workspaceName": ""}`, `{}`)
}

func FuzzKubeconfigBody(f *testing.F) {
	fuzzBody(f, http.MethodPost, "/api/v1/slice-workspace/kube-config", `{"workspaceName": "fz-none", "clusterName": "worker-1"}`, `{}`, `{"clusterName": 5}`)
}

const fuzzGPR = `{"gprName":"created-by-coreapi","clusterName":"worker-1","sliceName":"pink","numberOfGPUs":1,"instanceType":"n1-highcpu-2",
 "exitDuration":"0d0h1m","numberOfGPUNodes": 1,"priority":201,"memoryPerGPU":15,"gpuShape":"Tesla-T4","idleTimeOutDuration":"0d0h1m",
 "multiNode":false,"enforceIdleTimeOut":true}`

func FuzzCreateGPRBody(f *testing.F) {
	fuzzBody(f, http.MethodPost, "/api/v1/gpr", fuzzGPR,
		`{"gprName":"g","sliceName":"s","numberOfGPUs":0,"exitDuration":"99999d0h0m","priority":301,"memoryPerGpu":-1}`,
		`{"gprName":"g","sliceName":"s","numberOfGPUs":1,"exitDuration":"0d0h0m"}`)
}

func FuzzWaitTimeBody(f *testing.F) {
	fuzzBody(f, http.MethodPost, "/api/v1/gpr/waittime", fuzzGPR, `{"numberOfGPUs": 1e400}`)
}

func FuzzUpdateGPRBody(f *testing.F) {
	fuzzBody(f, http.MethodPut, "/api/v1/gpr", `{"gprId":"gpr-e4e38fc5-4742","priority": 101,"earlyRelease": true,"gprName": "created-by-core-apis"}`,
		`{"gprId":"gpr-e4e38fc5-4742","priority": 0}`, `{"gprId":"../../etc"}`)
}

func FuzzDeleteGPRBody(f *testing.F) {
	fuzzBody(f, http.MethodDelete, "/api/v1/gpr", `{"gprId": "gpr-e4e38fc5-4742"}`, `{"gprId": ""}`, `{"gprId": "A B"}`)
}

func FuzzCreateAPIKeyBody(f *testing.F) {
	fuzzBody(f, http.MethodPost, "/api/v1/api-key", `{"name":"ci","userName":"bot","description":"d","role":"Viewer","validUntil":"2099-12-31","workspaceName":""}`,
		`{"name":"x","role":"Editor","workspaceName":"nope"}`, `{"name":"x","role":"Owner","validUntil":"tomorrow"}`)
}

func FuzzDeleteAPIKeyBody(f *testing.F) {
	fuzzBody(f, http.MethodDelete, "/api/v1/api-key", `{"apiKeyId":"0000000000000000"}`, `{"name":"nobody"}`, `{}`, `{"apiKey":"gps_x"}`)
}
