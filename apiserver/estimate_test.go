package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"github.com/gpuspace/gpuspace/internal/dev/testenv"
)

// TestEstimatesFreshOnRead: a queued GPR read once, right after it was
// created, and right after the queue ahead of it moved, carries the
// current plan's estimate — never a missing or stale stored one. Nothing
// here polls for the estimate itself.
func TestEstimatesFreshOnRead(t *testing.T) {
	ts, wsA, wsB, create, get := onePool(t, "fresh")
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

// TestLikelyAndLatestOnEveryRead: workspace A's last two GPRs were
// released seconds after they started, and A's third now holds the only
// node for an hour; B's GPR waits behind it. REST (get and list) gives B's
// GPR both starts, the likely one well before the latest, which is A's
// expiry; GET /plan draws A's likely end before its requested end; and
// kubectl's columns (the CRD's printer columns, as the apiserver serves a
// Table) show both.
func TestLikelyAndLatestOnEveryRead(t *testing.T) {
	ts, wsA, wsB, createAt, get := onePool(t, "two")
	create := func(ws, name string) string { t.Helper(); return createAt(ws, name, 101, "0d1h0m") }
	phase := func(id string) any { return get(id)["status"].(map[string]any)["provisioningStatus"] }
	for _, name := range []string{"done1", "done2"} {
		id := create(wsA, name)
		waitFor(t, name+" provisioned", func() bool { return phase(id) == "Provisioned" })
		if r := ts.do(http.MethodPut, "/api/v1/gpr", ts.owner, map[string]any{"gprId": id, "earlyRelease": true}); r.code != http.StatusOK {
			t.Fatalf("early release: %d %s", r.code, r.raw)
		}
		waitFor(t, name+" complete", func() bool { return phase(id) == "Complete" })
	}
	running := create(wsA, "running")
	waitFor(t, "running provisioned", func() bool { return phase(running) == "Provisioned" })
	started, err := time.Parse(time.RFC3339, get(running)["status"].(map[string]any)["startTimestamp"].(string))
	if err != nil {
		t.Fatal(err)
	}
	end := started.Add(time.Hour)
	stream := openEvents(t, ts.http.URL, ts.owner, "")
	stream.next(10*time.Second, func(e sseEvent) bool { return e.event == "ready" })
	next := create(wsB, "next")

	// both checks one GPR's answer: the latest start is A's expiry, the
	// likely one at least 10 minutes before it (A releases seconds in,
	// by its history; it is past that, so halfway to its end).
	both := func(what string, g map[string]any) {
		t.Helper()
		likely, err1 := time.Parse(time.RFC3339, fmt.Sprint(g["estimatedStartTime"]))
		latest, err2 := time.Parse(time.RFC3339, fmt.Sprint(g["latestStartTime"]))
		if err1 != nil || err2 != nil || g["estimatedWaitTime"] == "" || g["latestWaitTime"] == "" {
			t.Fatalf("%s: likely %v (wait %v), latest %v (wait %v): want all four", what,
				g["estimatedStartTime"], g["estimatedWaitTime"], g["latestStartTime"], g["latestWaitTime"])
		}
		if d := latest.Sub(end); d < -2*time.Second || d > 2*time.Second {
			t.Errorf("%s: latest start %s, want the running GPR's expiry %s", what, latest, end)
		}
		if !likely.Before(latest.Add(-10 * time.Minute)) {
			t.Errorf("%s: likely start %s, want well before the latest %s (the workspace releases early)", what, likely, latest)
		}
	}
	both("GET /gpr", get(next))
	found := false
	for _, it := range ts.do(http.MethodGet, "/api/v1/gpr/list?sliceName="+wsB, ts.owner, nil).data()["items"].([]any) {
		if g := it.(map[string]any); g["gprId"] == next {
			found = true
			both("GET /gpr/list", g)
		}
	}
	if !found {
		t.Errorf("GET /gpr/list of %s has no %s", wsB, next)
	}

	// The event stream: the GPR's place on the timeline with both starts
	// (created, or the estimate that follows it).
	e := stream.next(time.Minute, func(e sseEvent) bool {
		p, _ := e.data["plan"].(map[string]any)
		return e.event == "gpr" && e.data["gprId"] == next && p["latestStart"] != nil && p["latestStart"] != ""
	})
	p := e.data["plan"].(map[string]any)
	both("event stream", map[string]any{"estimatedStartTime": p["start"], "latestStartTime": p["latestStart"], "estimatedWaitTime": "-", "latestWaitTime": "-"})
	// B has no history: it likely holds its nodes for all it asks.
	if p["likelyEnd"] != p["end"] {
		t.Errorf("event stream: %s likely ends %v, want its requested end %v (its workspace has no history)", next, p["likelyEnd"], p["end"])
	}

	// The timeline: the running GPR likely ends before its requested end.
	for _, it := range ts.do(http.MethodGet, "/api/v1/plan", ts.owner, nil).data()["gprs"].([]any) {
		g := it.(map[string]any)
		if g["gprId"] != running {
			continue
		}
		likelyEnd, err := time.Parse(time.RFC3339, fmt.Sprint(g["likelyEnd"]))
		if err != nil || !likelyEnd.Before(end.Add(-10*time.Minute)) || likelyEnd.Before(started) {
			t.Errorf("GET /plan: running GPR's likelyEnd %v, want between its start %s and well before its end %s", g["likelyEnd"], started, end)
		}
	}

	// kubectl get gpr: the Table the apiserver serves from the CRD's
	// printer columns carries both starts once the controller stored them.
	waitFor(t, "kubectl columns with both starts", func() bool {
		cols, row := gprTableRow(t, next)
		return row[cols["Likely Start"]] != "" && row[cols["Latest Start"]] != "" && row[cols["Likely Start"]] != row[cols["Latest Start"]]
	})

	// A releases early: B starts now, far before its likely start, and
	// B's accuracy says so (GPRs that start at once were never given an
	// estimate and are not counted).
	if r := ts.do(http.MethodPut, "/api/v1/gpr", ts.owner, map[string]any{"gprId": running, "earlyRelease": true}); r.code != http.StatusOK {
		t.Fatalf("early release: %d %s", r.code, r.raw)
	}
	waitFor(t, "next provisioned", func() bool { return phase(next) == "Provisioned" })
	acc := ts.do(http.MethodGet, "/api/v1/gpr/estimate-accuracy?sliceName="+wsB, ts.owner, nil).data()["items"].([]any)
	if len(acc) != 1 {
		t.Fatalf("estimate accuracy of %s: %v, want one workspace", wsB, acc)
	}
	a := acc[0].(map[string]any)
	bias, err := time.ParseDuration(fmt.Sprint(a["bias"]))
	if a["started"] != 1.0 || a["within10Minutes"] != 0.0 || err != nil || bias > -10*time.Minute {
		t.Errorf("estimate accuracy of %s: %v, want 1 started, not within 10 minutes, a bias of more than 10 minutes early", wsB, a)
	}
}

// gprTableRow is what `kubectl get gpr name` prints: the column indexes by
// name and the row's cells as strings.
func gprTableRow(t *testing.T, name string) (map[string]int, []string) {
	t.Helper()
	rc, err := rest.RESTClientFor(tableConfig())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rc.Get().AbsPath("/apis/gpuspace.io/v1alpha1/gpuprovisionrequests", name).
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(context.Background())
	if err != nil {
		t.Fatalf("kubectl get gpr %s: %v", name, err)
	}
	var table metav1.Table
	if err := json.Unmarshal(raw, &table); err != nil || len(table.Rows) != 1 {
		t.Fatalf("table of %s: %v (%s)", name, err, raw)
	}
	cols := map[string]int{}
	for i, c := range table.ColumnDefinitions {
		cols[c.Name] = i
	}
	row := make([]string, len(table.Rows[0].Cells))
	for i, c := range table.Rows[0].Cells {
		if c != nil {
			row[i] = fmt.Sprint(c)
		}
	}
	return cols, row
}

// tableConfig is the admin config for a raw client of Tables.
func tableConfig() *rest.Config {
	c := rest.CopyConfig(env.Config)
	c.GroupVersion = &schema.GroupVersion{Group: "gpuspace.io", Version: "v1alpha1"}
	c.APIPath = "/apis"
	c.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	return c
}

// onePool starts the controllers and an API server over a cluster of one
// T4 node with two workspaces on it, and returns them with a creator of
// one-GPU T4 GPRs and a reader of GPRs (GET /gpr).
func onePool(t *testing.T, prefix string) (ts *testServer, wsA, wsB string,
	create func(ws, name string, prio int, exit string) string, get func(id string) map[string]any) {
	t.Helper()
	startControllers(t)
	ts = newTestServer(t)
	sfx := suffix()
	cluster := prefix + "-" + sfx
	addNode(t, testenv.GPUNode{Name: prefix + "-t4-" + sfx, Cluster: cluster, InstanceType: "n1-standard-8", Product: "Tesla-T4", MemoryMiB: 15360, GPUs: 1})
	wsA, wsB = prefix+"-a-"+sfx, prefix+"-b-"+sfx
	for _, ws := range []string{wsA, wsB} {
		r := ts.do(http.MethodPost, "/api/v1/slice-workspace", ts.owner, map[string]any{
			"workspaceName": ws, "clusters": []string{cluster}, "namespaces": []string{ws + "-ns"}, "username": prefix})
		if r.code != http.StatusOK {
			t.Fatalf("create workspace %s: %d %s", ws, r.code, r.raw)
		}
		t.Cleanup(func() {
			ts.do(http.MethodDelete, "/api/v1/slice-workspace", ts.owner, map[string]string{"workspaceName": ws})
		})
	}
	create = func(ws, name string, prio int, exit string) string {
		t.Helper()
		r := ts.do(http.MethodPost, "/api/v1/gpr", ts.owner, map[string]any{"gprName": name, "sliceName": ws, "clusterName": cluster,
			"numberOfGPUs": 1, "gpuShape": "T4", "exitDuration": exit, "priority": prio})
		if r.code != http.StatusOK {
			t.Fatalf("create GPR %s: %d %s", name, r.code, r.raw)
		}
		return r.data()["gprId"].(string)
	}
	get = func(id string) map[string]any {
		t.Helper()
		return ts.do(http.MethodGet, "/api/v1/gpr?gprId="+id, ts.owner, nil).data()
	}
	return ts, wsA, wsB, create, get
}
