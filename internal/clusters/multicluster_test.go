package clusters_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crzap "sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/apiserver"
	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/controller"
	"github.com/gpuspace/gpuspace/controller/workspace"
	"github.com/gpuspace/gpuspace/internal/clusters"
	"github.com/gpuspace/gpuspace/internal/clusters/provision"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/util/index"

	"github.com/gpuspace/gpuspace/internal/dev/testenv"
)

// mcWorld is a hub (the package's control plane) with two worker control
// planes registered on it, the controllers on a fake clock, and the REST
// API, as `gpuspace serve` wires them.
type mcWorld struct {
	t       *testing.T
	ctx     context.Context
	clock   *clocktesting.FakePassiveClock
	workers map[string]*testenv.Env
	url     string
	token   string
	// stop stops the controllers and the API startControllers started.
	stop func()
}

// Names of the test's clusters (unique in the package: the hub keeps the
// Cluster objects of other tests).
const (
	edge2 = "edge-2"
	edge3 = "edge-3"
)

// startMCWorld starts the two workers with their nodes, registers them
// with the least-privilege credential, and runs the controllers and the
// API until the test ends.
func startMCWorld(t *testing.T, ctx context.Context) *mcWorld {
	t.Helper()
	ensureNamespace(t, ctx, hub.Client, ns)
	if os.Getenv("GPUSPACE_TEST_LOG") != "" {
		ctrl.SetLogger(crzap.New(crzap.UseDevMode(true)))
	}
	w := &mcWorld{t: t, ctx: ctx, clock: clocktesting.NewFakePassiveClock(time.Now().Truncate(time.Second)), workers: map[string]*testenv.Env{}}
	t0 := time.Now()
	for _, name := range []string{edge2, edge3} {
		env, err := testenv.Start(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Stop() })
		w.workers[name] = env
	}
	t.Logf("two worker control planes up in %s", time.Since(t0).Round(time.Millisecond))
	if _, err := hub.AddGPUNode(ctx, testenv.GPUNode{Name: "mc-hub-t4-0", Product: "Tesla-T4", MemoryMiB: 15360, GPUs: 1, InstanceType: "n1-standard-8"}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := w.workers[edge2].AddGPUNode(ctx, testenv.GPUNode{Name: fmt.Sprintf("e2-a100-%d", i), Cluster: edge2,
			Product: "NVIDIA-A100-SXM4-40GB", MemoryMiB: 40960, GPUs: 8, InstanceType: "a2-highgpu-8g"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.workers[edge3].AddGPUNode(ctx, testenv.GPUNode{Name: "e3-l4-0", Cluster: edge3,
		Product: "NVIDIA-L4", MemoryMiB: 23034, GPUs: 4, InstanceType: "g2-standard-48"}); err != nil {
		t.Fatal(err)
	}
	for name, env := range w.workers {
		kc, err := provision.Credential(ctx, env.Config, 3600)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := provision.Register(ctx, hub.Client, provision.RegisterOptions{Name: name, Kubeconfig: kc, Namespace: ns}); err != nil {
			t.Fatalf("register %s: %v", name, err)
		}
		t.Cleanup(func() { _ = provision.Unregister(context.Background(), hub.Client, ns, name, true) })
		// The workspace-user ClusterRole, as manifests/rbac installs it
		// on a worker.
		if err := workspace.EnsureClusterRole(ctx, env.Client, env.Client); err != nil {
			t.Fatal(err)
		}
	}

	w.stop = w.startControllers()
	key, _, err := auth.CreateKey(ctx, hub.Client, ns, auth.KeyRequest{Name: "mc-partition", Role: auth.RoleOwner}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if w.token, err = loginURL(ctx, w.url, key); err != nil {
		t.Fatal(err)
	}
	return w
}

// startControllers runs the controllers and the API over a registry of
// their own, as server.Run wires them, with the GPR controller on the
// fake clock, until the returned function is called or the test ends.
func (w *mcWorld) startControllers() (stop func()) {
	w.t.Helper()
	h := startHub(w.t, w.ctx, controller.Options{Clock: w.clock}, clusters.Options{Heartbeat: 300 * time.Millisecond})
	w.url = h.url
	eventually(w.t, w.ctx, time.Minute, "API ready", func() (bool, error) { return h.api.Ready(), nil })
	return h.stop
}

// hubSystem is gpuspace serve's control plane over the package's hub: the
// controllers and the API in one manager, over a cluster registry, the
// API on a loopback HTTP server.
type hubSystem struct {
	reg  *clusters.Registry
	api  *apiserver.Server
	mgr  manager.Manager
	url  string
	stop func()
}

// startHub starts a hubSystem (o and ro as server.Run fills them in, with
// what the caller set) until stop is called or the test ends.
func startHub(tb testing.TB, ctx context.Context, o controller.Options, ro clusters.Options) *hubSystem {
	tb.Helper()
	cfg := rest.CopyConfig(hub.Config)
	cfg.UserAgent = "gpuspace-multicluster-test"
	cfg.QPS, cfg.Burst = 500, 1000
	mgr, err := controller.NewManager(cfg, controller.ManagerOptions{Cache: apiserver.CacheOptions(ns)})
	if err != nil {
		tb.Fatal(err)
	}
	ro.Namespace = ns
	reg := clusters.New(mgr.GetClient(), mgr.GetAPIReader(), mgr.GetScheme(), mgr.GetEventRecorder(clusters.ControllerName), ro)
	o.SkipNameValidation, o.Clusters = true, reg
	if err := controller.Setup(mgr, o); err != nil {
		tb.Fatal(err)
	}
	api, err := apiserver.New(apiserver.Config{RESTConfig: cfg, Namespace: ns}, apiserver.WithCache(mgr.GetCache()), apiserver.WithClusters(reg))
	if err != nil {
		tb.Fatal(err)
	}
	if err := mgr.Add(api); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	srv := httptest.NewServer(api.Handler())
	h := &hubSystem{reg: reg, api: api, mgr: mgr, url: srv.URL}
	stopped := false
	h.stop = func() {
		if stopped {
			return
		}
		stopped = true
		srv.Close()
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("controllers: %v", err)
		}
	}
	tb.Cleanup(h.stop)
	return h
}

// gpr creates a GPR for nodes nodes of shape with gpus GPUs each, for an
// hour.
func (w *mcWorld) gpr(name, ws, cluster, shape string, gpus, nodes int32, mod ...func(*v1alpha1.GPUProvisionRequestSpec)) string {
	w.t.Helper()
	g := &v1alpha1.GPUProvisionRequest{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.GPUProvisionRequestSpec{
		GPRName: name, Workspace: ws, ClusterName: cluster, NumberOfGPUs: gpus, NumberOfGPUNodes: nodes,
		GPUShape: shape, ExitDuration: "0d1h0m", Priority: 101,
	}}
	for _, m := range mod {
		m(&g.Spec)
	}
	if err := hub.Client.Create(w.ctx, g); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = hub.Client.Delete(context.Background(), g) })
	return name
}

