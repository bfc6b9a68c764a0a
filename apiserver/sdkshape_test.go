package apiserver

import (
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"
)

// TestStrictSDKShapes guards the answers the EGS Python SDK parses with
// constructors that take no extra fields (internal/dev/egssdk runs the SDK
// itself; this holds where python3 is missing): the envelope
// (ApiResponse(**answer)), /auth's data (AuthenticationResponse(**data),
// token only) and the workspace list's data (ListWorkspacesResponse, only
// workspaces). An extra key in any of them is a TypeError for every SDK
// user.
func TestStrictSDKShapes(t *testing.T) {
	ts := newTestServer(t)
	envelopeKeys := []string{"data", "error", "message", "status", "statusCode"}
	strict := func(what string, r result, dataKeys ...string) {
		t.Helper()
		for k := range r.body {
			if !slices.Contains(envelopeKeys, k) {
				t.Errorf("%s: envelope key %q; the SDK's ApiResponse takes only %v", what, k, envelopeKeys)
			}
		}
		if dataKeys == nil {
			return
		}
		got := slices.Sorted(maps.Keys(r.data()))
		if !slices.Equal(got, dataKeys) {
			t.Errorf("%s: data keys %v, want exactly %v: %s", what, got, dataKeys, r.raw)
		}
	}

	r := ts.do(http.MethodPost, "/api/v1/auth", "", map[string]string{"apiKey": ts.ownKey})
	strict("POST /auth", r, "token")
	exp, err := time.Parse(time.RFC3339, r.header.Get(HeaderTokenExpiresAt))
	if err != nil || time.Until(exp) < 10*time.Minute || time.Until(exp) > 16*time.Minute {
		t.Errorf("%s header %q: want the token's expiry, 15 minutes ahead (%v)", HeaderTokenExpiresAt, r.header.Get(HeaderTokenExpiresAt), err)
	}
	strict("POST /auth with a wrong key", ts.do(http.MethodPost, "/api/v1/auth", "", map[string]string{"apiKey": "gps_nope_nope"}))
	strict("GET /slice-workspace/list", ts.do(http.MethodGet, "/api/v1/slice-workspace/list", ts.owner, nil), "workspaces")
	strict("an unknown path", ts.do(http.MethodGet, "/api/v1/no-such-thing", ts.owner, nil))
	r = ts.do(http.MethodGet, "/api/v1/inference-endpoint/list?workspace=w", ts.owner, nil)
	strict("GET /inference-endpoint/list", r)
	if r.code != http.StatusNotImplemented || r.errKey() != KeyInferenceNotServed {
		t.Errorf("inference endpoints: %d %s, want 501 %s", r.code, r.raw, KeyInferenceNotServed)
	}
}
