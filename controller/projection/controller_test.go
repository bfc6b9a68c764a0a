package projection

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

const hubName = "worker-1"

// fakeClusters is a registry of fake worker clients that counts their
// writes.
type fakeClusters struct {
	mu      sync.Mutex
	clients map[string]client.Client
	ready   map[string]bool
	writes  map[string][]string // cluster -> "verb name"
}

func newFakeClusters(t *testing.T, workers ...string) *fakeClusters {
	f := &fakeClusters{clients: map[string]client.Client{}, ready: map[string]bool{}, writes: map[string][]string{}}
	for _, w := range workers {
		rec := func(verb string, obj client.Object) {
			f.mu.Lock()
			f.writes[w] = append(f.writes[w], verb+" "+obj.GetName())
			f.mu.Unlock()
		}
		f.clients[w] = fake.NewClientBuilder().WithScheme(newScheme(t)).
			WithStatusSubresource(&v1alpha1.GPUProvisionRequest{}).
			WithInterceptorFuncs(interceptor.Funcs{
				Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
					rec("create", obj)
					return c.Create(ctx, obj, opts...)
				},
				Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
					rec("update", obj)
					return c.Update(ctx, obj, opts...)
				},
				Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
					rec("delete", obj)
					return c.Delete(ctx, obj, opts...)
				},
				SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
					rec("update/"+sub, obj)
					return c.SubResource(sub).Update(ctx, obj, opts...)
				},
			}).Build()
		f.ready[w] = true
	}
	return f
}

func (f *fakeClusters) Local() string { return hubName }
func (f *fakeClusters) Names() []string {
	out := []string{hubName}
	for n := range f.clients {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
func (f *fakeClusters) Client(c string) (client.Client, bool) { cl, ok := f.clients[c]; return cl, ok }
func (f *fakeClusters) Ready(c string) bool                   { return f.ready[c] }
func (f *fakeClusters) Source(handler.EventHandler, predicate.Predicate) source.Source {
	return nil
}

// took returns and forgets the writes made to cluster w.
func (f *fakeClusters) took(w string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.writes[w]
	delete(f.writes, w)
	return out
}

func gprReq(name string) reconcile.Request {
	return reconcile.Request{NamespacedName: types.NamespacedName{Name: name}}
}

func clusterReq(name string) reconcile.Request {
	return reconcile.Request{NamespacedName: types.NamespacedName{Namespace: clusterKey, Name: name}}
}

func newHubGPR(name, cluster string, phase v1alpha1.ProvisioningStatus) *v1alpha1.GPUProvisionRequest {
	return &v1alpha1.GPUProvisionRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(t0.Add(-time.Hour))},
		Spec: v1alpha1.GPUProvisionRequestSpec{GPRName: name, Workspace: "ws", ClusterName: cluster,
			NumberOfGPUs: 1, NumberOfGPUNodes: 1, Priority: 150, ExitDuration: "0d1h0m"},
		Status: v1alpha1.GPUProvisionRequestStatus{ProvisioningStatus: phase},
	}
}