func (w *mcWorld) get(name string) *v1alpha1.GPUProvisionRequest {
	w.t.Helper()
	var g v1alpha1.GPUProvisionRequest
	if err := hub.Client.Get(w.ctx, client.ObjectKey{Name: name}, &g); err != nil {
		w.t.Fatal(err)
	}
	return &g
}

// waitGPR waits until GPR name satisfies cond, naming what in a failure.
func (w *mcWorld) waitGPR(name, what string, cond func(*v1alpha1.GPUProvisionRequest) bool) *v1alpha1.GPUProvisionRequest {
	w.t.Helper()
	var g *v1alpha1.GPUProvisionRequest
	eventually(w.t, w.ctx, 30*time.Second, name+" "+what, func() (bool, error) {
		g = w.get(name)
		return cond(g), nil
	})
	return g
}

func provisioned(g *v1alpha1.GPUProvisionRequest) bool {
	return domain.IsProvisioned(g) && len(g.Status.Nodes) > 0
}

func completed(reason v1alpha1.GPRReason) func(*v1alpha1.GPUProvisionRequest) bool {
	return func(g *v1alpha1.GPUProvisionRequest) bool {
		return domain.Phase(g) == v1alpha1.GPRComplete && g.Status.Reason == reason
	}
}

// readyIs waits for cluster name's Ready condition to have status and,
// unless empty, reason.
func (w *mcWorld) readyIs(name string, status metav1.ConditionStatus, reason string) *metav1.Condition {
	w.t.Helper()
	var cond *metav1.Condition
	eventually(w.t, w.ctx, 30*time.Second, fmt.Sprintf("%s Ready=%s %s", name, status, reason), func() (bool, error) {
		var err error
		cond, _, err = clusterReady(w.ctx, name)
		return err == nil && cond != nil && cond.Status == status && (reason == "" || cond.Reason == reason), nil
	})
	return cond
}

