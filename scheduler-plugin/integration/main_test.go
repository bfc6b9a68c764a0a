// Package integration runs gpuspace's scheduler plugins in the real
// kube-scheduler (scheduler.New) against a real kube-apiserver and etcd
// (internal/dev/testenv), with the KubeSchedulerConfiguration shipped in
// manifests/scheduler.
package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	schedulerapi "k8s.io/kubernetes/pkg/scheduler/apis/config"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gpuspacev1alpha1 "github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
	"github.com/gpuspace/gpuspace/internal/util/kubeclient"
	"github.com/gpuspace/gpuspace/scheduler-plugin/gprpriority"
	"github.com/gpuspace/gpuspace/scheduler-plugin/internal/plugintest"
	"github.com/gpuspace/gpuspace/scheduler-plugin/workspacebinding"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// loadProfiles reads manifests/scheduler/config.yaml, as gpuspace-scheduler
// --config does.
func loadProfiles(t testing.TB) []schedulerapi.KubeSchedulerProfile {
	return plugintest.LoadProfiles(t)
}

// repoFile returns the path of a file relative to the repository root.
func repoFile(rel string) string { return plugintest.RepoFile(rel) }

// registry is what cmd/gpuspace-scheduler registers.
func registry() frameworkruntime.Registry {
	return frameworkruntime.Registry{
		workspacebinding.Name: workspacebinding.New,
		gprpriority.Name:      gprpriority.New,
	}
}

// fastConfig is the admin config with client-side rate limits far above
// what a test needs, so the client is not what a test measures.
func fastConfig() *rest.Config { return kubeclient.WithLimits(env.Config, 5000, 10000) }

// startSchedulerDefault runs kube-scheduler's default profile (no
// gpuspace plugins) until the test ends: the baseline.
func startSchedulerDefault(t testing.TB) (stop func()) { return startScheduler(t, nil, nil) }

// startScheduler runs a scheduler with profiles until the test ends; nil
// profiles means kube-scheduler's default profile. stop stops it sooner.
func startScheduler(t testing.TB, profiles []schedulerapi.KubeSchedulerProfile, reg frameworkruntime.Registry) (stop func()) {
	t.Helper()
	return plugintest.StartScheduler(t, fastConfig(), profiles, reg)
}

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func createNamespace(ctx context.Context, t testing.TB, name, ws string) {
	t.Helper()
	ns := &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if ws != "" {
		ns.Labels = map[string]string{gpuspacev1alpha1.LabelWorkspace: ws}
	}
	_, err := env.Kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func addNode(ctx context.Context, t testing.TB, name string, gpus int) {
	t.Helper()
	_, err := env.AddGPUNode(ctx, testenv.GPUNode{Name: name, Product: "NVIDIA-H100-80GB-HBM3", MemoryMiB: 81559, GPUs: gpus})
	must(t, err)
	// nodesim removes the not-ready taint admission adds; wait for it, or
	// the node's first minutes would depend on timing.
	must(t, wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		n, err := env.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, tn := range n.Spec.Taints {
			if tn.Key == v1.TaintNodeNotReady {
				return false, nil
			}
		}
		return true, nil
	}))
}

// bindNode labels and taints node for workspace ws (gpr), or unbinds it
// when ws is "", as the GPR controller does.
func bindNode(ctx context.Context, t testing.TB, node, ws, gpr string) {
	t.Helper()
	var patch string
	if ws == "" {
		patch = fmt.Sprintf(`{"metadata":{"labels":{%q:null,%q:null}},"spec":{"taints":null}}`, gpuspacev1alpha1.LabelWorkspace, gpuspacev1alpha1.LabelGPR)
	} else {
		patch = fmt.Sprintf(`{"metadata":{"labels":{%q:%q,%q:%q}},"spec":{"taints":[{"key":%q,"value":%q,"effect":"NoSchedule"}]}}`,
			gpuspacev1alpha1.LabelWorkspace, ws, gpuspacev1alpha1.LabelGPR, gpr, gpuspacev1alpha1.TaintWorkspace, ws)
	}
	_, err := env.Kube.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	must(t, err)
}

