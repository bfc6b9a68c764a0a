package apiserver

import (
	"context"
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
)

// TestIdleViews: the inventory shows each node's utilisation,
// timeSinceNoUtilization and whether it publishes idleness; a provisioned
// GPR shows the same over its nodes (counted from its start) and when idle
// release takes it.
func TestIdleViews(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	ts := newTestServer(t, WithClock(func() time.Time { return now }))
	ctx := context.Background()
	idle, busy, silent := "idle-"+suffix(), "busy-"+suffix(), "silent-"+suffix()
	for _, n := range []string{idle, busy, silent} {
		addNode(t, testenv.GPUNode{Name: n, InstanceType: "g4dn.xlarge", Product: "Tesla-T4", MemoryMiB: 15360, GPUs: 1})
	}
	annotate := func(node string, a map[string]*string) {
		t.Helper()
		patch := `{"metadata":{"annotations":{`
		first := true
		for k, v := range a {
			if !first {
				patch += ","
			}
			first = false
			if v == nil {
				patch += `"` + k + `":null`
			} else {
				patch += `"` + k + `":"` + *v + `"`
			}
		}
		patch += `}}}`
		if _, err := env.Kube.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	str := func(s string) *string { return &s }
	annotate(idle, map[string]*string{v1alpha1.AnnotationGPUsIdleSince: str(now.Add(-time.Hour).Format(time.RFC3339)), v1alpha1.AnnotationGPUUtilization: str("0")})
	annotate(busy, map[string]*string{v1alpha1.AnnotationGPUsIdleSince: str(""), v1alpha1.AnnotationGPUUtilization: str("87")})
	annotate(silent, map[string]*string{v1alpha1.AnnotationGPUsIdleSince: nil, v1alpha1.AnnotationGPUUtilization: nil})

	ws := "idle-ws-" + suffix()
	mustCreate(t, &v1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: ws}, Spec: v1alpha1.WorkspaceSpec{Username: "u", Clusters: []string{"worker-1"}, Namespaces: []v1alpha1.WorkspaceNamespace{{Namespace: ws}}}})
	gpr := func(name, node string) string {
		id := "gpr-" + name + "-" + suffix()
		mustCreate(t, &v1alpha1.GPUProvisionRequest{ObjectMeta: metav1.ObjectMeta{Name: id}, Spec: v1alpha1.GPUProvisionRequestSpec{
			GPRName: name, Workspace: ws, ClusterName: "worker-1", NumberOfGPUs: 1, NumberOfGPUNodes: 1, ExitDuration: "0d2h0m",
			IdleTimeOutDuration: "0d1h0m", EnforceIdleTimeOut: true,
		}})
		setGPRStatus(t, id, func(s *v1alpha1.GPUProvisionRequestStatus) {
			s.ProvisioningStatus, s.InternalState = v1alpha1.GPRProvisioned, v1alpha1.StateProvisioned
			s.Nodes, s.NumGpusAllocated = []string{node}, 1
			s.StartTimestamp = &metav1.Time{Time: now.Add(-30 * time.Minute)}
		})
		return id
	}
	idleGPR, busyGPR := gpr("idle", idle), gpr("busy", busy)

	want := map[string]map[string]any{
		idle:   {"gpuUtilization": 0.0, "timeSinceNoUtilization": "1h0m0s", "idleSignal": true},
		busy:   {"gpuUtilization": 87.0, "timeSinceNoUtilization": "", "idleSignal": true},
		silent: {"gpuUtilization": nil, "timeSinceNoUtilization": "", "idleSignal": false},
	}
	waitFor(t, "inventory shows the idle views", func() bool {
		r := ts.do(http.MethodGet, "/api/v1/inventory/list", ts.owner, nil)
		ok := 0
		for _, it := range r.data()["items"].([]any) {
			n := it.(map[string]any)
			w, mine := want[n["gpuNodeName"].(string)]
			if !mine {
				continue
			}
			match := true
			for k, v := range w {
				match = match && n[k] == v
			}
			if match {
				ok++
			}
		}
		return ok == len(want)
	})

	status := func(id string) map[string]any {
		return ts.do(http.MethodGet, "/api/v1/gpr?gprId="+id, ts.owner, nil).data()["status"].(map[string]any)
	}
	var s map[string]any
	waitFor(t, "idle GPR shows its idleness", func() bool {
		s = status(idleGPR)
		return s["timeSinceNoUtilization"] == "0h30m0s"
	})
	if s["gpuUtilization"] != 0.0 || s["idleReleaseAt"] != now.Add(30*time.Minute).Format(time.RFC3339) {
		t.Errorf("idle GPR status %v, want utilisation 0, idle release at %s", s, now.Add(30*time.Minute).Format(time.RFC3339))
	}
	s = status(busyGPR)
	if s["gpuUtilization"] != 87.0 || s["timeSinceNoUtilization"] != "" || s["idleReleaseAt"] != "" {
		t.Errorf("busy GPR status %v, want utilisation 87, not idle", s)
	}
	r := ts.do(http.MethodGet, "/api/v1/gpr/list?sliceName="+ws, ts.owner, nil)
	for _, it := range r.data()["items"].([]any) {
		g := it.(map[string]any)
		if g["gprId"] == idleGPR && g["status"].(map[string]any)["timeSinceNoUtilization"] != "0h30m0s" {
			t.Errorf("GPR list: idle GPR %v", g["status"])
		}
	}

	// As EGS: enforceIdleTimeOut defaults to true when a timeout is given;
	// an explicit false is kept.
	for _, tc := range []struct {
		enforce *bool
		timeout string
		want    bool
	}{{nil, "0d0h30m", true}, {new(bool), "0d0h30m", false}, {nil, "", false}} {
		body := map[string]any{"gprName": "d", "sliceName": ws, "clusterName": "worker-1", "numberOfGPUs": 1, "exitDuration": "0d1h0m"}
		if tc.timeout != "" {
			body["idleTimeOutDuration"] = tc.timeout
		}
		if tc.enforce != nil {
			body["enforceIdleTimeOut"] = *tc.enforce
		}
		r := ts.do(http.MethodPost, "/api/v1/gpr", ts.owner, body)
		if r.code != http.StatusOK {
			t.Fatalf("create GPR %v: %d %s", body, r.code, r.raw)
		}
		var g v1alpha1.GPUProvisionRequest
		if err := env.Client.Get(ctx, keyOf(r.data()["gprId"].(string)), &g); err != nil {
			t.Fatal(err)
		}
		if g.Spec.EnforceIdleTimeOut != tc.want {
			t.Errorf("create %v: stored enforceIdleTimeOut %v, want %v", body, g.Spec.EnforceIdleTimeOut, tc.want)
		}
	}
}