// bindings checks that every node of every cluster of the test carries
// exactly the binding the provisioned GPRs' status gives it: nothing
// double-bound, nothing left bound, nothing lost.
func (w *mcWorld) bindings(gprs ...string) {
	w.t.Helper()
	holder := map[string]*v1alpha1.GPUProvisionRequest{}
	for _, name := range gprs {
		g := w.get(name)
		if !domain.IsProvisioned(g) {
			continue
		}
		for _, n := range g.Status.Nodes {
			if h := holder[n]; h != nil {
				w.t.Fatalf("node %s is in the status of %s and %s", n, h.Name, g.Name)
			}
			holder[n] = g
		}
	}
	check := func(c client.Client, names ...string) error {
		for _, name := range names {
			var n corev1.Node
			if err := c.Get(w.ctx, client.ObjectKey{Name: name}, &n); err != nil {
				return err
			}
			ws, id := "", ""
			if h := holder[name]; h != nil {
				ws, id = h.Spec.Workspace, h.Name
			}
			tainted := slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool {
				return t.Key == v1alpha1.TaintWorkspace && t.Value == ws
			})
			if n.Labels[v1alpha1.LabelWorkspace] != ws || n.Labels[v1alpha1.LabelGPR] != id || tainted != (ws != "") {
				return fmt.Errorf("node %s: workspace=%q gpr=%q tainted=%v, want %q %q", name,
					n.Labels[v1alpha1.LabelWorkspace], n.Labels[v1alpha1.LabelGPR], tainted, ws, id)
			}
		}
		return nil
	}
	eventually(w.t, w.ctx, 30*time.Second, "node bindings follow GPR status", func() (bool, error) {
		return check(hub.Client, "mc-hub-t4-0") == nil &&
			check(w.workers[edge2].Client, "e2-a100-0", "e2-a100-1") == nil &&
			check(w.workers[edge3].Client, "e3-l4-0") == nil, nil
	})
}

// nodesHealthy is GPR name's NodesHealthy condition.
func (w *mcWorld) nodesHealthy(name string) *metav1.Condition {
	return meta.FindStatusCondition(w.get(name).Status.Conditions, v1alpha1.GPRNodesHealthy)
}

// unhealthyFor waits for GPR name's NodesHealthy to be False with reason
// ClusterUnreachable, naming cluster and its Ready reason.
func (w *mcWorld) unhealthyFor(name, cluster, reason string) {
	w.t.Helper()
	var c *metav1.Condition
	err := wait.PollUntilContextTimeout(w.ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		c = w.nodesHealthy(name)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == "ClusterUnreachable" &&
			strings.Contains(c.Message, cluster) && strings.Contains(c.Message, reason), nil
	})
	if err != nil {
		w.t.Fatalf("NodesHealthy of %s: %+v, want False, ClusterUnreachable, naming %s and %s", name, c, cluster, reason)
	}
}

