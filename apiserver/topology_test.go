package apiserver

import (
	"net/http"
	"strings"
	"testing"
)

// TestGPRTopology: a GPR may name a topology (an optional field of the EGS
// shape); an unknown level or a slice size that does not divide the nodes
// is a 422 naming the field; the GPR reports its topology back, and a GPR
// without one has no topology field at all, as EGS clients expect.
func TestGPRTopology(t *testing.T) {
	ts := newTestServer(t)
	ws := "topo-" + suffix()
	createWorkspace(t, ts, ws, ws+"-ns")
	t.Cleanup(func() {
		ts.do(http.MethodDelete, "/api/v1/slice-workspace", ts.owner, map[string]string{"workspaceName": ws})
	})
	gpr := func(topo map[string]any) map[string]any {
		b := map[string]any{"gprName": "t", "sliceName": ws, "numberOfGPUs": 1, "numberOfGPUNodes": 4, "exitDuration": "0d1h0m"}
		if topo != nil {
			b["topology"] = topo
		}
		return b
	}
	for _, tc := range []struct {
		topo       map[string]any
		field, why string
	}{
		{map[string]any{"required": "example.com/aisle"}, "topology.required", "not a level of any topology"},
		{map[string]any{"required": "cloud.google.com/gce-topology-block", "sliceSize": 3}, "topology.sliceSize", "does not divide numberOfGPUNodes 4"},
		{map[string]any{"preferred": "cloud.google.com/gce-topology-block", "sliceSize": 2}, "topology.sliceSize", "needs a required level"},
		{map[string]any{"required": "a", "preferred": "b"}, "topology.preferred", "not both"},
	} {
		r := ts.do(http.MethodPost, "/api/v1/gpr", ts.owner, gpr(tc.topo))
		if r.code != http.StatusUnprocessableEntity || !strings.Contains(r.raw, tc.field) || !strings.Contains(r.errMsg()+r.raw, tc.why) {
			t.Errorf("topology %v: %d %s, want 422 naming %s: %s", tc.topo, r.code, r.raw, tc.field, tc.why)
		}
	}
	id := wantOK(t, ts.do(http.MethodPost, "/api/v1/gpr", ts.owner, gpr(map[string]any{"required": "cloud.google.com/gce-topology-block", "sliceSize": 2}))).data()["gprId"].(string)
	got := wantOK(t, ts.do(http.MethodGet, "/api/v1/gpr?gprId="+id, ts.owner, nil)).data()
	if topo, _ := got["topology"].(map[string]any); topo["required"] != "cloud.google.com/gce-topology-block" || topo["sliceSize"] != float64(2) {
		t.Errorf("GPR topology %v", got["topology"])
	}
	plain := wantOK(t, ts.do(http.MethodPost, "/api/v1/gpr", ts.owner, gpr(nil))).data()["gprId"].(string)
	if got := wantOK(t, ts.do(http.MethodGet, "/api/v1/gpr?gprId="+plain, ts.owner, nil)).data(); got["topology"] != nil {
		t.Errorf("GPR without topology reports %v", got["topology"])
	}
}

// TestPolicyTopology: a policy may require a topology level of GPRs over
// a number of nodes; a GPR that large naming none is given the level, a
// smaller one is not, and a policy naming an unknown level is a 422.
func TestPolicyTopology(t *testing.T) {
	ts := newTestServer(t)
	ws := "topo-pol-" + suffix()
	createWorkspace(t, ts, ws, ws+"-ns")
	t.Cleanup(func() {
		ts.do(http.MethodDelete, "/api/v1/slice-workspace", ts.owner, map[string]string{"workspaceName": ws})
	})
	const block = "cloud.google.com/gce-topology-block"
	if r := ts.do(http.MethodPut, "/api/v1/workspace-policies/"+ws, ts.owner, map[string]any{"topology": map[string]any{"minNodes": 4, "level": "example.com/aisle"}}); r.code != http.StatusUnprocessableEntity || !strings.Contains(r.raw, "topology.level") {
		t.Fatalf("policy with an unknown level: %d %s", r.code, r.raw)
	}
	p := wantOK(t, ts.do(http.MethodPut, "/api/v1/workspace-policies/"+ws, ts.owner, map[string]any{"topology": map[string]any{"minNodes": 4, "level": block}})).data()
	if topo, _ := p["topology"].(map[string]any); topo["level"] != block || topo["minNodes"] != float64(4) {
		t.Fatalf("policy topology %v", p["topology"])
	}
	for nodes, want := range map[int]any{3: nil, 4: block} {
		id := wantOK(t, ts.do(http.MethodPost, "/api/v1/gpr", ts.owner, map[string]any{"gprName": "t", "sliceName": ws, "numberOfGPUs": 1,
			"numberOfGPUNodes": nodes, "exitDuration": "0d1h0m"})).data()["gprId"].(string)
		got := wantOK(t, ts.do(http.MethodGet, "/api/v1/gpr?gprId="+id, ts.owner, nil)).data()["topology"]
		var level any
		if m, ok := got.(map[string]any); ok {
			level = m["required"]
		}
		if level != want {
			t.Errorf("GPR of %d nodes: topology %v, want required %v", nodes, got, want)
		}
	}
}
