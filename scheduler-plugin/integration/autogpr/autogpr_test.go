// Package autogpr tests auto-GPR end to end: the real kube-scheduler with
// gpuspace's plugins (manifests/scheduler/config.yaml), gpuspace's
// controllers (workspace, GPR, auto-GPR) and kube-controller-manager (so a
// Deployment makes its pods), on a real kube-apiserver with simulated GPU
// nodes.
package autogpr

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/apiserver/apiservertest"
	"github.com/gpuspace/gpuspace/controller/template"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
	"github.com/gpuspace/gpuspace/internal/util/kubeclient"
	"github.com/gpuspace/gpuspace/scheduler-plugin/gprpriority"
	"github.com/gpuspace/gpuspace/scheduler-plugin/internal/plugintest"
	"github.com/gpuspace/gpuspace/scheduler-plugin/workspacebinding"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env, testenv.WithControllerManager()) }

// startScheduler runs gpuspace-scheduler's configuration
// (manifests/scheduler/config.yaml, its plugins) in the real kube-scheduler
// until the test ends.
func startScheduler(t *testing.T) {
	t.Helper()
	plugintest.StartScheduler(t, kubeclient.WithLimits(env.Config, 5000, 10000), plugintest.LoadProfiles(t),
		frameworkruntime.Registry{workspacebinding.Name: workspacebinding.New, gprpriority.Name: gprpriority.New})
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond for up to two minutes (a hang guard).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	apiservertest.WaitFor(t, what, 2*time.Minute, cond)
}

// gprsOf lists the GPRs of workspace ws.
func gprsOf(ctx context.Context, t *testing.T, ws string) []v1alpha1.GPUProvisionRequest {
	t.Helper()
	var l v1alpha1.GPUProvisionRequestList
	must(t, env.Client.List(ctx, &l))
	var out []v1alpha1.GPUProvisionRequest
	for _, g := range l.Items {
		if g.Spec.Workspace == ws {
			out = append(out, g)
		}
	}
	return out
}

func podsIn(ctx context.Context, t *testing.T, ns string) []v1.Pod {
	t.Helper()
	l, err := env.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	must(t, err)
	return l.Items
}

// TestAutoGPR: a workspace with an auto-GPR binding and no GPR; a
// Deployment of 3 GPU pods makes exactly one GPR from the default
// template, which is provisioned, and the pods run on its nodes; released
// while the Deployment stands, its pods come back held and make exactly
// one more; with the Deployment deleted and that GPR released, no other
// GPR is made.
func TestAutoGPR(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const ws, ns, tmpl = "auto", "auto-ns", "h100-8x1"
	for _, n := range []string{"ag-h100-0", "ag-h100-1"} {
		_, err := env.AddGPUNode(ctx, testenv.GPUNode{Name: n, InstanceType: "p5.48xlarge", Product: "NVIDIA-H100-80GB-HBM3", MemoryMiB: 81559, GPUs: 8})
		must(t, err)
	}
	apiservertest.StartControllers(t, env.Config, "autogpr-test-controllers")
	startScheduler(t)

	must(t, env.Client.Create(ctx, &v1alpha1.Workspace{
		ObjectMeta: metav1.ObjectMeta{Name: ws},
		Spec: v1alpha1.WorkspaceSpec{Username: "auto", Clusters: []string{v1alpha1.DefaultCluster},
			Namespaces: []v1alpha1.WorkspaceNamespace{{Namespace: ns}}},
	}))
	must(t, env.Client.Create(ctx, &v1alpha1.GPRTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: tmpl},
		Spec: v1alpha1.GPRTemplateSpec{NumberOfGPUs: 8, NumberOfGPUNodes: 1, GPUShape: "H100",
			MemoryPerGPU: 80, Priority: 150, ExitDuration: "0d2h0m"},
	}))
	must(t, env.Client.Create(ctx, &v1alpha1.GPRTemplateBinding{
		ObjectMeta: metav1.ObjectMeta{Name: ws},
		Spec: v1alpha1.GPRTemplateBindingSpec{Workspace: ws, EnableAutoGPR: true,
			Clusters: []v1alpha1.GPRTemplateBindingCluster{{ClusterName: v1alpha1.DefaultCluster, DefaultTemplateName: tmpl, Templates: []string{tmpl}}}},
	}))
	// The namespace, labelled for the workspace, and its default
	// ServiceAccount (the controller-manager's) before the Deployment.
	waitFor(t, "the workspace's namespace", func() bool {
		n, err := env.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil || n.Labels[v1alpha1.LabelWorkspace] != ws {
			return false
		}
		_, err = env.Kube.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
	if g := gprsOf(ctx, t, ws); len(g) != 0 {
		t.Fatalf("GPRs before any pod: %d", len(g))
	}

	labels := map[string]string{"app": "train"}
	gpu := resource.MustParse("1")
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "train"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: v1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: v1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To[int64](0),
					Containers: []v1.Container{{Name: "c", Image: "busybox", Resources: v1.ResourceRequirements{
						Requests: v1.ResourceList{v1alpha1.ResourceGPU: gpu}, Limits: v1.ResourceList{v1alpha1.ResourceGPU: gpu},
					}}},
				},
			},
		},
	}
	_, err := env.Kube.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{})
	must(t, err)

	// Exactly one GPR, from the template, provisioned, the pods on its
	// nodes, and an Event on a held pod naming it.
	g := provisionedAutoGPR(ctx, t, ws, ns, 1)
	if g.Annotations[v1alpha1.AnnotationTemplate] != tmpl {
		t.Errorf("GPR %s annotations %v, want made from %s", g.Name, g.Annotations, tmpl)
	}
	if g.Spec.NumberOfGPUs != 8 || g.Spec.Priority != 150 || g.Spec.ExitDuration != "0d2h0m" || g.Spec.ClusterName != v1alpha1.DefaultCluster {
		t.Errorf("GPR spec %+v is not the template's", g.Spec)
	}
	waitFor(t, "an AutoGPRCreated Event on a pod naming the GPR", func() bool {
		l, err := env.Kube.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
		must(t, err)
		for _, e := range l.Items {
			if e.Reason == template.EventAutoGPRCreated && e.Regarding.Kind == "Pod" && strings.Contains(e.Note, g.Name) {
				return true
			}
		}
		return false
	})

	// Released while the Deployment still wants its pods: they are evicted,
	// come back held, and make the next GPR — one.
	release(ctx, t, g)
	g2 := provisionedAutoGPR(ctx, t, ws, ns, 2)
	if g2.Name == g.Name {
		t.Fatalf("the second auto GPR has the first's name %s", g.Name)
	}

	// Delete the Deployment (its pods go with it), release the GPR: no new
	// GPR.
	must(t, env.Kube.AppsV1().Deployments(ns).Delete(ctx, "train", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)}))
	waitFor(t, "the Deployment's pods to be gone", func() bool { return len(podsIn(ctx, t, ns)) == 0 })
	release(ctx, t, g2)
	time.Sleep(3 * time.Second)
	if gs := gprsOf(ctx, t, ws); len(gs) != 2 {
		t.Errorf("%d GPRs after release with no pods, want still 2: %v", len(gs), names(gs))
	}
}

