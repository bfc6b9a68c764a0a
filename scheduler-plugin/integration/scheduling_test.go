package integration

import (
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	schedulerapi "k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/utils/ptr"

	gpuspacev1alpha1 "github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/scheduler-plugin/workspacebinding"
)

// TestExclusiveBinding: a workspace's GPU pods land only on its nodes;
// other pods never land on bound nodes; DaemonSet pods do; when the GPR
// completes, new GPU pods of the workspace are held again.
func TestExclusiveBinding(t *testing.T) {
	ctx := ctxFor(t)
	for _, n := range []string{"ex-a1", "ex-a2", "ex-b1", "ex-free1", "ex-free2"} {
		addNode(ctx, t, n, 8)
	}
	createNamespace(ctx, t, "ex-alpha", "ex-alpha")
	createNamespace(ctx, t, "ex-beta", "ex-beta")
	createNamespace(ctx, t, "ex-plain", "")
	alpha := createGPR(ctx, t, "gpr-ex-alpha", "ex-alpha", 150, gpuspacev1alpha1.GPRProvisioned, nil, "ex-a1", "ex-a2")
	createGPR(ctx, t, "gpr-ex-beta", "ex-beta", 120, gpuspacev1alpha1.GPRProvisioned, nil, "ex-b1")
	bindNode(ctx, t, "ex-a1", "ex-alpha", "gpr-ex-alpha")
	bindNode(ctx, t, "ex-a2", "ex-alpha", "gpr-ex-alpha")
	bindNode(ctx, t, "ex-b1", "ex-beta", "gpr-ex-beta")
	startScheduler(t, loadProfiles(t), registry())

	boundTo := map[string]string{"ex-a1": "ex-alpha", "ex-a2": "ex-alpha", "ex-b1": "ex-beta"}
	type podCase struct {
		pod *v1.Pod
		// allowed are the nodes it may land on; nil: any node not bound.
		allowed []string
	}
	var cases []podCase
	for i := range 6 {
		cases = append(cases, podCase{gpuPod("ex-alpha", fmt.Sprintf("gpu-%d", i)), []string{"ex-a1", "ex-a2"}})
	}
	for i := range 3 {
		cases = append(cases, podCase{gpuPod("ex-beta", fmt.Sprintf("gpu-%d", i)), []string{"ex-b1"}})
	}
	for i := range 10 {
		cases = append(cases, podCase{cpuPod("ex-plain", fmt.Sprintf("cpu-%d", i)), nil})
		cases = append(cases, podCase{gpuPod("ex-plain", fmt.Sprintf("gpu-%d", i)), nil})
	}
	for _, c := range cases {
		createPod(ctx, t, c.pod)
	}
	for _, c := range cases {
		p := waitPod(ctx, t, c.pod.Namespace, c.pod.Name, "bound", bound)
		switch {
		case c.allowed != nil && !slices.Contains(c.allowed, p.Spec.NodeName):
			t.Errorf("pod %s/%s on %s, want one of %v", p.Namespace, p.Name, p.Spec.NodeName, c.allowed)
		case c.allowed == nil && boundTo[p.Spec.NodeName] != "":
			t.Errorf("pod %s/%s of no workspace on %s, bound to %s", p.Namespace, p.Name, p.Spec.NodeName, boundTo[p.Spec.NodeName])
		}
	}

	t.Run("a stranger's pod aimed at a bound node stays pending", func(t *testing.T) {
		for _, ns := range []string{"ex-plain", "ex-beta"} {
			p := cpuPod(ns, "aimed")
			p.Spec.NodeSelector = map[string]string{v1.LabelHostname: "ex-a1"}
			createPod(ctx, t, p)
			got := waitPod(ctx, t, ns, "aimed", "found unschedulable", unschedulable)
			if got.Spec.NodeName != "" {
				t.Errorf("%s/aimed bound to %s", ns, got.Spec.NodeName)
			}
		}
	})

	t.Run("DaemonSet pods run on bound nodes", func(t *testing.T) {
		ds := &appsv1.DaemonSet{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ex-plain", Name: "agent"},
			Spec: appsv1.DaemonSetSpec{
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}},
				Template: v1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "agent"}},
					Spec:       cpuPod("", "").Spec,
				},
			},
		}
		ds, err := env.Kube.AppsV1().DaemonSets("ex-plain").Create(ctx, ds, metav1.CreateOptions{})
		must(t, err)
		// What the DaemonSet controller creates (no controller-manager
		// runs here): a pod it controls, pinned by node affinity.
		for _, node := range []string{"ex-a1", "ex-b1"} {
			p := cpuPod("ex-plain", "agent-"+node)
			p.Labels = map[string]string{"app": "agent"}
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: ds.Name, UID: ds.UID, Controller: ptr.To(true)}}
			p.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{
				NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchFields: []v1.NodeSelectorRequirement{{Key: "metadata.name", Operator: v1.NodeSelectorOpIn, Values: []string{node}}}}},
			}}}
			createPod(ctx, t, p)
			if got := waitPod(ctx, t, p.Namespace, p.Name, "bound", bound); got.Spec.NodeName != node {
				t.Errorf("%s on %s, want %s", p.Name, got.Spec.NodeName, node)
			}
		}
	})

	t.Run("after the GPR completes, new GPU pods are held", func(t *testing.T) {
		setGPRStatus(ctx, t, alpha, gpuspacev1alpha1.GPRComplete, nil)
		createPod(ctx, t, gpuPod("ex-alpha", "after-complete"))
		got := waitPod(ctx, t, "ex-alpha", "after-complete", "held", heldFor)
		if got.Spec.NodeName != "" {
			t.Errorf("bound to %s", got.Spec.NodeName)
		}
		want := "workspace ex-alpha has no queued or provisioned GPUProvisionRequest" + workspacebinding.NoGPRHint
		if msg := scheduledCondition(got).Message; msg != want {
			t.Errorf("message %q, want %q", msg, want)
		}
		// CPU pods of the workspace are not held.
		createPod(ctx, t, cpuPod("ex-alpha", "cpu-after-complete"))
		waitPod(ctx, t, "ex-alpha", "cpu-after-complete", "bound", bound)
	})
}

