package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// gprCR is what the suite reads of a GPR's object (status.reason is not in
// the EGS-shaped API answer).
type gprCR struct {
	Status struct {
		ProvisioningStatus  string       `json:"provisioningStatus"`
		Reason              string       `json:"reason"`
		StartTimestamp      *metav1.Time `json:"startTimestamp"`
		CompletionTimestamp *metav1.Time `json:"completionTimestamp"`
	} `json:"status"`
}

func (s *suite) gprObject(ctx context.Context, t *testing.T, id string) gprCR {
	t.Helper()
	raw, err := s.kube.CoreV1().RESTClient().Get().AbsPath("/apis/gpuspace.io/v1alpha1/gpuprovisionrequests", id).DoRaw(ctx)
	if err != nil {
		t.Fatalf("get GPR object %s: %v", id, err)
	}
	var g gprCR
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// TestIdleRelease: a GPR with a one-minute idle timeout and no pods is
// Complete with reason Idle a minute after it started (and a few seconds
// at most); one whose workspace runs a GPU Deployment on its node is not.
func TestIdleRelease(t *testing.T) {
	s := newSuite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	var inv struct {
		Items []inventoryNode `json:"items"`
	}
	s.must(ctx, t, s.owner, http.MethodGet, "/api/v1/inventory/list", nil, &inv)
	node := pickShape(t, inv.Items)

	type run struct{ ws, ns, id string }
	start := func(name string) run {
		r := run{ws: unique("e2e-" + name), ns: unique("e2e-" + name + "-ns")}
		s.must(ctx, t, s.owner, http.MethodPost, "/api/v1/slice-workspace", map[string]any{
			"workspaceName": r.ws, "clusters": []string{node.ClusterName}, "namespaces": []string{r.ns},
			"username": "E2E User", "email": "e2e@example.com",
		}, nil)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s.call(ctx, t, s.owner, http.MethodPut, "/api/v1/gpr", map[string]any{"gprId": r.id, "earlyRelease": true})
			s.call(ctx, t, s.owner, http.MethodDelete, "/api/v1/slice-workspace", map[string]string{"workspaceName": r.ws})
		})
		var created struct {
			GPRID string `json:"gprId"`
		}
		s.must(ctx, t, s.owner, http.MethodPost, "/api/v1/gpr", map[string]any{
			"gprName": name, "sliceName": r.ws, "clusterName": node.ClusterName,
			"numberOfGPUs": 1, "numberOfGPUNodes": 1, "instanceType": node.InstanceType,
			"gpuShape": node.GPUShape, "memoryPerGPU": node.Memory, "exitDuration": "0d1h0m", "priority": 201,
			"idleTimeOutDuration": "0d0h1m", "enforceIdleTimeOut": true,
		}, &created)
		r.id = created.GPRID
		return r
	}
	idle, busy := start("idle"), start("busy")
	idleNodes := s.waitProvisioned(ctx, t, idle.id)
	busyNodes := s.waitProvisioned(ctx, t, busy.id)
	t.Logf("idle GPR %s on %v, busy GPR %s on %v", idle.id, idleNodes, busy.id, busyNodes)

	// The busy workspace runs a GPU Deployment on its node: its GPUs are
	// in use, so it is never idle for a minute.
	eventually(t, time.Minute, "busy workspace namespace", func() (bool, error) {
		_, err := s.kube.CoreV1().Namespaces().Get(ctx, busy.ns, metav1.GetOptions{})
		return err == nil, nil
	})
	if _, err := s.kube.AppsV1().Deployments(busy.ns).Create(ctx, gpuDeployment(busy.ns, 1), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create deployment: %v", err)
	}
	s.waitPodsRunningOn(ctx, t, busy.ns, busyNodes, 1)

	// The idle GPR: Complete with reason Idle, a minute after its start.
	var done gprCR
	eventually(t, 2*time.Minute, "idle GPR Complete", func() (bool, error) {
		done = s.gprObject(ctx, t, idle.id)
		return done.Status.ProvisioningStatus == "Complete", nil
	})
	observed := time.Now()
	if done.Status.Reason != "Idle" {
		t.Errorf("idle GPR completed with reason %q, want Idle", done.Status.Reason)
	}
	begun := done.Status.StartTimestamp.Time
	held := done.Status.CompletionTimestamp.Sub(begun)
	seen := observed.Sub(begun)
	t.Logf("idle GPR: started %s, completed %s (held %s), Complete seen %s after its start",
		begun.Format(time.RFC3339), done.Status.CompletionTimestamp.Format(time.RFC3339), held, seen.Round(100*time.Millisecond))
	if held < time.Minute || held > time.Minute+5*time.Second || seen > time.Minute+6*time.Second {
		t.Errorf("idle GPR held its node %s (Complete seen after %s), want a minute and a few seconds at most", held, seen)
	}

	// The busy GPR is still provisioned well past a minute.
	b := s.gprObject(ctx, t, busy.id)
	if wait := time.Until(b.Status.StartTimestamp.Add(75 * time.Second)); wait > 0 {
		time.Sleep(wait)
	}
	if b = s.gprObject(ctx, t, busy.id); b.Status.ProvisioningStatus != "Provisioned" {
		t.Errorf("GPR with a running GPU Deployment is %s (%s) %s after its start, want Provisioned",
			b.Status.ProvisioningStatus, b.Status.Reason, time.Since(b.Status.StartTimestamp.Time).Round(time.Second))
	}
}