// TestMultiClusterPartition is the multi-cluster scenario on three real
// control planes (the hub, edge-2, edge-3): both workers registered with
// the least-privilege credential become Ready; the inventory shows all
// three clusters; a workspace on the hub's cluster and edge-2 gets its
// namespace there and nowhere else, and its edge-2 kubeconfig works in
// that namespace only; a GPR for edge-2 binds a node there and nowhere
// else. Then edge-2's kube-apiserver stops: edge-2 is Ready=False, the
// GPR keeps its node though its expiry falls due (NodesHealthy says why),
// a new GPR for edge-2 is not placed, while edge-3 goes on as usual. When
// edge-2 is back, the expiry that fell due is applied and the queued GPR
// placed, bindings following status exactly. A revoked credential does the
// same with reason Unauthorized. A restart of the hub during the
// partition changes none of it. Unregistering edge-2 with a GPR queued
// for it fails that GPR with the reason.
func TestMultiClusterPartition(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	w := startMCWorld(t, ctx)
	e2, e3 := w.workers[edge2], w.workers[edge3]

	// Register → Ready, with the capacity of each.
	for name, shape := range map[string]string{edge2: "A100", edge3: "L4"} {
		w.readyIs(name, metav1.ConditionTrue, v1alpha1.ClusterReasonReachable)
		eventually(t, ctx, 30*time.Second, name+" capacity", func() (bool, error) {
			_, c, err := clusterReady(ctx, name)
			return err == nil && len(c.Status.Capacity) == 1 && c.Status.Capacity[0].Shape == shape && c.Status.Version != "", nil
		})
	}

	// The inventory spans the three clusters.
	eventually(t, ctx, 10*time.Second, "inventory of the three clusters", func() (bool, error) {
		var inv struct {
			Data struct {
				Items []struct{ GPUNodeName, ClusterName, GPUShape string }
			}
		}
		if err := getJSON(ctx, w.url+"/api/v1/inventory/list", w.token, &inv); err != nil {
			return false, err
		}
		got := map[string]string{}
		for _, n := range inv.Data.Items {
			got[n.GPUNodeName] = n.ClusterName + "/" + n.GPUShape
		}
		return got["mc-hub-t4-0"] == "worker-1/T4" && got["e2-a100-0"] == "edge-2/A100" && got["e2-a100-1"] == "edge-2/A100" &&
			got["e3-l4-0"] == "edge-3/L4", nil
	})

	// Workspaces on the hub's cluster and edge-2 (a, b) and on edge-3 (c).
	for _, ws := range []struct {
		name     string
		clusters []string
	}{{"mcp-a", []string{"worker-1", edge2}}, {"mcp-b", []string{"worker-1", edge2}}, {"mcp-c", []string{edge3}}} {
		obj := &v1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: ws.name}, Spec: v1alpha1.WorkspaceSpec{
			Username: ws.name, Clusters: ws.clusters, Namespaces: []v1alpha1.WorkspaceNamespace{{Namespace: ws.name}},
		}}
		if err := hub.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = hub.Client.Delete(context.Background(), obj) })
	}
	eventually(t, ctx, 30*time.Second, "workspace namespaces in their clusters", func() (bool, error) {
		for _, c := range []struct {
			env *testenv.Env
			ns  string
		}{{e2, "mcp-a"}, {e2, "mcp-b"}, {e3, "mcp-c"}} {
			var n corev1.Namespace
			if err := c.env.Client.Get(ctx, client.ObjectKey{Name: c.ns}, &n); err != nil {
				return false, client.IgnoreNotFound(err)
			}
		}
		return true, nil
	})
	if err := e3.Client.Get(ctx, client.ObjectKey{Name: "mcp-a"}, &corev1.Namespace{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace of workspace mcp-a in edge-3, which it is not on: %v", err)
	}

	// mcp-a's kubeconfig for edge-2: edge-2's server, works in mcp-a's
	// namespace there, Forbidden in default and in mcp-b's namespace.
	checkWorkspaceKubeconfig(t, ctx, w.url, w.token, "mcp-a", "edge-2", e2.Config.Host, "default", "mcp-b")
	var kc map[string]any
	if err := postJSON(ctx, w.url+"/api/v1/slice-workspace/kube-config", w.token, `{"workspaceName":"mcp-a","clusterName":"edge-3"}`, &kc); err == nil {
		t.Error("kube-config of mcp-a for edge-3, a cluster it is not on: no error")
	}

	// The API's waittime sees the workers' nodes: an L4 GPR for edge-3
	// could start now.
	var wt struct {
		Data struct {
			EstimatedWaitTime string `json:"estimatedWaitTime"`
			Satisfiable       bool   `json:"satisfiable"`
		} `json:"data"`
	}
	if err := postJSON(ctx, w.url+"/api/v1/gpr/waittime", w.token, `{"gprName":"wt","sliceName":"mcp-c","clusterName":"edge-3","numberOfGPUs":4,"numberOfGPUNodes":1,"gpuShape":"L4","exitDuration":"0d1h0m","priority":101}`, &wt); err != nil {
		t.Fatal(err)
	}
	if !wt.Data.Satisfiable || wt.Data.EstimatedWaitTime != "0h0m0s" {
		t.Errorf("waittime of an L4 GPR for edge-3 with its node free: %+v, want satisfiable now", wt.Data)
	}

	w.planFollowsWorkerNodes()

	// A GPR for edge-2 binds one node there and nothing anywhere else.
	a := w.gpr("mcp-gpr-a", "mcp-a", edge2, "A100", 8, 1)
	ga := w.waitGPR(a, "provisioned", provisioned)
	aNode := ga.Status.Nodes[0]
	if !strings.HasPrefix(aNode, "e2-") {
		t.Fatalf("GPR for edge-2 got node %s", aNode)
	}
	w.bindings(a)

	// Partition: edge-2's kube-apiserver stops.
	if err := e2.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	cond := w.readyIs(edge2, metav1.ConditionFalse, v1alpha1.ClusterReasonUnreachable)
	t.Logf("edge-2 Ready=False %s after its kube-apiserver stopped: %s", time.Since(t1).Round(time.Millisecond), cond.Message)
	eventually(t, ctx, 10*time.Second, "ClusterNotReady event", func() (bool, error) {
		var evs corev1.EventList
		if err := hub.Client.List(ctx, &evs); err != nil {
			return false, err
		}
		return slices.ContainsFunc(evs.Items, func(e corev1.Event) bool {
			return e.Reason == "ClusterNotReady" && e.InvolvedObject.Name == edge2
		}), nil
	})
	w.unhealthyFor(a, edge2, v1alpha1.ClusterReasonUnreachable)
	t.Logf("NodesHealthy during the partition: %s", w.nodesHealthy(a).Message)

	// The hub restarts during the partition: its new cache of edge-2
	// cannot sync, so it does not see edge-2's nodes at all.
	w.stop()
	w.stop = w.startControllers()
	w.readyIs(edge2, metav1.ConditionFalse, v1alpha1.ClusterReasonUnreachable)

	// Its expiry falls due during the partition; a GPR for edge-2 comes.
	w.clock.SetTime(w.clock.Now().Add(2 * time.Hour))
	b := w.gpr("mcp-gpr-b", "mcp-b", edge2, "A100", 8, 1)
	// edge-3 is not partitioned: a GPR for it is placed as usual. The pass
	// that placed it saw the clock stepped, so the release of a and the
	// placement of b were decided in it too.
	c := w.gpr("mcp-gpr-c", "mcp-c", edge3, "L4", 4, 1)
	w.waitGPR(c, "provisioned on edge-3 during edge-2's partition", provisioned)
	// A pass after the one that placed c, to be sure.
	w.waitGPR(b, "admitted", func(g *v1alpha1.GPUProvisionRequest) bool { return g.Status.ProvisioningStatus != "" })
	ga = w.get(a)
	if !domain.IsProvisioned(ga) || !slices.Equal(ga.Status.Nodes, []string{aNode}) {
		t.Fatalf("GPR a during the partition, past its end: %s (%s) on %v, want still provisioned on %s",
			ga.Status.ProvisioningStatus, ga.Status.Reason, ga.Status.Nodes, aNode)
	}
	gb := w.get(b)
	if !domain.IsQueued(gb) || len(gb.Status.Nodes) > 0 {
		t.Fatalf("GPR b for edge-2 during the partition: %s on %v (%s), want queued", gb.Status.ProvisioningStatus, gb.Status.Nodes, gb.Status.FailureReason)
	}
	t.Logf("GPR b during the partition: %s, reason %q, failureReason %q, estimate %v", gb.Status.ProvisioningStatus, gb.Status.Reason, gb.Status.FailureReason, gb.Status.EstimatedStartTime)
	// The restarted hub never saw edge-2's nodes: out of sight, not gone.
	eventually(t, ctx, 30*time.Second, "a's NodesHealthy after the hub restarted during the partition", func() (bool, error) {
		c := w.nodesHealthy(a)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == "ClusterUnreachable" && strings.Contains(c.Message, edge2), nil
	})
	t.Logf("GPR a's NodesHealthy after the hub restarted during the partition: %s", w.nodesHealthy(a).Message)

	// Back: the expiry that fell due is applied, b is placed, bindings
	// follow status in every cluster.
	t2 := time.Now()
	if err := e2.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	w.readyIs(edge2, metav1.ConditionTrue, v1alpha1.ClusterReasonReachable)
	ga = w.waitGPR(a, "Complete (Expired) once edge-2 is back", completed(v1alpha1.ReasonExpired))
	if ga.Status.CompletionTimestamp == nil || ga.Status.CompletionTimestamp.Time.Before(ga.Status.StartTimestamp.Add(time.Hour)) {
		t.Errorf("GPR a completed at %v, started %v", ga.Status.CompletionTimestamp, ga.Status.StartTimestamp)
	}
	gb = w.waitGPR(b, "provisioned once edge-2 is back", provisioned)
	t.Logf("edge-2 back: a released, b on %v, %s after its kube-apiserver started", gb.Status.Nodes, time.Since(t2).Round(time.Millisecond))
	w.bindings(a, b, c)
	// The hub's view of edge-2 is whole again: b's nodes are Ready in it.
	// (Until the new cache of edge-2 has synced, which may take a few
	// seconds of the informer's backoff after the outage, its nodes are
	// missing from the plan's nodes.)
	eventually(t, ctx, time.Minute, "b's NodesHealthy True", func() (bool, error) {
		c := w.nodesHealthy(b)
		return c != nil && c.Status == metav1.ConditionTrue, nil
	})

	// A revoked credential: Ready=False with reason Unauthorized, the same
	// otherwise.
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "gpuspace-hub"}}
	if err := e2.Client.Get(ctx, client.ObjectKeyFromObject(crb), crb); err != nil {
		t.Fatal(err)
	}
	if err := e2.Client.Delete(ctx, crb); err != nil {
		t.Fatal(err)
	}
	w.readyIs(edge2, metav1.ConditionFalse, v1alpha1.ClusterReasonUnauthorized)
	w.unhealthyFor(b, edge2, v1alpha1.ClusterReasonUnauthorized)
	w.clock.SetTime(w.clock.Now().Add(2 * time.Hour)) // b and c fall due
	d := w.gpr("mcp-gpr-d", "mcp-a", edge2, "A100", 8, 1)
	// c is on edge-3, reachable: released at once, in a pass that also
	// saw b due.
	w.waitGPR(c, "Complete (Expired) on edge-3", completed(v1alpha1.ReasonExpired))
	w.waitGPR(d, "admitted", func(g *v1alpha1.GPUProvisionRequest) bool { return g.Status.ProvisioningStatus != "" })
	if gb = w.get(b); !domain.IsProvisioned(gb) {
		t.Fatalf("GPR b with edge-2's credential revoked, past its end: %s (%s), want still provisioned", gb.Status.ProvisioningStatus, gb.Status.Reason)
	}
	if gd := w.get(d); !domain.IsQueued(gd) {
		t.Fatalf("GPR d for edge-2 with its credential revoked: %s on %v, want queued", gd.Status.ProvisioningStatus, gd.Status.Nodes)
	}
	crb.ResourceVersion, crb.UID = "", ""
	if err := e2.Client.Create(ctx, crb); err != nil {
		t.Fatal(err)
	}
	w.readyIs(edge2, metav1.ConditionTrue, "")
	w.waitGPR(b, "Complete (Expired) with the credential back", completed(v1alpha1.ReasonExpired))
	w.waitGPR(d, "provisioned with the credential back", provisioned)
	w.bindings(a, b, c, d)

	// Unregistering edge-2: refused while d is provisioned there; forced,
	// a GPR queued for edge-2 fails with the reason (it can never start).
	e := w.gpr("mcp-gpr-e", "mcp-a", edge2, "A100", 8, 1) // behind d: one provisioned GPR per workspace
	w.waitGPR(e, "queued", domain.IsQueued)
	if err := provision.Unregister(ctx, hub.Client, ns, edge2, false); err == nil || !strings.Contains(err.Error(), d) {
		t.Fatalf("unregister of edge-2 with d provisioned: %v, want refused naming %s", err, d)
	}
	if err := provision.Unregister(ctx, hub.Client, ns, edge2, true); err != nil {
		t.Fatal(err)
	}
	t.Logf("GPR d after edge-2 was unregistered by force: %s", w.get(d).Status.ProvisioningStatus)
	ge := w.waitGPR(e, "failed or held with the reason after edge-2 was unregistered", func(g *v1alpha1.GPUProvisionRequest) bool {
		return g.Status.FailureReason != "" && strings.Contains(g.Status.FailureReason, edge2)
	})
	t.Logf("GPR e after edge-2 was unregistered: %s (%s): %s", ge.Status.ProvisioningStatus, ge.Status.Reason, ge.Status.FailureReason)
	if !strings.Contains(ge.Status.FailureReason, "not registered") {
		t.Errorf("GPR e's failureReason %q does not say edge-2 is not registered", ge.Status.FailureReason)
	}
}

