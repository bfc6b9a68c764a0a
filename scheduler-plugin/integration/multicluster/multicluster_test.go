// Package multicluster runs a worker cluster's gpuspace-scheduler against
// projections of the hub's GPRs: two real control planes (the hub, whose
// gpuspace server runs the controllers, and a worker registered with the
// least-privilege credential), the real kube-scheduler with gpuspace's
// plugins (manifests/scheduler/config.yaml) against the worker only. The
// worker's scheduler never reaches the hub.
package multicluster

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/controller/projection"
	"github.com/gpuspace/gpuspace/internal/clusters/provision"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/server"
	"github.com/gpuspace/gpuspace/internal/server/servertest"
	"github.com/gpuspace/gpuspace/internal/util/kubeclient"
	"github.com/gpuspace/gpuspace/scheduler-plugin/gprpriority"
	"github.com/gpuspace/gpuspace/scheduler-plugin/internal/plugintest"
	"github.com/gpuspace/gpuspace/scheduler-plugin/workspacebinding"
)

// hub is the control plane gpuspace runs in (cluster worker-1).
var hub *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &hub) }

const (
	ns     = auth.DefaultNamespace
	local  = v1alpha1.DefaultCluster
	remote = "worker-2"
	node   = "w2-h100-0"
)

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond every 50 ms for up to d.
func eventually(t *testing.T, ctx context.Context, d time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, d, true, func(context.Context) (bool, error) { return cond() })
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// writes counts the worker's GPR write requests by verb (and subresource),
// from its kube-apiserver's apiserver_request_total: every request the
// hub sent, including ones that changed nothing or failed. Nothing but
// the hub's projection writes GPRs in the worker.
func writes(t *testing.T, ctx context.Context, worker *testenv.Env) map[string]int {
	t.Helper()
	raw, err := worker.Kube.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	must(t, err)
	out := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_request_total{") || !strings.Contains(line, `resource="gpuprovisionrequests"`) {
			continue
		}
		labels, value, _ := strings.Cut(strings.TrimPrefix(line, "apiserver_request_total"), " ")
		verb, sub := label(labels, "verb"), label(labels, "subresource")
		if verb != "POST" && verb != "PUT" && verb != "PATCH" && verb != "DELETE" {
			continue
		}
		if sub != "" {
			verb += " " + sub
		}
		n, err := strconv.ParseFloat(value, 64)
		must(t, err)
		out[verb] += int(n)
	}
	must(t, sc.Err())
	return out
}

func label(labels, name string) string {
	_, rest, ok := strings.Cut(labels, name+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

// since is after minus before, without zeros.
func since(before, after map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// settle waits until the worker's GPR writes stop for quiet, and returns
// their counts then.
func settle(t *testing.T, ctx context.Context, worker *testenv.Env, quiet time.Duration) map[string]int {
	t.Helper()
	last := writes(t, ctx, worker)
	for {
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(quiet):
		}
		now := writes(t, ctx, worker)
		if maps.Equal(now, last) {
			return now
		}
		last = now
	}
}

func hubGPR(t *testing.T, ctx context.Context, name string) *v1alpha1.GPUProvisionRequest {
	t.Helper()
	var g v1alpha1.GPUProvisionRequest
	must(t, hub.Client.Get(ctx, client.ObjectKey{Name: name}, &g))
	return &g
}

// projected is the worker's projection of name, nil if none.
func projected(ctx context.Context, worker *testenv.Env, name string) (*v1alpha1.GPUProvisionRequest, error) {
	var g v1alpha1.GPUProvisionRequest
	err := worker.Client.Get(ctx, client.ObjectKey{Name: name}, &g)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return &g, err
}

func newGPR(name, ws string, priority int32) *v1alpha1.GPUProvisionRequest {
	return &v1alpha1.GPUProvisionRequest{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.GPUProvisionRequestSpec{
		GPRName: name, Workspace: ws, ClusterName: remote, NumberOfGPUs: 8, NumberOfGPUNodes: 1,
		GPUShape: "H100", ExitDuration: "0d1h0m", Priority: priority,
	}}
}

func gpuPod(ns, name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c", Image: "cuda",
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), v1alpha1.ResourceGPU: resource.MustParse("1")},
				Limits:   corev1.ResourceList{v1alpha1.ResourceGPU: resource.MustParse("1")},
			},
		}}},
	}
}

