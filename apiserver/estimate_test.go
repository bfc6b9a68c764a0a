package apiserver

import (
	"net/http"
	"testing"
	"time"

	"github.com/gpuspace/gpuspace/internal/dev/testenv"
)

// TestEstimatesFreshOnRead: a queued GPR read once, right after it was
// created, and right after the queue ahead of it moved, carries the
// current plan's estimate — never a missing or stale stored one. Nothing
// here polls for the estimate itself.
func TestEstimatesFreshOnRead(t *testing.T) {
	startControllers(t)
	ts := newTestServer(t)
	sfx := suffix()
	cluster, node := "fresh-"+sfx, "fresh-t4-"+sfx
	addNode(t, testenv.GPUNode{Name: node, Cluster: cluster, InstanceType: "n1-standard-8", Product: "Tesla-T4", MemoryMiB: 15360, GPUs: 1})
	wsA, wsB := "fresh-a-"+sfx, "fresh-b-"+sfx
	for _, ws := range []string{wsA, wsB} {
		r := ts.do(http.MethodPost, "/api/v1/slice-workspace", ts.owner, map[string]any{
			"workspaceName": ws, "clusters": []string{cluster}, "namespaces": []string{ws + "-ns"}, "username": "fresh"})
		if r.code != http.StatusOK {
			t.Fatalf("create workspace %s: %d %s", ws, r.code, r.raw)
		}
		t.Cleanup(func() {
			ts.do(http.MethodDelete, "/api/v1/slice-workspace", ts.owner, map[string]string{"workspaceName": ws})
		})
	}
	create := func(ws, name string, prio int, exit string) string {
		t.Helper()
		r := ts.do(http.MethodPost, "/api/v1/gpr", ts.owner, map[string]any{"gprName": name, "sliceName": ws, "clusterName": cluster,
			"numberOfGPUs": 1, "gpuShape": "T4", "exitDuration": exit, "priority": prio})
		if r.code != http.StatusOK {
			t.Fatalf("create GPR %s: %d %s", name, r.code, r.raw)
		}
		return r.data()["gprId"].(string)
	}
	get := func(id string) map[string]any {
		t.Helper()
		return ts.do(http.MethodGet, "/api/v1/gpr?gprId="+id, ts.owner, nil).data()
	}
	startOf := func(id string) time.Time {
		t.Helper()
		g := get(id)
		st, err := time.Parse(time.RFC3339, g["status"].(map[string]any)["startTimestamp"].(string))
		if err != nil {
			t.Fatalf("GPR %s start: %v (%v)", id, err, g)
		}
		return st
	}
	// want checks a queued GPR's estimate against the expected start,
	// within the 2 s the plan's whole-second times and the clock allow.
	want := func(what, id string, start time.Time) {
		t.Helper()
		g := get(id)
		est, err := time.Parse(time.RFC3339, g["estimatedStartTime"].(string))
		if err != nil || g["estimatedWaitTime"] == "" {
			t.Fatalf("%s: GPR %s has estimatedStartTime %q estimatedWaitTime %q, want both", what, id, g["estimatedStartTime"], g["estimatedWaitTime"])
		}
		if d := est.Sub(start); d < -2*time.Second || d > 2*time.Second {
			t.Errorf("%s: GPR %s estimated start %s, want %s", what, id, est, start)
		}
		wait, err := time.ParseDuration(g["estimatedWaitTime"].(string))
		if d := time.Until(start) - wait; err != nil || d < -3*time.Second || d > 3*time.Second {
			t.Errorf("%s: GPR %s estimated wait %v, want about %s", what, id, g["estimatedWaitTime"], time.Until(start).Round(time.Second))
		}
	}

	a1 := create(wsA, "a1", 101, "0d1h0m")
	waitFor(t, "a1 provisioned", func() bool { return get(a1)["status"].(map[string]any)["provisioningStatus"] == "Provisioned" })
	a1End := startOf(a1).Add(time.Hour)

	a2 := create(wsA, "a2", 101, "0d0h30m")
	want("right after create", a2, a1End)

	// b, of priority 300, goes ahead of a2 in the queue: a2's estimate
	// moves by b's two hours at once.
	b := create(wsB, "b", 300, "0d2h0m")
	want("b right after create", b, a1End)
	want("a2 right after b jumped the queue", a2, a1End.Add(2*time.Hour))

	// a1 is released early: b starts, and a2 now waits for b's end.
	if r := ts.do(http.MethodPut, "/api/v1/gpr", ts.owner, map[string]any{"gprId": a1, "earlyRelease": true}); r.code != http.StatusOK {
		t.Fatalf("early release: %d %s", r.code, r.raw)
	}
	waitFor(t, "b provisioned", func() bool { return get(b)["status"].(map[string]any)["provisioningStatus"] == "Provisioned" })
	want("a2 right after b started", a2, startOf(b).Add(2*time.Hour))

	for _, it := range ts.do(http.MethodGet, "/api/v1/gpr/list?sliceName="+wsA, ts.owner, nil).data()["items"].([]any) {
		g := it.(map[string]any)
		if g["gprId"] == a2 && (g["estimatedStartTime"] == "" || g["estimatedWaitTime"] == "") {
			t.Errorf("list: a2 without an estimate: %v", g)
		}
	}
}
