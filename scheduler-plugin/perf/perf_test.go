// Package perf measures the scheduling throughput gpuspace's plugins cost:
// the real scheduler (scheduler.New) on a fake clientset, so that only the
// scheduler's own work is timed, not an apiserver sharing the machine.
package perf

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/scheduler"
	schedulerapi "k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	"k8s.io/kubernetes/pkg/scheduler/profile"

	gpuspacev1alpha1 "github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/scheduler-plugin/gprpriority"
	"github.com/gpuspace/gpuspace/scheduler-plugin/internal/state"
	"github.com/gpuspace/gpuspace/scheduler-plugin/workspacebinding"
)

// The workload of the integration throughput benchmark: 1,000 nodes, 100
// of them bound to 10 workspaces; 500 workspace GPU pods and 2,500 pods of
// no workspace.
const (
	nodes        = 1000
	workspaces   = 10
	nodesPerWS   = 10
	gpuPodsPerWS = 50
	plainPods    = 2500
)

func loadProfiles(b *testing.B) []schedulerapi.KubeSchedulerProfile {
	_, here, _, _ := runtime.Caller(0)
	data, err := os.ReadFile(filepath.Join(filepath.Dir(here), "..", "..", "manifests", "scheduler", "config.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	obj, _, err := scheme.Codecs.UniversalDecoder().Decode(data, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	return obj.(*schedulerapi.KubeSchedulerConfiguration).Profiles
}

func q(s string) resource.Quantity { return resource.MustParse(s) }

// held is the nodes workspace ws's GPR names in its status: the ones
// labelled for it.
func held(ws int) []string {
	var out []string
	for i := ws * nodesPerWS; i < (ws+1)*nodesPerWS && i < nodes; i++ {
		out = append(out, fmt.Sprintf("node-%04d", i))
	}
	return out
}

func objects() (kobjs []kruntime.Object, gprs []kruntime.Object, pods []*v1.Pod) {
	res := v1.ResourceList{v1.ResourceCPU: q("64"), v1.ResourceMemory: q("512Gi"), v1.ResourcePods: q("110"), gpuspacev1alpha1.ResourceGPU: q("8")}
	for i := range nodes {
		name := fmt.Sprintf("node-%04d", i)
		n := &v1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{v1.LabelHostname: name}},
			Status:     v1.NodeStatus{Capacity: res, Allocatable: res, Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue}}},
		}
		if ws := i / nodesPerWS; ws < workspaces {
			n.Labels[gpuspacev1alpha1.LabelWorkspace] = fmt.Sprintf("ws-%d", ws)
			n.Spec.Taints = []v1.Taint{{Key: gpuspacev1alpha1.TaintWorkspace, Value: fmt.Sprintf("ws-%d", ws), Effect: v1.TaintEffectNoSchedule}}
		}
		kobjs = append(kobjs, n)
	}
	kobjs = append(kobjs, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "plain"}})
	pod := func(ns, name string, gpu bool) *v1.Pod {
		r := v1.ResourceList{v1.ResourceCPU: q("10m")}
		if gpu {
			r[gpuspacev1alpha1.ResourceGPU] = q("1")
		}
		return &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(ns + "-" + name)},
			Spec: v1.PodSpec{SchedulerName: v1.DefaultSchedulerName, Containers: []v1.Container{{Name: "c", Image: "busybox",
				Resources: v1.ResourceRequirements{Requests: r, Limits: r}}}},
		}
	}
	for ws := range workspaces {
		ns := fmt.Sprintf("team-%d", ws)
		kobjs = append(kobjs, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{gpuspacev1alpha1.LabelWorkspace: fmt.Sprintf("ws-%d", ws)}}})
		gprs = append(gprs, &gpuspacev1alpha1.GPUProvisionRequest{
			TypeMeta:   metav1.TypeMeta{APIVersion: gpuspacev1alpha1.SchemeGroupVersion.String(), Kind: "GPUProvisionRequest"},
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("gpr-%d", ws)},
			Spec:       gpuspacev1alpha1.GPUProvisionRequestSpec{Workspace: fmt.Sprintf("ws-%d", ws), Priority: 101},
			Status:     gpuspacev1alpha1.GPUProvisionRequestStatus{ProvisioningStatus: gpuspacev1alpha1.GPRProvisioned, Nodes: held(ws)},
		})
		for i := range gpuPodsPerWS {
			pods = append(pods, pod(ns, fmt.Sprintf("gpu-%d", i), true))
		}
	}
	for i := range plainPods {
		pods = append(pods, pod("plain", fmt.Sprintf("cpu-%d", i), false))
	}
	return kobjs, gprs, pods
}

