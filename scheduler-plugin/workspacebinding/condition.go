package workspacebinding

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	gpuspacev1alpha1 "github.com/gpuspace/gpuspace/api/v1alpha1"
)

// ReasonWaitingForGPR is the reason of the PodScheduled=False condition of
// a pod held until its workspace's GPR is provisioned (the contract in
// api/v1alpha1: auto-GPR reads it).
const ReasonWaitingForGPR = gpuspacev1alpha1.PodReasonWaitingForGPR

// conditionWriter publishes why a pod is held. The scheduler keeps
// PreEnqueue results to itself (a gated pod's status is never written), so
// without this a user sees a Pending pod and no reason. PreEnqueue must not
// call the API, so it only records the wish; a worker patches the pod.
type conditionWriter struct {
	client kubernetes.Interface
	queue  workqueue.TypedRateLimitingInterface[types.NamespacedName]

	mu   sync.Mutex
	want map[types.NamespacedName]string
}

func newConditionWriter(client kubernetes.Interface) *conditionWriter {
	return &conditionWriter{
		client: client,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[types.NamespacedName](),
			workqueue.TypedRateLimitingQueueConfig[types.NamespacedName]{Name: "gpuspace-held-pods"}),
		want: map[types.NamespacedName]string{},
	}
}

// request asks for pod's PodScheduled condition to say msg, unless it
// already does.
func (w *conditionWriter) request(pod *v1.Pod, msg string) {
	for i := range pod.Status.Conditions {
		c := &pod.Status.Conditions[i]
		if c.Type == v1.PodScheduled && c.Status == v1.ConditionFalse && c.Reason == ReasonWaitingForGPR && c.Message == msg {
			return
		}
	}
	key := types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}
	w.mu.Lock()
	w.want[key] = msg
	w.mu.Unlock()
	w.queue.Add(key)
}

// run patches pods until ctx ends.
func (w *conditionWriter) run(ctx context.Context) {
	go func() {
		<-ctx.Done()
		w.queue.ShutDown()
	}()
	for w.next(ctx) {
	}
}

func (w *conditionWriter) next(ctx context.Context) bool {
	key, quit := w.queue.Get()
	if quit {
		return false
	}
	defer w.queue.Done(key)
	w.mu.Lock()
	msg, ok := w.want[key]
	delete(w.want, key)
	w.mu.Unlock()
	if !ok {
		w.queue.Forget(key)
		return true
	}
	if err := w.patch(ctx, key, msg); err != nil {
		klog.FromContext(ctx).V(2).Info("Cannot update the condition of a held pod", "pod", key, "err", err)
		w.mu.Lock()
		if _, newer := w.want[key]; !newer {
			w.want[key] = msg
		}
		w.mu.Unlock()
		w.queue.AddRateLimited(key)
		return true
	}
	w.queue.Forget(key)
	return true
}

func (w *conditionWriter) patch(ctx context.Context, key types.NamespacedName, msg string) error {
	pod, err := w.client.CoreV1().Pods(key.Namespace).Get(ctx, key.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get pod %s: %w", key, err)
	}
	if pod.Spec.NodeName != "" {
		// Released and bound since: PodScheduled is the binding's now.
		return nil
	}
	// A strategic merge patch merges conditions by type, so only
	// PodScheduled is touched; the resourceVersion makes it conditional, so
	// a binding that lands between the read and the write is never
	// overwritten (the patch fails with a conflict and is retried).
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": pod.ResourceVersion},
		"status": map[string]any{
			"conditions": []v1.PodCondition{{
				Type:               v1.PodScheduled,
				Status:             v1.ConditionFalse,
				Reason:             ReasonWaitingForGPR,
				Message:            msg,
				LastTransitionTime: metav1.NewTime(time.Now()),
			}},
		},
	})
	if err != nil {
		return fmt.Errorf("marshal patch: %w", err)
	}
	_, err = w.client.CoreV1().Pods(key.Namespace).Patch(ctx, key.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("patch pod %s status: %w", key, err)
	}
	return nil
}