// createGPR creates a GPR for ws in phase, its status naming nodes
// (written as the controller would; no controller runs here).
func createGPR(ctx context.Context, t testing.TB, name, ws string, priority int32, phase gpuspacev1alpha1.ProvisioningStatus, estimate *time.Time, nodes ...string) *gpuspacev1alpha1.GPUProvisionRequest {
	t.Helper()
	g := &gpuspacev1alpha1.GPUProvisionRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: gpuspacev1alpha1.GPUProvisionRequestSpec{
			GPRName: name, Workspace: ws, ClusterName: gpuspacev1alpha1.DefaultCluster,
			NumberOfGPUs: 1, NumberOfGPUNodes: 1, Priority: priority, ExitDuration: "0d1h0m",
		},
	}
	must(t, env.Client.Create(ctx, g))
	setGPRStatus(ctx, t, g, phase, estimate, nodes...)
	return g
}

// setGPRStatus writes g's status (the status subresource) with phase,
// estimate and, when given, the nodes it names; without nodes, the ones
// it named stay (a Complete GPR keeps them as a record).
func setGPRStatus(ctx context.Context, t testing.TB, g *gpuspacev1alpha1.GPUProvisionRequest, phase gpuspacev1alpha1.ProvisioningStatus, estimate *time.Time, nodes ...string) {
	t.Helper()
	orig := g.DeepCopy()
	g.Status.ProvisioningStatus = phase
	if nodes != nil {
		g.Status.Nodes = nodes
	}
	g.Status.EstimatedStartTime = nil
	if estimate != nil {
		g.Status.EstimatedStartTime = &metav1.Time{Time: *estimate}
	}
	must(t, env.Client.Status().Patch(ctx, g, client.MergeFrom(orig)))
}

func gpuPod(ns, name string) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			Containers: []v1.Container{{Name: "c", Image: "busybox", Resources: v1.ResourceRequirements{
				Requests: v1.ResourceList{gpuspacev1alpha1.ResourceGPU: mustQuantity("1")},
				Limits:   v1.ResourceList{gpuspacev1alpha1.ResourceGPU: mustQuantity("1")},
			}}},
		},
	}
}

func cpuPod(ns, name string) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			Containers: []v1.Container{{Name: "c", Image: "busybox", Resources: v1.ResourceRequirements{
				Requests: v1.ResourceList{v1.ResourceCPU: mustQuantity("10m")},
			}}},
		},
	}
}

func createPod(ctx context.Context, t testing.TB, p *v1.Pod) {
	t.Helper()
	_, err := env.Kube.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
	must(t, err)
}

// waitPod waits until cond holds for the pod and returns it.
func waitPod(ctx context.Context, t testing.TB, ns, name, what string, cond func(*v1.Pod) bool) *v1.Pod {
	t.Helper()
	var got *v1.Pod
	err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := env.Kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		got = p
		return cond(p), nil
	})
	if err != nil {
		if got == nil {
			t.Fatalf("pod %s/%s never %s: %v", ns, name, what, err)
		}
		t.Fatalf("pod %s/%s never %s: %v (last seen: node %q, conditions %v)", ns, name, what, err, got.Spec.NodeName, got.Status.Conditions)
	}
	return got
}

func bound(p *v1.Pod) bool { return p.Spec.NodeName != "" }

// scheduledCondition returns the pod's PodScheduled condition.
func scheduledCondition(p *v1.Pod) *v1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == v1.PodScheduled {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

func heldFor(p *v1.Pod) bool {
	c := scheduledCondition(p)
	return c != nil && c.Status == v1.ConditionFalse && c.Reason == workspacebinding.ReasonWaitingForGPR
}

func unschedulable(p *v1.Pod) bool {
	c := scheduledCondition(p)
	return c != nil && c.Status == v1.ConditionFalse && c.Reason == v1.PodReasonUnschedulable
}

func mustQuantity(s string) resource.Quantity { return resource.MustParse(s) }