// run schedules the workload once and returns pods/s: the time from the
// scheduler's start (all pods queued) to the last Bind call.
func run(b *testing.B, profiles []schedulerapi.KubeSchedulerProfile) float64 {
	kobjs, gprs, pods := objects()
	for _, p := range pods {
		kobjs = append(kobjs, p)
	}
	cs := fake.NewClientset(kobjs...)
	var bound atomic.Int64
	total := int64(len(pods))
	done := make(chan struct{})
	var once sync.Once
	// The fake tracker does not implement pods/binding; count the calls,
	// which is where the scheduling cycle of a pod ends.
	cs.PrependReactor("create", "pods", func(a clienttesting.Action) (bool, kruntime.Object, error) {
		if a.GetSubresource() != "binding" {
			return false, nil, nil
		}
		if bound.Add(1) == total {
			once.Do(func() { close(done) })
		}
		return true, nil, nil
	})
	sch := kruntime.NewScheme()
	if err := gpuspacev1alpha1.AddToScheme(sch); err != nil {
		b.Fatal(err)
	}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(sch,
		map[schema.GroupVersionResource]string{state.GPRResource: "GPUProvisionRequestList"}, gprs...)
	newDyn := func() (dynamic.Interface, error) { return dyn, nil }

	ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), logr.Discard()))
	defer cancel()
	inf := scheduler.NewInformerFactory(cs, 0, nil)
	dynInf := dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0)
	opts := []scheduler.Option{scheduler.WithFrameworkOutOfTreeRegistry(frameworkruntime.Registry{
		workspacebinding.Name: workspacebinding.NewWithClient(newDyn),
		gprpriority.Name:      gprpriority.NewWithClient(newDyn),
	})}
	if profiles != nil {
		opts = append(opts, scheduler.WithProfiles(profiles...))
	}
	broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
	sched, err := scheduler.New(ctx, cs, inf, dynInf, profile.NewRecorderFactory(broadcaster), opts...)
	if err != nil {
		b.Fatal(err)
	}
	inf.Start(ctx.Done())
	dynInf.Start(ctx.Done())
	inf.WaitForCacheSync(ctx.Done())
	dynInf.WaitForCacheSync(ctx.Done())
	if err := sched.WaitForHandlersSync(ctx); err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	start := time.Now()
	go func() {
		defer wg.Done()
		sched.Run(ctx)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("%d of %d pods bound in 5 minutes", bound.Load(), total)
	}
	elapsed := time.Since(start)
	cancel()
	wg.Wait()
	inf.Shutdown()
	dynInf.Shutdown()
	return float64(total) / elapsed.Seconds()
}

// BenchmarkSchedulingThroughput alternates kube-scheduler's default
// profile and gpuspace's profile (manifests/scheduler/config.yaml) on the
// same workload, GPUSPACE_TP_ROUNDS pairs (default 4), and reports the
// mean pods/s of each and their ratio.
//
//	go test ./scheduler-plugin/perf -run '^$' -bench . -benchtime 1x
func BenchmarkSchedulingThroughput(b *testing.B) {
	pairs := 4
	if s := os.Getenv("GPUSPACE_TP_ROUNDS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			pairs = n
		}
	}
	ours := loadProfiles(b)
	var base, gs []float64
	for b.Loop() {
		for i := range pairs {
			// Alternate which goes first (warm-up, GC state).
			if i%2 == 0 {
				base = append(base, run(b, nil))
				gs = append(gs, run(b, ours))
			} else {
				gs = append(gs, run(b, ours))
				base = append(base, run(b, nil))
			}
		}
	}
	mean := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	b.ReportMetric(mean(base), "default-pods/s")
	b.ReportMetric(mean(gs), "gpuspace-pods/s")
	b.ReportMetric(mean(gs)/mean(base), "ratio")
	b.Logf("pods/s, default profile %.0f, gpuspace profile %.0f", base, gs)
}
