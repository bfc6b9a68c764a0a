package nodesim_test

import (
	"context"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
	"github.com/gpuspace/gpuspace/internal/util/idlesignal"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

func gpuPod(name, node string, gpus int64) *corev1.Pod {
	c := corev1.Container{Name: "c", Image: "busybox"}
	if gpus > 0 {
		q := *resource.NewQuantity(gpus, resource.DecimalSI)
		c.Resources = corev1.ResourceRequirements{
			Requests: corev1.ResourceList{v1alpha1.ResourceGPU: q},
			Limits:   corev1.ResourceList{v1alpha1.ResourceGPU: q},
		}
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{c}},
	}
}

// annotationChanges counts, from a watch, the changes of the node's idle
// annotation the apiserver makes (heartbeats change the node too).
func annotationChanges(t *testing.T, ctx context.Context, node string) func() []string {
	t.Helper()
	w, err := env.Kube.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + node})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var values []string
	last := "<unseen>"
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			n, ok := ev.Object.(*corev1.Node)
			if !ok {
				continue
			}
			v := n.Annotations[idlesignal.Annotation]
			mu.Lock()
			if ev.Type == watch.Modified && v != last {
				values = append(values, v)
			}
			last = v
			mu.Unlock()
		}
	}()
	return func() []string {
		w.Stop()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return values
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func idleOf(t *testing.T, ctx context.Context, node string) (time.Time, bool) {
	t.Helper()
	n, err := env.Kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return idlesignal.Read(n)
}

func utilOf(t *testing.T, ctx context.Context, node string) int {
	t.Helper()
	n, err := env.Kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u, ok := idlesignal.ReadUtilization(n)
	if !ok {
		t.Fatalf("node %s publishes no utilisation", node)
	}
	return u
}

// TestIdleFollowsGPUPods: a simulated node is idle from its creation, busy
// while a pod that requested GPUs runs on it, idle again when the last one
// is gone — one write per transition, on the same annotation the device
// plugin publishes.
func TestIdleFollowsGPUPods(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const node = "sim-idle"
	before := time.Now().Add(-time.Second)
	if _, err := env.AddGPUNode(ctx, testenv.GPUNode{Name: node, Product: "Tesla-T4", MemoryMiB: 15360, GPUs: 2}); err != nil {
		t.Fatal(err)
	}
	since, published := idleOf(t, ctx, node)
	if !published || since.Before(before) || since.After(time.Now().Add(time.Second)) {
		t.Fatalf("new node: idle since %v (published %v), want about now", since, published)
	}
	changes := annotationChanges(t, ctx, node)
	pods := env.Kube.CoreV1().Pods("default")
	create := func(p *corev1.Pod) {
		t.Helper()
		if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, p.Name+" running", func() bool {
			got, err := pods.Get(ctx, p.Name, metav1.GetOptions{})
			return err == nil && got.Status.Phase == corev1.PodRunning
		})
	}
	busy := func() bool { s, ok := idleOf(t, ctx, node); return ok && s.IsZero() }

	// A pod without GPUs does not make the node busy.
	create(gpuPod("cpu-only", node, 0))
	time.Sleep(300 * time.Millisecond)
	if busy() {
		t.Fatal("a pod without GPUs made the node busy")
	}
	create(gpuPod("train-1", node, 1))
	waitFor(t, "node busy", busy)
	if u := utilOf(t, ctx, node); u != 50 {
		t.Errorf("1 of 2 GPUs in use: utilisation %d %%, want 50", u)
	}
	create(gpuPod("train-2", node, 1))
	for _, name := range []string{"train-1", "cpu-only"} {
		if err := pods.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if !busy() {
		t.Fatal("node idle while train-2 runs")
	}
	busySince := time.Now().Add(-time.Second)
	if err := pods.Delete(ctx, "train-2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node idle", func() bool { return !busy() })
	if u := utilOf(t, ctx, node); u != 0 {
		t.Errorf("idle node: utilisation %d %%, want 0", u)
	}
	if s, _ := idleOf(t, ctx, node); s.Before(busySince) {
		t.Errorf("idle since %v, before the last GPU pod ended (%v)", s, busySince)
	}
	time.Sleep(300 * time.Millisecond)
	got := changes()
	if len(got) != 2 || got[0] != "" || got[1] == "" {
		t.Errorf("annotation changes %q, want busy then idle", got)
	}
	if n := env.Nodes.IdleWrites(node); n != 2 {
		t.Errorf("%d idle writes, want 2 (busy, idle)", n)
	}
}

// TestNoIdleSignal: a node marked NoIdleSignal publishes nothing, as a node
// without gpuspace's device plugin.
func TestNoIdleSignal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const node = "sim-silent"
	if _, err := env.AddGPUNode(ctx, testenv.GPUNode{Name: node, Product: "Tesla-T4", MemoryMiB: 15360, GPUs: 1, NoIdleSignal: true}); err != nil {
		t.Fatal(err)
	}
	p := gpuPod("silent-1", node, 1)
	if _, err := env.Kube.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if _, published := idleOf(t, ctx, node); published {
		t.Error("a NoIdleSignal node publishes idleness")
	}
	if n := env.Nodes.IdleWrites(node); n != 0 {
		t.Errorf("%d idle writes", n)
	}
}

