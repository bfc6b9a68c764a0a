package integration

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	schedulerapi "k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/utils/ptr"

	gpuspacev1alpha1 "github.com/gpuspace/gpuspace/api/v1alpha1"
)

// Throughput shape: scheduler_perf's "1000 nodes, 3000 pods" on the real
// apiserver. 100 of the nodes are bound to 10 workspaces (10 each, GPRs
// provisioned); each round schedules 500 workspace GPU pods and 2500 pods
// of no workspace.
const (
	tpNodes         = 1000
	tpWorkspaces    = 10
	tpNodesPerWS    = 10
	tpGPUPodsPerWS  = 50
	tpPlainPods     = 2500
	tpLabel         = "gpuspace.io/throughput-round"
	tpParallelWrite = 32
)

// BenchmarkSchedulingThroughput schedules the same 1,000-node / 3,000-pod
// workload with kube-scheduler's default profile and with gpuspace's
// profile (manifests/scheduler/config.yaml), alternating, on one real
// control plane, and reports pods/s of each and their ratio. Pods are
// created before the scheduler starts, so only scheduling and binding are
// timed (scheduler_perf's SchedulingThroughput, measured over the whole
// batch). GPUSPACE_TP_ROUNDS sets the number of pairs (default 2).
//
//	go test ./scheduler-plugin/integration -run '^$' -bench SchedulingThroughput -benchtime 1x
func BenchmarkSchedulingThroughput(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cs := kubernetes.NewForConfigOrDie(fastConfig())
	pairs := 2
	if s := os.Getenv("GPUSPACE_TP_ROUNDS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			pairs = n
		}
	}
	setupThroughputCluster(ctx, b, cs)
	var base, ours []float64
	for b.Loop() {
		for i := range pairs {
			// Alternate which profile goes first, so that whatever the
			// previous round leaves behind (deletions still being
			// processed) falls on both.
			if i%2 == 0 {
				base = append(base, throughputRound(ctx, b, cs, fmt.Sprintf("base-%d", i), nil))
				ours = append(ours, throughputRound(ctx, b, cs, fmt.Sprintf("ours-%d", i), loadProfiles(b)))
			} else {
				ours = append(ours, throughputRound(ctx, b, cs, fmt.Sprintf("ours-%d", i), loadProfiles(b)))
				base = append(base, throughputRound(ctx, b, cs, fmt.Sprintf("base-%d", i), nil))
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
	b.ReportMetric(mean(ours), "gpuspace-pods/s")
	b.ReportMetric(mean(ours)/mean(base), "ratio")
	b.Logf("pods/s default profile %v, gpuspace profile %v: ratio %.3f", round1(base), round1(ours), mean(ours)/mean(base))
}

func round1(xs []float64) []string {
	var out []string
	for _, x := range xs {
		out = append(out, strconv.FormatFloat(x, 'f', 0, 64))
	}
	return out
}

func parallel(n int, f func(i int) error) error {
	var (
		wg    sync.WaitGroup
		next  atomic.Int64
		first error
		mu    sync.Mutex
	)
	for range tpParallelWrite {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

func tpNodeName(i int) string { return fmt.Sprintf("tp-node-%04d", i) }

func setupThroughputCluster(ctx context.Context, b *testing.B, cs kubernetes.Interface) {
	b.Helper()
	res := v1.ResourceList{
		v1.ResourceCPU: mustQuantity("64"), v1.ResourceMemory: mustQuantity("512Gi"),
		v1.ResourcePods: mustQuantity("110"), gpuspacev1alpha1.ResourceGPU: mustQuantity("8"),
	}
	must(b, parallel(tpNodes, func(i int) error {
		name := tpNodeName(i)
		n := &v1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{v1.LabelHostname: name, v1.LabelOSStable: "linux"}},
			Status: v1.NodeStatus{
				Capacity: res, Allocatable: res,
				Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue, LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
			},
		}
		if ws := i / tpNodesPerWS; ws < tpWorkspaces {
			n.Labels[gpuspacev1alpha1.LabelWorkspace] = fmt.Sprintf("tp-ws-%d", ws)
			n.Labels[gpuspacev1alpha1.LabelGPR] = fmt.Sprintf("gpr-tp-ws-%d", ws)
		}
		created, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create node %s: %w", name, err)
		}
		// Admission adds the not-ready taint; no node controller removes it.
		created.Spec.Taints = nil
		if ws := i / tpNodesPerWS; ws < tpWorkspaces {
			created.Spec.Taints = []v1.Taint{{Key: gpuspacev1alpha1.TaintWorkspace, Value: fmt.Sprintf("tp-ws-%d", ws), Effect: v1.TaintEffectNoSchedule}}
		}
		if _, err := cs.CoreV1().Nodes().Update(ctx, created, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update node %s: %w", name, err)
		}
		return nil
	}))
	for ws := range tpWorkspaces {
		var held []string
		for i := ws * tpNodesPerWS; i < (ws+1)*tpNodesPerWS; i++ {
			held = append(held, tpNodeName(i))
		}
		createGPR(ctx, b, fmt.Sprintf("gpr-tp-ws-%d", ws), fmt.Sprintf("tp-ws-%d", ws), 101, gpuspacev1alpha1.GPRProvisioned, nil, held...)
	}
}

// throughputRound creates the round's pods, then runs a scheduler with
// profiles (nil: kube-scheduler's default) until all are bound, deletes
// them, and returns pods/s.
func throughputRound(ctx context.Context, b *testing.B, cs kubernetes.Interface, round string, profiles []schedulerapi.KubeSchedulerProfile) float64 {
	b.Helper()
	type podSpec struct{ ns, name string }
	var specs []podSpec
	plainNS := "tp-plain-" + round
	createNamespace(ctx, b, plainNS, "")
	for ws := range tpWorkspaces {
		ns := fmt.Sprintf("tp-%s-ws-%d", round, ws)
		createNamespace(ctx, b, ns, fmt.Sprintf("tp-ws-%d", ws))
		for i := range tpGPUPodsPerWS {
			specs = append(specs, podSpec{ns, fmt.Sprintf("gpu-%d", i)})
		}
	}
	for i := range tpPlainPods {
		specs = append(specs, podSpec{plainNS, fmt.Sprintf("cpu-%d", i)})
	}
	must(b, parallel(len(specs), func(i int) error {
		var p *v1.Pod
		if specs[i].ns == plainNS {
			p = cpuPod(specs[i].ns, specs[i].name)
		} else {
			p = gpuPod(specs[i].ns, specs[i].name)
		}
		p.Labels = map[string]string{tpLabel: round}
		_, err := cs.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
		return err
	}))

	// Count bindings from a watch of the round's pods.
	var bound atomic.Int64
	done := make(chan struct{})
	total := int64(len(specs))
	inf := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = labels.Set{tpLabel: round}.String()
	}))
	_, err := inf.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(oldObj, newObj any) {
			o, n := oldObj.(*v1.Pod), newObj.(*v1.Pod)
			if o.Spec.NodeName == "" && n.Spec.NodeName != "" && bound.Add(1) == total {
				close(done)
			}
		},
	})
	must(b, err)
	infCtx, stopInf := context.WithCancel(ctx)
	inf.Start(infCtx.Done())
	inf.WaitForCacheSync(infCtx.Done())

	start := time.Now()
	var stop func()
	if profiles == nil {
		stop = startSchedulerDefault(b)
	} else {
		stop = startScheduler(b, profiles, registry())
	}
	select {
	case <-done:
	case <-ctx.Done():
		b.Fatalf("round %s: %d of %d pods bound before the deadline", round, bound.Load(), total)
	}
	elapsed := time.Since(start)
	stop()
	stopInf()
	inf.Shutdown()
	rate := float64(total) / elapsed.Seconds()
	b.Logf("round %s: %d pods in %s (%.0f pods/s)", round, total, elapsed.Round(time.Millisecond), rate)

	// Free the nodes for the next round.
	namespaces := []string{plainNS}
	for ws := range tpWorkspaces {
		namespaces = append(namespaces, fmt.Sprintf("tp-%s-ws-%d", round, ws))
	}
	for _, ns := range namespaces {
		must(b, cs.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}, metav1.ListOptions{}))
	}
	return rate
}
