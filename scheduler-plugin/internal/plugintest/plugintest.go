// Package plugintest builds the objects and the framework handle the
// gpuspace scheduler plugins' tests use. Only tests import it.
package plugintest

import (
	"context"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	fwk "k8s.io/kube-scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	"k8s.io/utils/ptr"

	gpuspacev1alpha1 "github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/scheduler-plugin/internal/state"
)

// Namespace returns a namespace, of workspace ws unless ws is "".
func Namespace(name, ws string) *v1.Namespace {
	ns := &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if ws != "" {
		ns.Labels = map[string]string{gpuspacev1alpha1.LabelWorkspace: ws}
	}
	return ns
}

// Node returns a node with 8 GPUs, bound to workspace ws (label and taint)
// unless ws is "".
func Node(name, ws string) *v1.Node {
	w := st.MakeNode().Name(name).Capacity(map[v1.ResourceName]string{
		v1.ResourceCPU: "64", v1.ResourceMemory: "512Gi", v1.ResourcePods: "110", gpuspacev1alpha1.ResourceGPU: "8",
	})
	if ws != "" {
		w = w.Label(gpuspacev1alpha1.LabelWorkspace, ws).Label(gpuspacev1alpha1.LabelGPR, "gpr-"+ws).
			Taints([]v1.Taint{{Key: gpuspacev1alpha1.TaintWorkspace, Value: ws, Effect: v1.TaintEffectNoSchedule}})
	}
	return w.Obj()
}

// Pod returns a pod requesting a little CPU.
func Pod(ns, name string) *st.PodWrapper {
	return st.MakePod().Namespace(ns).Name(name).UID(ns + "/" + name).
		Req(map[v1.ResourceName]string{v1.ResourceCPU: "100m"})
}

// GPUPod returns a pod requesting one GPU.
func GPUPod(ns, name string) *st.PodWrapper {
	return st.MakePod().Namespace(ns).Name(name).UID(ns + "/" + name).
		Req(map[v1.ResourceName]string{v1.ResourceCPU: "100m", gpuspacev1alpha1.ResourceGPU: "1"})
}

// DaemonSetPod marks p as controlled by a DaemonSet.
func DaemonSetPod(p *st.PodWrapper) *st.PodWrapper {
	return p.OwnerReference("ds", schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "DaemonSet"})
}

// GPR returns a GPUProvisionRequest.
func GPR(name, ws string, priority int32, phase gpuspacev1alpha1.ProvisioningStatus) *gpuspacev1alpha1.GPUProvisionRequest {
	return &gpuspacev1alpha1.GPUProvisionRequest{
		TypeMeta:   metav1.TypeMeta{APIVersion: gpuspacev1alpha1.SchemeGroupVersion.String(), Kind: "GPUProvisionRequest"},
		ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))},
		Spec: gpuspacev1alpha1.GPUProvisionRequestSpec{
			GPRName: name, Workspace: ws, ClusterName: gpuspacev1alpha1.DefaultCluster,
			NumberOfGPUs: 1, NumberOfGPUNodes: 1, Priority: priority, ExitDuration: "0d1h0m",
		},
		Status: gpuspacev1alpha1.GPUProvisionRequestStatus{ProvisioningStatus: phase},
	}
}

// WithNodes sets the nodes a GPR's status names.
func WithNodes(g *gpuspacev1alpha1.GPUProvisionRequest, nodes ...string) *gpuspacev1alpha1.GPUProvisionRequest {
	g.Status.Nodes = nodes
	return g
}

// WithEstimate sets a GPR's estimated start.
func WithEstimate(g *gpuspacev1alpha1.GPUProvisionRequest, t time.Time) *gpuspacev1alpha1.GPUProvisionRequest {
	g.Status.EstimatedStartTime = ptr.To(metav1.NewTime(t))
	return g
}

// WithLatest sets g's latest start (status.latestStartTime).
func WithLatest(g *gpuspacev1alpha1.GPUProvisionRequest, t time.Time) *gpuspacev1alpha1.GPUProvisionRequest {
	g.Status.LatestStartTime = ptr.To(metav1.NewTime(t))
	return g
}

// Quantity parses q.
func Quantity(q string) resource.Quantity { return resource.MustParse(q) }

// Handle is a framework handle over fake clients.
type Handle struct {
	fwk.Handle
	Client    *fake.Clientset
	Dynamic   *dynamicfake.FakeDynamicClient
	Informers informers.SharedInformerFactory
}

// NewDynamic returns the state.DynamicClientFunc of the fake GPR client.
func (h *Handle) NewDynamic() state.DynamicClientFunc {
	return func() (dynamic.Interface, error) { return h.Dynamic, nil }
}

// Start starts and syncs the informers; call it after building plugins.
func (h *Handle) Start(ctx context.Context) {
	h.Informers.Start(ctx.Done())
	h.Informers.WaitForCacheSync(ctx.Done())
}

// NewHandle returns a handle whose clientset holds objs and whose dynamic
// client holds gprs. The handle is discarded when the test ends.
func NewHandle(ctx context.Context, t testing.TB, objs []runtime.Object, gprs ...*gpuspacev1alpha1.GPUProvisionRequest) *Handle {
	t.Helper()
	cs := fake.NewClientset(objs...)
	inf := informers.NewSharedInformerFactory(cs, 0)
	fh, err := frameworkruntime.NewFramework(ctx, nil, nil,
		frameworkruntime.WithClientSet(cs), frameworkruntime.WithInformerFactory(inf))
	if err != nil {
		t.Fatalf("framework: %v", err)
	}
	scheme := runtime.NewScheme()
	if err := gpuspacev1alpha1.AddToScheme(scheme); err != nil {
		t.Fatalf("scheme: %v", err)
	}
	var gobjs []runtime.Object
	for _, g := range gprs {
		gobjs = append(gobjs, g)
	}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(scheme,
		map[schema.GroupVersionResource]string{state.GPRResource: "GPUProvisionRequestList"}, gobjs...)
	return &Handle{Handle: fh, Client: cs, Dynamic: dyn, Informers: inf}
}

// Ptr returns a pointer to v.
func Ptr[T any](v T) *T { return ptr.To(v) }