// TestSetIdleSince places a node's idle-since at a chosen moment.
func TestSetIdleSince(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const node = "sim-set"
	if _, err := env.AddGPUNode(ctx, testenv.GPUNode{Name: node, Product: "Tesla-T4", MemoryMiB: 15360, GPUs: 1}); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, want := range []time.Time{at, at.Add(time.Hour), {}} {
		if err := env.Nodes.SetIdleSince(ctx, node, want); err != nil {
			t.Fatal(err)
		}
		if got, ok := idleOf(t, ctx, node); !ok || !got.Equal(want) {
			t.Errorf("idle since %v (%v), want %v", got, ok, want)
		}
	}
	if err := env.Nodes.SetIdleSince(ctx, "no-such-node", at); err == nil {
		t.Error("SetIdleSince of an unknown node succeeded")
	}
}

// TestIdleFollowsDRAGPUPods: a pod that gets GPUs through a DRA claim of a
// GPU DeviceClass keeps its simulated node busy, its claim's device count
// in use; one whose claim asks for another class does not.
func TestIdleFollowsDRAGPUPods(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const node = "sim-idle-dra"
	if _, err := env.AddGPUNode(ctx, testenv.GPUNode{Name: node, Product: "Tesla-T4", MemoryMiB: 15360, GPUs: 4}); err != nil {
		t.Fatal(err)
	}
	pods := env.Kube.CoreV1().Pods("default")
	draPod := func(name, class string, count int64) {
		t.Helper()
		claim := &resourcev1.ResourceClaim{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{Requests: []resourcev1.DeviceRequest{{Name: "dev",
				Exactly: &resourcev1.ExactDeviceRequest{DeviceClassName: class, AllocationMode: resourcev1.DeviceAllocationModeExactCount, Count: count}}}}}}
		if _, err := env.Kube.ResourceV1().ResourceClaims("default").Create(ctx, claim, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		p := gpuPod(name, node, 0)
		p.Spec.ResourceClaims = []corev1.PodResourceClaim{{Name: "dev", ResourceClaimName: ptr.To(name)}}
		p.Spec.Containers[0].Resources.Claims = []corev1.ResourceClaim{{Name: "dev"}}
		if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, name+" running", func() bool {
			got, err := pods.Get(ctx, name, metav1.GetOptions{})
			return err == nil && got.Status.Phase == corev1.PodRunning
		})
	}
	busy := func() bool { s, ok := idleOf(t, ctx, node); return ok && s.IsZero() }

	draPod("dra-nic", "nic.example.com", 1)
	time.Sleep(300 * time.Millisecond)
	if busy() {
		t.Fatal("a pod whose claim is no GPU made the node busy")
	}
	draPod("dra-train", "gpu.nvidia.com", 2)
	waitFor(t, "node busy", busy)
	if u := utilOf(t, ctx, node); u != 50 {
		t.Errorf("2 of 4 GPUs claimed: utilisation %d %%, want 50", u)
	}
	if err := pods.Delete(ctx, "dra-train", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node idle", func() bool { return !busy() })
}