func scheduledCondition(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodScheduled {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// TestWorkerSchedulesFromProjections: the hub projects the GPRs of
// worker-2 into worker-2; worker-2's scheduler, which has no hub
// credential, places a workspace's pod on its bound node once its GPR is
// provisioned and holds another workspace's pod with its queued GPR's
// estimate; projections follow priority, phase and nodes, disappear on
// completion, cost no write when nothing they carry changed, and are made
// and garbage-collected again when worker-2 comes back from a partition.
func TestWorkerSchedulesFromProjections(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	if err := hub.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	worker, err := testenv.Start(ctx)
	must(t, err)
	t.Cleanup(func() { _ = worker.Stop() })
	_, err = worker.AddGPUNode(ctx, testenv.GPUNode{Name: node, Cluster: remote, Product: "NVIDIA-H100-80GB-HBM3", MemoryMiB: 81559, GPUs: 8, InstanceType: "p5.48xlarge"})
	must(t, err)
	kc, err := provision.Credential(ctx, worker.Config, 3600)
	must(t, err)
	if _, err := provision.Register(ctx, hub.Client, provision.RegisterOptions{Name: remote, Kubeconfig: kc, Namespace: ns}); err != nil {
		t.Fatalf("register %s with the least-privilege credential: %v", remote, err)
	}
	servertest.Start(t, hub.Config, server.Options{Namespace: ns, ClusterHeartbeat: 300 * time.Millisecond})
	// The worker's gpuspace-scheduler, with the worker's admin credential
	// and nothing of the hub's.
	plugintest.StartScheduler(t, kubeclient.WithLimits(worker.Config, 5000, 10000), plugintest.LoadProfiles(t),
		frameworkruntime.Registry{workspacebinding.Name: workspacebinding.New, gprpriority.Name: gprpriority.New})

	for _, ws := range []string{"team-a", "team-b"} {
		must(t, hub.Client.Create(ctx, &v1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: ws}, Spec: v1alpha1.WorkspaceSpec{
			Username: ws, Clusters: []string{local, remote}, Namespaces: []v1alpha1.WorkspaceNamespace{{Namespace: ws}},
		}}))
		eventually(t, ctx, 30*time.Second, "namespace "+ws+" in "+remote, func() (bool, error) {
			var n corev1.Namespace
			err := worker.Client.Get(ctx, client.ObjectKey{Name: ws}, &n)
			return err == nil && n.Labels[v1alpha1.LabelWorkspace] == ws, client.IgnoreNotFound(err)
		})
	}
	base := settle(t, ctx, worker, time.Second)

	a := newGPR("gpr-mc-a", "team-a", 150)
	var aProj *v1alpha1.GPUProvisionRequest
	if !t.Run("provisioned GPR projected, its pod placed on its node", func(t *testing.T) {
		must(t, hub.Client.Create(ctx, a))
		eventually(t, ctx, 30*time.Second, "projection of a provisioned "+a.Name, func() (bool, error) {
			p, err := projected(ctx, worker, a.Name)
			if err != nil || p == nil {
				return false, err
			}
			aProj = p
			return domain.IsProvisioned(p) && slices.Equal(p.Status.Nodes, []string{node}), nil
		})
		g := hubGPR(t, ctx, a.Name)
		if d := cmp.Diff(projection.Project(g, local), aProj, ignoreServerFields()); d != "" {
			t.Errorf("projection of %s (-want +got):\n%s", a.Name, d)
		}
		must(t, worker.Client.Create(ctx, gpuPod("team-a", "train")))
		waitPlaced(t, ctx, worker, "team-a", "train")
	}) {
		return
	}
	w := settle(t, ctx, worker, time.Second)
	t.Logf("worker GPR writes for a new provisioned GPR: %v", since(base, w))
	if n := total(since(base, w)); n > 2 {
		t.Errorf("%d writes to project one new GPR, want at most 2 (create, status)", n)
	}

	b := newGPR("gpr-mc-b", "team-b", 120)
	var estimate string
	if !t.Run("queued GPR projected with its estimate, its pod held with it", func(t *testing.T) {
		before := w
		must(t, hub.Client.Create(ctx, b))
		var hb *v1alpha1.GPUProvisionRequest
		eventually(t, ctx, 30*time.Second, "estimate of "+b.Name+" projected", func() (bool, error) {
			hb = hubGPR(t, ctx, b.Name)
			p, err := projected(ctx, worker, b.Name)
			if err != nil || p == nil || hb.Status.EstimatedStartTime == nil || p.Status.EstimatedStartTime == nil {
				return false, err
			}
			return domain.IsQueued(p) && p.Status.EstimatedStartTime.Equal(hb.Status.EstimatedStartTime), nil
		})
		estimate = hb.Status.EstimatedStartTime.UTC().Format(time.RFC3339)
		must(t, worker.Client.Create(ctx, gpuPod("team-b", "infer")))
		want := fmt.Sprintf("waiting for GPUProvisionRequest %s of workspace team-b (Queued, priority 120); estimated start: %s", b.Name, estimate)
		waitMessage(t, ctx, worker, "team-b", "infer", want)
		w = settle(t, ctx, worker, time.Second)
		t.Logf("worker GPR writes for a new queued GPR: %v", since(before, w))
		if n := total(since(before, w)); n > 2 {
			t.Errorf("%d writes to project one new queued GPR, want at most 2 (create, status)", n)
		}
	}) {
		return
	}

	t.Run("no change, no write", func(t *testing.T) {
		before := w
		// A hub write the projection does not carry, and a resync of the
		// whole worker (its Cluster changed).
		g := hubGPR(t, ctx, b.Name)
		g.Labels = map[string]string{"note": "unrelated"}
		must(t, hub.Client.Update(ctx, g))
		var c v1alpha1.Cluster
		must(t, hub.Client.Get(ctx, client.ObjectKey{Name: remote}, &c))
		c.Labels = map[string]string{"resync": "please"}
		must(t, hub.Client.Update(ctx, &c))
		time.Sleep(3 * time.Second) // plan passes, heartbeats, the resync
		got := since(before, settle(t, ctx, worker, time.Second))
		if d := cmp.Diff(map[string]int{}, got); d != "" {
			t.Errorf("worker GPR writes with nothing to project (-want +got):\n%s", d)
		}
		w = writes(t, ctx, worker)
	})

	t.Run("priority change: one write, the held pod says so", func(t *testing.T) {
		before := w
		g := hubGPR(t, ctx, b.Name)
		g.Spec.Priority = 130
		must(t, hub.Client.Update(ctx, g))
		eventually(t, ctx, 30*time.Second, "priority of "+b.Name+" projected", func() (bool, error) {
			p, err := projected(ctx, worker, b.Name)
			return err == nil && p != nil && p.Spec.Priority == 130, err
		})
		want := fmt.Sprintf("waiting for GPUProvisionRequest %s of workspace team-b (Queued, priority 130); estimated start: %s", b.Name, estimate)
		waitMessage(t, ctx, worker, "team-b", "infer", want)
		w = settle(t, ctx, worker, time.Second)
		if d := cmp.Diff(map[string]int{"PUT": 1}, since(before, w)); d != "" {
			t.Errorf("worker GPR writes for a priority change (-want +got):\n%s", d)
		}
	})

	if !t.Run("release: projection deleted, the queued GPR's pod placed", func(t *testing.T) {
		before := w
		g := hubGPR(t, ctx, a.Name)
		g.Spec.EarlyRelease = true
		must(t, hub.Client.Update(ctx, g))
		eventually(t, ctx, 30*time.Second, a.Name+" projection gone, "+b.Name+" provisioned there", func() (bool, error) {
			pa, err := projected(ctx, worker, a.Name)
			if err != nil {
				return false, err
			}
			pb, err := projected(ctx, worker, b.Name)
			if err != nil || pb == nil {
				return false, err
			}
			return pa == nil && domain.IsProvisioned(pb) && slices.Equal(pb.Status.Nodes, []string{node}), nil
		})
		waitPlaced(t, ctx, worker, "team-b", "infer")
		w = settle(t, ctx, worker, time.Second)
		got := since(before, w)
		t.Logf("worker GPR writes for a release and the next start: %v", got)
		if d := cmp.Diff(map[string]int{"DELETE": 1, "PUT status": 1}, got); d != "" {
			t.Errorf("worker GPR writes for a release and the next start (-want +got):\n%s", d)
		}
	}) {
		return
	}

	t.Run("partition: resync on Ready makes and deletes what changed meanwhile", func(t *testing.T) {
		c := newGPR("gpr-mc-c", "team-a", 101)
		must(t, hub.Client.Create(ctx, c))
		eventually(t, ctx, 30*time.Second, c.Name+" projected", func() (bool, error) {
			p, err := projected(ctx, worker, c.Name)
			return p != nil, err
		})
		// A projection of this hub for a GPR the hub does not have (as
		// if it was deleted while the hub was down).
		stale := projection.Project(newGPR("gpr-mc-stale", "team-a", 101), local)
		must(t, worker.Client.Create(ctx, stale))

		must(t, worker.StopAPIServer())
		eventually(t, ctx, 30*time.Second, remote+" NotReady", func() (bool, error) {
			return clusterReady(ctx) == metav1.ConditionFalse, nil
		})
		must(t, hub.Client.Delete(ctx, hubGPR(t, ctx, c.Name)))
		d := newGPR("gpr-mc-d", "team-a", 101)
		must(t, hub.Client.Create(ctx, d))
		time.Sleep(time.Second)
		must(t, worker.StartAPIServer(ctx))
		eventually(t, ctx, 30*time.Second, remote+" Ready again", func() (bool, error) {
			return clusterReady(ctx) == metav1.ConditionTrue, nil
		})
		eventually(t, ctx, 30*time.Second, "projections resynced", func() (bool, error) {
			var l v1alpha1.GPUProvisionRequestList
			if err := worker.Client.List(ctx, &l); err != nil {
				return false, nil // the API server may still be warming up
			}
			var names []string
			for _, g := range l.Items {
				names = append(names, g.Name)
			}
			slices.Sort(names)
			return slices.Equal(names, []string{b.Name, d.Name}), nil
		})
	})

	t.Run("the hub's own cluster has no projection", func(t *testing.T) {
		var l v1alpha1.GPUProvisionRequestList
		must(t, hub.Client.List(ctx, &l, client.HasLabels{v1alpha1.LabelProjectedFrom}))
		if len(l.Items) > 0 {
			t.Errorf("%d projections in the hub's cluster", len(l.Items))
		}
	})
}