// TestHeldPodBindsWhenProvisioned measures, over 100 runs, the time from
// a held pod's GPR becoming Provisioned (its status naming the node; the
// node labelled beforehand, so the label is not what is timed) to the
// pod's binding,
// and reports the percentiles. It asserts the behaviour (held, then bound
// to the workspace's node), not the time.
func TestHeldPodBindsWhenProvisioned(t *testing.T) {
	ctx := ctxFor(t)
	runs := 100
	if testing.Short() {
		runs = 10
	}
	nodes := []string{"lat-1", "lat-2"}
	for _, n := range nodes {
		addNode(ctx, t, n, 8)
	}
	startScheduler(t, loadProfiles(t), registry())

	estimate := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	var lat []time.Duration
	for i := range runs {
		ws := fmt.Sprintf("lat-%d", i)
		node := nodes[i%len(nodes)]
		createNamespace(ctx, t, ws, ws)
		g := createGPR(ctx, t, "gpr-"+ws, ws, 101, gpuspacev1alpha1.GPRQueued, &estimate)
		createPod(ctx, t, gpuPod(ws, "p"))
		held := waitPod(ctx, t, ws, "p", "held", heldFor)
		if i == 0 {
			want := fmt.Sprintf("waiting for GPUProvisionRequest gpr-%s of workspace %s (Queued, priority 101); estimated start: 2026-11-22T12:00:00Z", ws, ws)
			if msg := scheduledCondition(held).Message; msg != want {
				t.Errorf("held pod's message %q, want %q", msg, want)
			}
		}
		bindNode(ctx, t, node, ws, g.Name)

		w, err := env.Kube.CoreV1().Pods(ws).Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", "p").String(), ResourceVersion: held.ResourceVersion})
		must(t, err)
		start := time.Now()
		setGPRStatus(ctx, t, g, gpuspacev1alpha1.GPRProvisioned, nil, node)
		var got *v1.Pod
		for ev := range w.ResultChan() {
			if p, ok := ev.Object.(*v1.Pod); ok && ev.Type == watch.Modified && p.Spec.NodeName != "" {
				got = p
				break
			}
		}
		lat = append(lat, time.Since(start))
		w.Stop()
		if got == nil {
			t.Fatalf("run %d: watch ended before the pod was bound", i)
		}
		if got.Spec.NodeName != node {
			t.Errorf("run %d: pod bound to %s, want %s", i, got.Spec.NodeName, node)
		}
		// Release, as the controller does on completion.
		setGPRStatus(ctx, t, g, gpuspacev1alpha1.GPRComplete, nil)
		must(t, env.Kube.CoreV1().Pods(ws).Delete(ctx, "p", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}))
		bindNode(ctx, t, node, "", "")
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration { return lat[int(float64(len(lat)-1)*p)] }
	t.Logf("held pod → bound after its GPR is provisioned, %d runs: p50 %s, p90 %s, p99 %s, max %s",
		len(lat), pct(0.5).Round(10*time.Microsecond), pct(0.9).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond))
}

