package nodesim

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/util/draclaims"
	"github.com/gpuspace/gpuspace/internal/util/idlesignal"
)

// IdleFieldManager names the simulator's writes of the idle annotation.
const IdleFieldManager = "gpuspace-nodesim"

// WithClock sets the clock of the idle signal's timestamps (time.Now).
func WithClock(now func() time.Time) Option { return func(s *Simulator) { s.now = now } }

// gpusOf is how many GPUs a pod asks for: its nvidia.com/gpu, or 1 when it
// asks for GPU memory only, 0 when for neither.
func gpusOf(pod *corev1.Pod) int64 {
	var gpus int64
	memory := false
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			for _, list := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
				if q, ok := list[v1alpha1.ResourceGPU]; ok {
					gpus = max(gpus, q.Value())
				}
				if q, ok := list[v1alpha1.ResourceGPUMemory]; ok && !q.IsZero() {
					memory = true
				}
			}
		}
	}
	if gpus == 0 && memory {
		return 1
	}
	return gpus
}

// allDevices counts a DRA request for every matching device: more GPUs
// than any node has (utilization caps at 100%).
const allDevices = 1 << 20

// claimGPUs is how many GPU devices claims ask for (domain's default
// DeviceClasses): each GPU request's count, 1 by default; a request with
// alternatives counts 1.
func claimGPUs(claims []*resourcev1.ResourceClaimSpec) int64 {
	var gpus int64
	var rule domain.GPUPodRule
	for _, c := range claims {
		for _, req := range c.Devices.Requests {
			one := &resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{Requests: []resourcev1.DeviceRequest{req}}}
			switch {
			case !rule.ClaimRequestsGPUs(one):
			case req.Exactly != nil && req.Exactly.AllocationMode == resourcev1.DeviceAllocationModeAll:
				gpus += allDevices
			case req.Exactly != nil && req.Exactly.Count > 0:
				gpus += req.Exactly.Count
			default:
				gpus++
			}
		}
	}
	return gpus
}

// gpusInUse is how many GPUs a pod keeps busy on its node: those its
// containers ask for and its DRA claims' GPU devices, while it is running,
// not finished or being deleted; 0 for a pod that is not a GPU pod
// (domain.PodUsesGPUs, the default rule).
func (s *Simulator) gpusInUse(pod *corev1.Pod) int64 {
	if pod.Spec.NodeName == "" || pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodRunning {
		return 0
	}
	var claims []*resourcev1.ResourceClaimSpec
	if s.claims != nil {
		// A claim not readable yet counts for nothing until the pod's next
		// change (it goes Running after it is scheduled, claims allocated).
		claims, _ = draclaims.FromListers(s.claims, s.claimTemplates, pod)
	}
	if !domain.PodUsesGPUs(pod, domain.GPUPodRule{}, claims) {
		return 0
	}
	return max(1, gpusOf(pod)+claimGPUs(claims))
}

// idleState is one simulated node's idle signal.
type idleState struct {
	pub     *idlesignal.Publisher
	tracker idlesignal.Tracker
	gpus    int64            // GPUs on the node
	pods    map[string]int64 // GPU pods running on the node -> their GPUs
}

// utilization is the node's simulated mean GPU utilisation: each GPU a
// running pod asked for is fully used.
func (st *idleState) utilization() int {
	if st.gpus <= 0 {
		return idlesignal.NoUtilization
	}
	var used int64
	for _, n := range st.pods {
		used += n
	}
	return int(min(100, (used*100+st.gpus/2)/st.gpus))
}

// idleStateLocked returns the node's state, making it; s.mu is held.
func (s *Simulator) idleStateLocked(node string) *idleState {
	st, ok := s.idle[node]
	if !ok {
		st = &idleState{pods: map[string]int64{}}
		s.idle[node] = st
	}
	return st
}

// notePod records where a GPU pod runs, and reports the nodes whose GPU
// use changed.
func (s *Simulator) notePod(pod *corev1.Pod, gone bool) []string {
	key := pod.Namespace + "/" + pod.Name
	var gpus int64
	if !gone {
		gpus = s.gpusInUse(pod)
	}
	uses := gpus > 0
	s.mu.Lock()
	defer s.mu.Unlock()
	var changed []string
	if was, ok := s.podNode[key]; ok && (!uses || was != pod.Spec.NodeName) {
		delete(s.podNode, key)
		delete(s.idleStateLocked(was).pods, key)
		changed = append(changed, was)
	}
	if uses {
		if _, ok := s.podNode[key]; !ok {
			s.podNode[key] = pod.Spec.NodeName
			s.idleStateLocked(pod.Spec.NodeName).pods[key] = gpus
			changed = append(changed, pod.Spec.NodeName)
		}
	}
	return changed
}

// publishIdle publishes a node's idle signal from the GPU pods on it. It
// writes only when the node turned idle or busy.
func (s *Simulator) publishIdle(ctx context.Context, node string) error {
	s.mu.Lock()
	st, ok := s.idle[node]
	if !ok || st.pub == nil {
		s.mu.Unlock()
		return nil
	}
	busy := len(st.pods) > 0
	since := st.tracker.Observe(s.now(), map[string]bool{"gpus": !busy})
	pub, util := st.pub, st.utilization()
	s.mu.Unlock()
	_, err := pub.PublishUsage(ctx, since, util)
	return err
}

// startIdle makes the node publish its idle signal; node is the node as
// read after creating it, which says what is published already.
func (s *Simulator) startIdle(node *corev1.Node, gpus int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.idleStateLocked(node.Name)
	st.gpus = int64(gpus)
	st.pub = &idlesignal.Publisher{Client: s.cs, Node: node.Name, FieldManager: IdleFieldManager, Now: s.now}
	st.pub.Seed(node)
	st.tracker = idlesignal.Tracker{}
}

// SetIdleSince publishes a simulated node's idle-since as given (zero:
// busy), whatever runs on it, for tests that place idleness at a chosen
// moment; the node's next GPU pod change publishes from its pods again.
func (s *Simulator) SetIdleSince(ctx context.Context, node string, since time.Time) error {
	s.mu.Lock()
	st, ok := s.idle[node]
	s.mu.Unlock()
	if !ok || st.pub == nil {
		return fmt.Errorf("simulated node %s publishes no idle signal", node)
	}
	return st.pub.Set(ctx, since)
}

// IdleWrites is how many times the simulator wrote the node's idle
// annotation.
func (s *Simulator) IdleWrites(node string) int {
	s.mu.Lock()
	st, ok := s.idle[node]
	s.mu.Unlock()
	if !ok || st.pub == nil {
		return 0
	}
	return st.pub.Writes()
}

// idleHandlers follows GPU pods and queues the nodes whose GPU use changed.
func (s *Simulator) idleHandlers(queue workqueue.TypedInterface[string]) cache.ResourceEventHandler {
	note := func(obj any, gone bool) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if pod, ok := obj.(*corev1.Pod); ok {
			for _, n := range s.notePod(pod, gone) {
				queue.Add(n)
			}
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { note(obj, false) },
		UpdateFunc: func(_, obj any) { note(obj, false) },
		DeleteFunc: func(obj any) { note(obj, true) },
	}
}

// runIdle publishes the queued nodes' idle signals until the queue shuts
// down.
func (s *Simulator) runIdle(ctx context.Context, queue workqueue.TypedRateLimitingInterface[string]) {
	for {
		node, shutdown := queue.Get()
		if shutdown {
			return
		}
		err := s.publishIdle(ctx, node)
		if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
			queue.AddRateLimited(node)
		} else {
			queue.Forget(node)
		}
		queue.Done(node)
	}
}