// planFollowsWorkerNodes: the API's plan view (queued GPRs' estimates)
// is made again when a node of a worker cluster changes, as when a node of
// the hub's does. p1 holds edge-3's only node for an hour and p2 waits for
// it; with the controllers stopped (no GPR write invalidates anything)
// and the API's clock frozen (the view never ages), the node turning
// NotReady and Ready again in edge-3 must show in p2's estimate.
func (w *mcWorld) planFollowsWorkerNodes() {
	t, ctx := w.t, w.ctx
	t.Helper()
	p1 := w.gpr("mcp-plan-1", "mcp-c", edge3, "L4", 4, 1)
	w.waitGPR(p1, "provisioned", provisioned)
	p2 := w.gpr("mcp-plan-2", "mcp-c", edge3, "L4", 4, 1)
	w.waitGPR(p2, "queued", func(g *v1alpha1.GPUProvisionRequest) bool {
		return domain.IsQueued(g) && g.Status.ProvisioningStatus != ""
	})
	w.stop()

	// The registry and the API alone, on a frozen clock.
	frozen := w.clock.Now()
	cfg := rest.CopyConfig(hub.Config)
	mgr, err := controller.NewManager(cfg, controller.ManagerOptions{Cache: apiserver.CacheOptions(ns)})
	if err != nil {
		t.Fatal(err)
	}
	reg := clusters.New(mgr.GetClient(), mgr.GetAPIReader(), mgr.GetScheme(), nil, clusters.Options{Namespace: ns, Heartbeat: 300 * time.Millisecond})
	skip := true
	if err := reg.SetupWithManager(mgr, &skip); err != nil {
		t.Fatal(err)
	}
	if err := index.AddGPRWorkspace(ctx, mgr.GetFieldIndexer()); err != nil {
		t.Fatal(err)
	}
	api, err := apiserver.New(apiserver.Config{RESTConfig: cfg, Namespace: ns}, apiserver.WithCache(mgr.GetCache()),
		apiserver.WithClusters(reg), apiserver.WithClock(func() time.Time { return frozen }))
	if err != nil {
		t.Fatal(err)
	}
	if err := mgr.Add(api); err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	srv := httptest.NewServer(api.Handler())
	defer func() {
		srv.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("API: %v", err)
		}
	}()
	eventually(t, ctx, time.Minute, "API-only server ready", func() (bool, error) { return api.Ready(), nil })
	key, _, err := auth.CreateKey(ctx, hub.Client, ns, auth.KeyRequest{Name: "mc-plan", Role: auth.RoleOwner}, frozen)
	if err != nil {
		t.Fatal(err)
	}
	token, err := loginURL(ctx, srv.URL, key)
	if err != nil {
		t.Fatal(err)
	}
	estimate := func() string {
		var out struct {
			Data struct {
				EstimatedStartTime string `json:"estimatedStartTime"`
			} `json:"data"`
		}
		if err := getJSON(ctx, srv.URL+"/api/v1/gpr?gprId="+p2, token, &out); err != nil {
			t.Fatal(err)
		}
		return out.Data.EstimatedStartTime
	}
	var first string
	eventually(t, ctx, 30*time.Second, "p2's estimate with edge-3 synced", func() (bool, error) {
		first = estimate()
		return first != "", nil
	})
	if err := w.workers[edge3].SetNodeReady(ctx, "e3-l4-0", false); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, 30*time.Second, "p2's estimate gone with edge-3's node NotReady", func() (bool, error) { return estimate() == "", nil })
	if err := w.workers[edge3].SetNodeReady(ctx, "e3-l4-0", true); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, 30*time.Second, "p2's estimate back with edge-3's node Ready", func() (bool, error) { return estimate() == first, nil })

	// The controllers again; p1 and p2 out of the way.
	w.stop = w.startControllers()
	for _, name := range []string{p1, p2} {
		if err := hub.Client.Delete(ctx, &v1alpha1.GPUProvisionRequest{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	w.bindings()
}

// loginURL exchanges an API key for a bearer token.
func loginURL(ctx context.Context, url, key string) (string, error) {
	var out struct {
		Data struct {
			Token string `json:"token"`
		} `json:"data"`
	}
	err := doJSON(ctx, "POST", url+"/api/v1/auth", "", fmt.Sprintf(`{"apiKey":%q}`, key), &out)
	return out.Data.Token, err
}