// TestQueueSortByGPRPriority lets three pods compete for one slot (the same
// host port on one node): the first popped wins. With GPRPriority the
// pod of the workspace with the highest GPR priority wins although it has
// the lowest pod priority; with PrioritySort (the control) the pod with
// the highest pod priority wins.
func TestQueueSortByGPRPriority(t *testing.T) {
	ctx := ctxFor(t)
	addNode(ctx, t, "qs-node", 8)
	for _, pc := range []struct {
		name  string
		value int32
	}{{"qs-high", 1000}, {"qs-mid", 500}} {
		_, err := env.Kube.SchedulingV1().PriorityClasses().Create(ctx, &schedulingv1.PriorityClass{
			ObjectMeta: metav1.ObjectMeta{Name: pc.name}, Value: pc.value,
			// The losers must wait, not preempt the winner.
			PreemptionPolicy: ptr.To(v1.PreemptNever),
		}, metav1.CreateOptions{})
		must(t, err)
	}
	// Workspace GPR priorities 50, 150, 250; pod priorities the reverse.
	type member struct {
		ws          string
		gprPriority int32
		podClass    string
	}
	members := []member{{"qs-low", 50, "qs-high"}, {"qs-medium", 150, "qs-mid"}, {"qs-top", 250, ""}}
	for _, m := range members {
		createNamespace(ctx, t, m.ws, m.ws)
		createGPR(ctx, t, "gpr-"+m.ws, m.ws, m.gprPriority, gpuspacev1alpha1.GPRQueued, nil)
	}
	race := func(t *testing.T, round string, profiles []schedulerapi.KubeSchedulerProfile) string {
		var names []string
		for _, m := range members {
			p := cpuPod(m.ws, "qs-"+round)
			p.Spec.PriorityClassName = m.podClass
			p.Spec.NodeSelector = map[string]string{v1.LabelHostname: "qs-node"}
			p.Spec.Containers[0].Ports = []v1.ContainerPort{{ContainerPort: 80, HostPort: 7777}}
			createPod(ctx, t, p)
			names = append(names, m.ws)
		}
		// All three are queued before the scheduler starts, so the sort
		// alone picks the first.
		startScheduler(t, profiles, registry())
		winner := ""
		for _, ns := range names {
			p := waitPod(ctx, t, ns, "qs-"+round, "bound or found unschedulable", func(p *v1.Pod) bool { return bound(p) || unschedulable(p) })
			if bound(p) {
				if winner != "" {
					t.Fatalf("two pods bound: %s and %s", winner, ns)
				}
				winner = ns
			}
		}
		for _, ns := range names {
			must(t, env.Kube.CoreV1().Pods(ns).Delete(ctx, "qs-"+round, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}))
		}
		return winner
	}
	t.Run("GPRPriority", func(t *testing.T) {
		if got := race(t, "gpr", loadProfiles(t)); got != "qs-top" {
			t.Errorf("first scheduled: %s, want qs-top (GPR priority 250)", got)
		}
	})
	t.Run("PrioritySort control", func(t *testing.T) {
		profiles := loadProfiles(t)
		profiles[0].Plugins.QueueSort = schedulerapi.PluginSet{Enabled: []schedulerapi.Plugin{{Name: "PrioritySort"}}}
		if got := race(t, "control", profiles); got != "qs-low" {
			t.Errorf("first scheduled: %s, want qs-low (pod priority 1000)", got)
		}
	})
}