// TestReconcile: what each event writes in which worker.
func TestReconcile(t *testing.T) {
	ctx := context.Background()
	hub := fake.NewClientBuilder().WithScheme(newScheme(t)).WithStatusSubresource(&v1alpha1.GPUProvisionRequest{}).Build()
	workers := newFakeClusters(t, "worker-2", "worker-3")
	r := New(hub, workers, WithClock(clocktesting.NewFakePassiveClock(t0)))
	reconcileOK := func(req reconcile.Request) reconcile.Result {
		t.Helper()
		res, err := r.Reconcile(ctx, req)
		if err != nil {
			t.Fatalf("reconcile %v: %v", req, err)
		}
		return res
	}
	wantWrites := func(step string, want map[string][]string) {
		t.Helper()
		got := map[string][]string{}
		for _, w := range []string{"worker-2", "worker-3"} {
			if ws := workers.took(w); len(ws) > 0 {
				got[w] = ws
			}
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s: worker writes (-want +got):\n%s", step, d)
		}
	}

	a := newHubGPR("gpr-a", "worker-2", v1alpha1.GPRQueued)
	a.Status.EstimatedStartTime = mt(t0.Add(10 * time.Minute))
	local := newHubGPR("gpr-local", hubName, v1alpha1.GPRQueued)
	for _, g := range []*v1alpha1.GPUProvisionRequest{a, local} {
		st := g.Status
		if err := hub.Create(ctx, g); err != nil {
			t.Fatal(err)
		}
		g.Status = st
		if err := hub.Status().Update(ctx, g); err != nil {
			t.Fatal(err)
		}
	}

	// No worker's cache has been read: a GPR event waits for the resync.
	reconcileOK(gprReq(a.Name))
	wantWrites("before any resync", map[string][]string{})
	reconcileOK(clusterReq("worker-2"))
	reconcileOK(clusterReq("worker-3"))
	wantWrites("resync", map[string][]string{"worker-2": {"create gpr-a", "update/status gpr-a"}})

	// Unchanged: nothing written, whatever triggers it.
	reconcileOK(gprReq(a.Name))
	reconcileOK(clusterReq("worker-2"))
	reconcileOK(gprReq(local.Name))
	wantWrites("unchanged", map[string][]string{})
	// A restarted hub compares with the worker's objects, not with what
	// it remembers: still nothing.
	restarted := New(hub, workers, WithClock(clocktesting.NewFakePassiveClock(t0.Add(time.Minute))))
	for _, req := range []reconcile.Request{clusterReq("worker-2"), clusterReq("worker-3"), gprReq(a.Name)} {
		if _, err := restarted.Reconcile(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	wantWrites("after a restart", map[string][]string{})

	// Provisioned: one status write.
	must(t, hub.Get(ctx, client.ObjectKeyFromObject(a), a))
	a.Status.ProvisioningStatus, a.Status.Nodes, a.Status.StartTimestamp = v1alpha1.GPRProvisioned, []string{"n1"}, mt(t0)
	must(t, hub.Status().Update(ctx, a))
	reconcileOK(gprReq(a.Name))
	wantWrites("provisioned", map[string][]string{"worker-2": {"update/status gpr-a"}})
	var p v1alpha1.GPUProvisionRequest
	must(t, workers.clients["worker-2"].Get(ctx, client.ObjectKeyFromObject(a), &p))
	if !slices.Equal(p.Status.Nodes, []string{"n1"}) || p.Status.EstimatedStartTime != nil {
		t.Errorf("projection status %+v, want nodes [n1] and no estimate", p.Status)
	}

	// A worker's own GPR of a name the hub has: never touched.
	foreign := newHubGPR("gpr-b", "worker-3", v1alpha1.GPRQueued)
	must(t, workers.clients["worker-3"].Create(ctx, foreign.DeepCopy()))
	workers.took("worker-3")
	must(t, hub.Create(ctx, foreign.DeepCopy()))
	reconcileOK(gprReq(foreign.Name))
	reconcileOK(clusterReq("worker-3"))
	wantWrites("foreign GPR", map[string][]string{})

	// A stale projection (its GPR gone meanwhile) goes on the resync.
	stale := Project(newHubGPR("gpr-gone", "worker-3", v1alpha1.GPRQueued), hubName)
	must(t, workers.clients["worker-3"].Create(ctx, stale))
	workers.took("worker-3")
	reconcileOK(clusterReq("worker-3"))
	wantWrites("stale", map[string][]string{"worker-3": {"delete gpr-gone"}})

	// An unreachable worker is neither read nor written, and looked at
	// again later.
	workers.ready["worker-2"] = false
	must(t, hub.Get(ctx, client.ObjectKeyFromObject(a), a))
	a.Status.ProvisioningStatus = v1alpha1.GPRComplete
	must(t, hub.Status().Update(ctx, a))
	reconcileOK(gprReq(a.Name))
	if res := reconcileOK(clusterReq("worker-2")); res.RequeueAfter != notReadyRecheck {
		t.Errorf("resync of a worker that is not Ready: %+v, want a recheck after %s", res, notReadyRecheck)
	}
	wantWrites("unreachable", map[string][]string{})

	// Back: the finished GPR's projection goes.
	workers.ready["worker-2"] = true
	reconcileOK(clusterReq("worker-2"))
	wantWrites("back", map[string][]string{"worker-2": {"delete gpr-a"}})
	if err := workers.clients["worker-2"].Get(ctx, client.ObjectKeyFromObject(a), &p); !apierrors.IsNotFound(err) {
		t.Errorf("projection of a finished GPR: %v, want NotFound", err)
	}

	// Deleted on the hub: gone from the worker.
	b := newHubGPR("gpr-c", "worker-3", v1alpha1.GPRQueued)
	must(t, hub.Create(ctx, b))
	reconcileOK(gprReq(b.Name))
	wantWrites("queued without estimate", map[string][]string{"worker-3": {"create gpr-c"}})
	must(t, hub.Delete(ctx, b))
	reconcileOK(gprReq(b.Name))
	wantWrites("deleted", map[string][]string{"worker-3": {"delete gpr-c"}})
}

func newScheme(t *testing.T) *runtime.Scheme {
	s := runtime.NewScheme()
	must(t, v1alpha1.AddToScheme(s))
	return s
}

// TestResyncWithoutRights: a worker whose credential cannot list GPRs
// (registered before the projection's rights) fails its resync with the
// fix named, and GPR reconciles leave it alone rather than wait for its
// cache each time.
func TestResyncWithoutRights(t *testing.T) {
	ctx := context.Background()
	hub := fake.NewClientBuilder().WithScheme(newScheme(t)).Build()
	workers := newFakeClusters(t, "worker-2")
	lists := 0
	workers.clients["worker-2"] = fake.NewClientBuilder().WithScheme(newScheme(t)).WithInterceptorFuncs(interceptor.Funcs{
		List: func(context.Context, client.WithWatch, client.ObjectList, ...client.ListOption) error {
			lists++
			return apierrors.NewForbidden(v1alpha1.Resource("gpuprovisionrequests"), "", errors.New("no rights"))
		},
		Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
			t.Error("a GPR reconcile read a worker whose cache never synced")
			return context.DeadlineExceeded
		},
	}).Build()
	r := New(hub, workers, WithClock(clocktesting.NewFakePassiveClock(t0)))
	must(t, hub.Create(ctx, newHubGPR("gpr-a", "worker-2", v1alpha1.GPRQueued)))

	_, err := r.Reconcile(ctx, clusterReq("worker-2"))
	if err == nil || !strings.Contains(err.Error(), "manifests/worker/credential.yaml") {
		t.Errorf("resync without the rights: %v, want an error naming the credential manifest", err)
	}
	if _, err := r.Reconcile(ctx, gprReq("gpr-a")); err != nil {
		t.Errorf("GPR reconcile: %v", err)
	}
	if lists != 1 {
		t.Errorf("%d lists of the worker, want 1 (the resync's)", lists)
	}
}

// TestCacheBehind: a reconcile right after a write of ours, whose worker
// cache has not seen that write yet, compares with what was written: no
// second create, no update of a stale version.
func TestCacheBehind(t *testing.T) {
	ctx := context.Background()
	hub := fake.NewClientBuilder().WithScheme(newScheme(t)).WithStatusSubresource(&v1alpha1.GPUProvisionRequest{}).Build()
	workers := newFakeClusters(t, "worker-2")
	behind := true
	inner := workers.clients["worker-2"]
	workers.clients["worker-2"] = interceptor.NewClient(inner.(client.WithWatch), interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if behind {
				return apierrors.NewNotFound(v1alpha1.Resource("gpuprovisionrequests"), key.Name)
			}
			return c.Get(ctx, key, obj, opts...)
		},
	})
	r := New(hub, workers, WithClock(clocktesting.NewFakePassiveClock(t0)))
	if _, err := r.Reconcile(ctx, clusterReq("worker-2")); err != nil {
		t.Fatal(err)
	}
	g := newHubGPR("gpr-a", "worker-2", "")
	must(t, hub.Create(ctx, g))
	if _, err := r.Reconcile(ctx, gprReq(g.Name)); err != nil {
		t.Fatal(err)
	}
	g.Status.ProvisioningStatus, g.Status.Nodes, g.Status.StartTimestamp = v1alpha1.GPRProvisioned, []string{"n1"}, mt(t0)
	must(t, hub.Status().Update(ctx, g))
	if _, err := r.Reconcile(ctx, gprReq(g.Name)); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"create gpr-a", "update/status gpr-a"}, workers.took("worker-2")); d != "" {
		t.Errorf("writes with the cache behind (-want +got):\n%s", d)
	}
	// Caught up: the same, and nothing to write.
	behind = false
	if _, err := r.Reconcile(ctx, gprReq(g.Name)); err != nil {
		t.Fatal(err)
	}
	if got := workers.took("worker-2"); len(got) > 0 {
		t.Errorf("writes once the cache caught up: %v", got)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