func clusterReady(ctx context.Context) metav1.ConditionStatus {
	var c v1alpha1.Cluster
	if err := hub.Client.Get(ctx, client.ObjectKey{Name: remote}, &c); err != nil {
		return metav1.ConditionUnknown
	}
	if cond := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ClusterReady); cond != nil {
		return cond.Status
	}
	return metav1.ConditionUnknown
}

// waitPlaced waits until the worker's scheduler has placed the pod on
// the bound node, failing at once if it placed it anywhere else.
func waitPlaced(t *testing.T, ctx context.Context, worker *testenv.Env, ns, name string) {
	t.Helper()
	eventually(t, ctx, 60*time.Second, "pod "+ns+"/"+name+" placed on "+node, func() (bool, error) {
		var p corev1.Pod
		if err := worker.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
			return false, err
		}
		if p.Spec.NodeName != "" && p.Spec.NodeName != node {
			return false, fmt.Errorf("pod %s/%s on %s, want %s", ns, name, p.Spec.NodeName, node)
		}
		return p.Spec.NodeName == node, nil
	})
}

// waitMessage waits until the pod's PodScheduled condition is want.
func waitMessage(t *testing.T, ctx context.Context, worker *testenv.Env, ns, name, want string) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		var p corev1.Pod
		if err := worker.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
			return false, err
		}
		if p.Spec.NodeName != "" {
			return false, fmt.Errorf("pod %s/%s bound to %s, want it held", ns, name, p.Spec.NodeName)
		}
		c := scheduledCondition(&p)
		if c == nil {
			return false, nil
		}
		last = c.Message
		return c.Reason == workspacebinding.ReasonWaitingForGPR && c.Message == want, nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s held with message %q, want %q: %v", ns, name, last, want, err)
	}
}

// ignoreServerFields compares a projection with what was asked for.
func ignoreServerFields() cmp.Option {
	return cmp.FilterPath(func(p cmp.Path) bool {
		switch p.Last().String() {
		case ".UID", ".ResourceVersion", ".Generation", ".CreationTimestamp", ".ManagedFields", ".TypeMeta":
			return true
		}
		return false
	}, cmp.Ignore())
}