// provisionedAutoGPR waits until workspace ws has exactly n GPRs, the
// newest one auto GPR number n and Provisioned, the others finished, and
// three Running pods in ns, all on its nodes; it fails as soon as there
// are more than n GPRs or two unfinished ones.
func provisionedAutoGPR(ctx context.Context, t *testing.T, ws, ns string, n int) v1alpha1.GPUProvisionRequest {
	t.Helper()
	var g v1alpha1.GPUProvisionRequest
	waitFor(t, fmt.Sprintf("auto GPR %d to be provisioned", n), func() bool {
		gs := gprsOf(ctx, t, ws)
		active := 0
		for _, x := range gs {
			if x.Status.ProvisioningStatus != v1alpha1.GPRComplete && x.Status.ProvisioningStatus != v1alpha1.GPRError {
				active++
			}
			if x.Labels[v1alpha1.LabelAutoGPRSequence] == fmt.Sprint(n) {
				g = x
			}
		}
		if len(gs) > n || active > 1 {
			t.Fatalf("GPRs of %s: %v; want at most %d, one at a time", ws, names(gs), n)
		}
		return len(gs) == n && g.Name != "" && g.Status.ProvisioningStatus == v1alpha1.GPRProvisioned
	})
	if g.Labels[v1alpha1.LabelAutoGPR] != ws {
		t.Errorf("GPR %s labels %v, want made by auto-GPR for %s", g.Name, g.Labels, ws)
	}
	waitFor(t, fmt.Sprintf("3 pods running on auto GPR %d's nodes", n), func() bool {
		running := 0
		for _, p := range podsIn(ctx, t, ns) {
			if p.Status.Phase == v1.PodRunning && p.DeletionTimestamp == nil {
				if !slices.Contains(g.Status.Nodes, p.Spec.NodeName) {
					return false // an evicted pod of the last GPR, on its way out
				}
				running++
			}
		}
		return running == 3
	})
	return g
}

// release early-releases g and waits until it is Complete.
func release(ctx context.Context, t *testing.T, g v1alpha1.GPUProvisionRequest) {
	t.Helper()
	orig := g.DeepCopy()
	g.Spec.EarlyRelease = true
	must(t, env.Client.Patch(ctx, &g, client.MergeFrom(orig)))
	waitFor(t, "GPR "+g.Name+" to complete", func() bool {
		var cur v1alpha1.GPUProvisionRequest
		must(t, env.Client.Get(ctx, client.ObjectKeyFromObject(&g), &cur))
		return cur.Status.ProvisioningStatus == v1alpha1.GPRComplete
	})
}

func names(gs []v1alpha1.GPUProvisionRequest) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = fmt.Sprintf("%s (%s)", g.Name, g.Status.ProvisioningStatus)
	}
	return out
}
