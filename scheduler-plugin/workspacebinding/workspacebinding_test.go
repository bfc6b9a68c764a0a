package workspacebinding

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	gpuspacev1alpha1 "github.com/gpuspace/gpuspace/api/v1alpha1"
	configv1 "github.com/gpuspace/gpuspace/scheduler-plugin/apis/config/v1"
	pt "github.com/gpuspace/gpuspace/scheduler-plugin/internal/plugintest"
)

var estimate = time.Date(2026, 11, 22, 9, 30, 0, 0, time.UTC)

// cluster is the fixture most tests share: workspace "alpha" is
// provisioned and holds node-a1 and node-a2 (status and labels) and
// node-a3 (status only: not labelled yet); "beta" is provisioned and holds
// node-b1; "gamma" waits for two queued GPRs; "delta" is provisioned but
// its status names no node yet; "epsilon" waits for one GPR whose likely
// start is earlier than its latest; "omega" has only a completed GPR, whose
// node-o1 still carries omega's label and taint; node-free is unbound.
func cluster() ([]runtime.Object, []*gpuspacev1alpha1.GPUProvisionRequest) {
	objs := []runtime.Object{
		pt.Namespace("team-a", "alpha"), pt.Namespace("team-b", "beta"), pt.Namespace("team-g", "gamma"),
		pt.Namespace("team-d", "delta"), pt.Namespace("team-o", "omega"), pt.Namespace("team-e", "epsilon"),
		pt.Namespace("plain", ""), pt.Namespace("kube-system", ""),
		pt.Node("node-a1", "alpha"), pt.Node("node-a2", "alpha"), pt.Node("node-a3", ""), pt.Node("node-b1", "beta"),
		pt.Node("node-o1", "omega"), pt.Node("node-free", ""),
	}
	gprs := []*gpuspacev1alpha1.GPUProvisionRequest{
		pt.WithNodes(pt.GPR("gpr-alpha", "alpha", 150, gpuspacev1alpha1.GPRProvisioned), "node-a1", "node-a2", "node-a3"),
		pt.WithNodes(pt.GPR("gpr-beta", "beta", 120, gpuspacev1alpha1.GPRProvisioned), "node-b1"),
		pt.WithEstimate(pt.GPR("gpr-gamma-low", "gamma", 50, gpuspacev1alpha1.GPRQueued), estimate.Add(time.Hour)),
		pt.WithEstimate(pt.GPR("gpr-gamma-high", "gamma", 250, gpuspacev1alpha1.GPRQueued), estimate),
		pt.GPR("gpr-delta", "delta", 101, gpuspacev1alpha1.GPRProvisioned),
		pt.WithLatest(pt.WithEstimate(pt.GPR("gpr-epsilon", "epsilon", 100, gpuspacev1alpha1.GPRQueued), estimate), estimate.Add(2*time.Hour)),
		pt.WithNodes(pt.GPR("gpr-omega", "omega", 101, gpuspacev1alpha1.GPRComplete), "node-o1"),
	}
	return objs, gprs
}

type fixture struct {
	pl *WorkspaceBinding
	h  *pt.Handle
}

func newFixture(t testing.TB, args runtime.Object) (context.Context, *fixture) {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	objs, gprs := cluster()
	h := pt.NewHandle(ctx, t, objs, gprs...)
	pl, err := newPlugin(ctx, args, h.Handle, h.NewDynamic())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.Start(ctx)
	return ctx, &fixture{pl: pl, h: h}
}

func newBenchFixture(b *testing.B) (context.Context, *fixture) {
	return newFixture(b, noConditions())
}

func noConditions() runtime.Object {
	return &configv1.WorkspaceBindingArgs{UpdatePodCondition: pt.Ptr(false)}
}

type result struct {
	Code    fwk.Code
	Message string
}

func resultOf(s *fwk.Status) result { return result{Code: s.Code(), Message: s.Message()} }

func TestPreEnqueue(t *testing.T) {
	ctx, f := newFixture(t, noConditions())
	tests := []struct {
		name string
		pod  *v1.Pod
		want result
	}{
		{"provisioned workspace, GPU pod", pt.GPUPod("team-a", "p").Obj(), result{}},
		{"queued workspace, CPU pod", pt.Pod("team-g", "p").Obj(), result{}},
		{"no workspace, GPU pod", pt.GPUPod("plain", "p").Obj(), result{}},
		{"system namespace, GPU pod", pt.GPUPod("kube-system", "p").Obj(), result{}},
		{"DaemonSet GPU pod of a queued workspace", pt.DaemonSetPod(pt.GPUPod("team-g", "p")).Obj(), result{}},
		{"queued workspace, GPU pod: waits for its highest-priority GPR", pt.GPUPod("team-g", "p").Obj(), result{
			Code:    fwk.UnschedulableAndUnresolvable,
			Message: "waiting for GPUProvisionRequest gpr-gamma-high of workspace gamma (Queued, priority 250); estimated start: 2026-11-22T09:30:00Z",
		}},
		{"queued workspace whose GPR starts likely earlier than at the latest: both starts", pt.GPUPod("team-e", "p").Obj(), result{
			Code:    fwk.UnschedulableAndUnresolvable,
			Message: "waiting for GPUProvisionRequest gpr-epsilon of workspace epsilon (Queued, priority 100); likely start: 2026-11-22T09:30:00Z, at the latest: 2026-11-22T11:30:00Z",
		}},
		{"provisioned but no bound node yet", pt.GPUPod("team-d", "p").Obj(), result{
			Code:    fwk.UnschedulableAndUnresolvable,
			Message: "GPUProvisionRequest gpr-delta of workspace delta is provisioned; waiting for its nodes to be bound",
		}},
		{"only a completed GPR", pt.GPUPod("team-o", "p").Obj(), result{
			Code:    fwk.UnschedulableAndUnresolvable,
			Message: "workspace omega has no queued or provisioned GPUProvisionRequest" + NoGPRHint,
		}},
		{"GPU memory counts as GPU", pt.Pod("team-o", "p").Req(map[v1.ResourceName]string{gpuspacev1alpha1.ResourceGPUMemory: "10"}).Obj(), result{
			Code:    fwk.UnschedulableAndUnresolvable,
			Message: "workspace omega has no queued or provisioned GPUProvisionRequest" + NoGPRHint,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := resultOf(f.pl.PreEnqueue(ctx, tt.pod))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("PreEnqueue (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPreEnqueueWritesPodCondition(t *testing.T) {
	ctx, f := newFixture(t, nil)
	pod := pt.GPUPod("team-g", "held").Obj()
	if _, err := f.h.Client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	st := f.pl.PreEnqueue(ctx, pod)
	if st.Code() != fwk.UnschedulableAndUnresolvable {
		t.Fatalf("PreEnqueue = %v, want the pod held", st)
	}
	var got *v1.PodCondition
	if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := f.h.Client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for i := range p.Status.Conditions {
			if p.Status.Conditions[i].Type == v1.PodScheduled {
				got = &p.Status.Conditions[i]
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		t.Fatalf("no PodScheduled condition written: %v", err)
	}
	want := v1.PodCondition{Type: v1.PodScheduled, Status: v1.ConditionFalse, Reason: ReasonWaitingForGPR, Message: st.Message()}
	if diff := cmp.Diff(want, *got, cmpIgnoreTimes); diff != "" {
		t.Errorf("condition (-want +got):\n%s", diff)
	}
}

var cmpIgnoreTimes = cmp.FilterPath(func(p cmp.Path) bool {
	return strings.HasSuffix(p.String(), "Time")
}, cmp.Ignore())

func TestPreFilter(t *testing.T) {
	ctx, f := newFixture(t, noConditions())
	tests := []struct {
		name      string
		pod       *v1.Pod
		wantNodes sets.Set[string]
		want      result
	}{
		{"workspace GPU pod: the nodes its GPR holds, labelled or not", pt.GPUPod("team-a", "p").Obj(), sets.New("node-a1", "node-a2", "node-a3"), result{}},
		{"workspace CPU pod: all nodes", pt.Pod("team-a", "p").Obj(), nil, result{}},
		{"no workspace: all nodes", pt.GPUPod("plain", "p").Obj(), nil, result{}},
		{"exempt: all nodes", pt.GPUPod("kube-system", "p").Obj(), nil, result{}},
		{"workspace without bound nodes", pt.GPUPod("team-d", "p").Obj(), nil, result{Code: fwk.UnschedulableAndUnresolvable, Message: "no node is bound to workspace delta"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, st := f.pl.PreFilter(ctx, framework.NewCycleState(), tt.pod, nil)
			if diff := cmp.Diff(tt.want, resultOf(st)); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
			var got sets.Set[string]
			if res != nil {
				got = res.NodeNames
			}
			if diff := cmp.Diff(tt.wantNodes, got); diff != "" {
				t.Errorf("nodes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFilter(t *testing.T) {
	ctx, f := newFixture(t, noConditions())
	gpuTaint := v1.Taint{Key: "gpu", Value: "true", Effect: v1.TaintEffectNoSchedule}
	tainted := pt.Node("node-tainted", "")
	tainted.Spec.Taints = []v1.Taint{gpuTaint}
	// Half-bound: the taint without the label (a controller mid-way).
	halfBound := pt.Node("node-half", "")
	halfBound.Spec.Taints = []v1.Taint{{Key: gpuspacev1alpha1.TaintWorkspace, Value: "alpha", Effect: v1.TaintEffectNoSchedule}}
	preferOnly := pt.Node("node-prefer", "")
	preferOnly.Spec.Taints = []v1.Taint{{Key: "x", Effect: v1.TaintEffectPreferNoSchedule}}
	nodes := map[string]*v1.Node{
		"a1": pt.Node("node-a1", "alpha"), "b1": pt.Node("node-b1", "beta"), "free": pt.Node("node-free", ""),
		"tainted": tainted, "half": halfBound, "prefer": preferOnly,
		// Held by alpha's status, not labelled yet (the controller died
		// between the status write and the label).
		"a3": pt.Node("node-a3", ""),
		// Released: omega's GPR is Complete, its label and taint linger.
		"o1": pt.Node("node-o1", "omega"),
		// Held by alpha now, still labelled and tainted for beta.
		"a3-stale": pt.Node("node-a3", "beta"),
		// Labelled for alpha, but no GPR of alpha names it.
		"own-label-only": pt.Node("node-x", "alpha"),
	}
	tests := []struct {
		name string
		pod  *v1.Pod
		node string
		want result
	}{
		{"own GPU pod on own bound node passes the workspace taint", pt.GPUPod("team-a", "p").Obj(), "a1", result{}},
		{"own CPU pod on own bound node", pt.Pod("team-a", "p").Obj(), "a1", result{}},
		{"own GPU pod on an unbound node", pt.GPUPod("team-a", "p").Obj(), "free", result{fwk.UnschedulableAndUnresolvable, ErrReasonNotBound}},
		{"own GPU pod on another workspace's node", pt.GPUPod("team-a", "p").Obj(), "b1", result{fwk.UnschedulableAndUnresolvable, ErrReasonBoundElsewhere}},
		{"workspace CPU pod on an unbound node", pt.Pod("team-a", "p").Obj(), "free", result{}},
		{"workspace CPU pod on another workspace's node", pt.Pod("team-a", "p").Obj(), "b1", result{fwk.UnschedulableAndUnresolvable, ErrReasonBoundElsewhere}},
		{"pod of no workspace on a bound node", pt.Pod("plain", "p").Obj(), "a1", result{fwk.UnschedulableAndUnresolvable, ErrReasonBoundElsewhere}},
		{"GPU pod of no workspace on a bound node", pt.GPUPod("plain", "p").Obj(), "a1", result{fwk.UnschedulableAndUnresolvable, ErrReasonBoundElsewhere}},
		{"pod of no workspace on an unbound node", pt.GPUPod("plain", "p").Obj(), "free", result{}},
		{"pod of no workspace tolerating the taint is still kept off", pt.Pod("plain", "p").Toleration(gpuspacev1alpha1.TaintWorkspace).Obj(), "a1", result{fwk.UnschedulableAndUnresolvable, ErrReasonBoundElsewhere}},
		{"DaemonSet pod on a bound node", pt.DaemonSetPod(pt.Pod("plain", "p")).Obj(), "a1", result{}},
		{"system pod on a bound node", pt.Pod("kube-system", "p").Obj(), "b1", result{}},
		{"other taints still apply", pt.Pod("plain", "p").Obj(), "tainted", result{fwk.UnschedulableAndUnresolvable, ErrReasonTaint}},
		{"other taints still apply to exempt pods", pt.Pod("kube-system", "p").Obj(), "tainted", result{fwk.UnschedulableAndUnresolvable, ErrReasonTaint}},
		{"tolerated taint", pt.Pod("plain", "p").Toleration("gpu").Obj(), "tainted", result{}},
		{"PreferNoSchedule is not a filter", pt.Pod("plain", "p").Obj(), "prefer", result{}},
		{"workspace taint without label keeps strangers off", pt.Pod("plain", "p").Obj(), "half", result{fwk.UnschedulableAndUnresolvable, ErrReasonTaint}},
		{"workspace taint without label admits the workspace's CPU pods", pt.Pod("team-a", "p").Obj(), "half", result{}},
		{"another workspace's taint", pt.Pod("team-b", "p").Obj(), "half", result{fwk.UnschedulableAndUnresolvable, ErrReasonTaint}},
		{"held, not labelled yet: the holder's GPU pod", pt.GPUPod("team-a", "p").Obj(), "a3", result{}},
		{"held, not labelled yet: another workspace's pod", pt.Pod("team-b", "p").Obj(), "a3", result{fwk.UnschedulableAndUnresolvable, ErrReasonBoundElsewhere}},
		{"held, not labelled yet: another workspace's GPU pod", pt.GPUPod("team-b", "p").Obj(), "a3", result{fwk.UnschedulableAndUnresolvable, ErrReasonBoundElsewhere}},
		{"held, not labelled yet: a pod of no workspace", pt.Pod("plain", "p").Obj(), "a3", result{fwk.UnschedulableAndUnresolvable, ErrReasonBoundElsewhere}},
		{"held, not labelled yet: exempt pods", pt.Pod("kube-system", "p").Obj(), "a3", result{}},
		{"held, stale label of the last holder: the holder passes its taint", pt.GPUPod("team-a", "p").Obj(), "a3-stale", result{}},
		{"held, stale label of the last holder: the last holder's pod", pt.Pod("team-b", "p").Obj(), "a3-stale", result{fwk.UnschedulableAndUnresolvable, ErrReasonBoundElsewhere}},
		{"released, label lingers: the old workspace's GPU pod", pt.GPUPod("team-o", "p").Obj(), "o1", result{fwk.UnschedulableAndUnresolvable, ErrReasonNotBound}},
		{"released, label lingers: the old workspace's CPU pod", pt.Pod("team-o", "p").Obj(), "o1", result{}},
		{"released, label lingers: another workspace's GPU pod", pt.GPUPod("team-a", "p").Obj(), "o1", result{fwk.UnschedulableAndUnresolvable, ErrReasonBoundElsewhere}},
		{"released, label lingers: a pod of no workspace", pt.Pod("plain", "p").Obj(), "o1", result{fwk.UnschedulableAndUnresolvable, ErrReasonBoundElsewhere}},
		{"labelled for a workspace whose GPR does not name it", pt.GPUPod("team-a", "p").Obj(), "own-label-only", result{fwk.UnschedulableAndUnresolvable, ErrReasonNotBound}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := framework.NewCycleState()
			// PreFilter may already rule every node out (a workspace
			// whose GPR holds none); Filter must refuse the node too.
			if _, st := f.pl.PreFilter(ctx, cs, tt.pod, nil); !st.IsSuccess() && st.Code() != fwk.UnschedulableAndUnresolvable {
				t.Fatalf("PreFilter: %v", st)
			}
			ni := framework.NewNodeInfo()
			ni.SetNode(nodes[tt.node])
			got := resultOf(f.pl.Filter(ctx, cs, tt.pod, ni))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Filter (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFilterWithoutPreFilterIsAnError(t *testing.T) {
	ctx, f := newFixture(t, noConditions())
	ni := framework.NewNodeInfo()
	ni.SetNode(pt.Node("node-free", ""))
	if st := f.pl.Filter(ctx, framework.NewCycleState(), pt.Pod("plain", "p").Obj(), ni); st.Code() != fwk.Error {
		t.Errorf("Filter = %v, want Error", st)
	}
}

func TestSignPod(t *testing.T) {
	ctx, f := newFixture(t, noConditions())
	sign := func(p *v1.Pod) []fwk.SignFragment {
		fr, st := f.pl.SignPod(ctx, p)
		if !st.IsSuccess() {
			t.Fatalf("SignPod: %v", st)
		}
		return fr
	}
	base := sign(pt.GPUPod("team-a", "p1").Obj())
	tests := []struct {
		name string
		pod  *v1.Pod
		same bool
	}{
		{"another pod of the same shape", pt.GPUPod("team-a", "p2").Obj(), true},
		{"another namespace", pt.GPUPod("team-b", "p1").Obj(), false},
		{"not a GPU pod", pt.Pod("team-a", "p1").Obj(), false},
		{"a DaemonSet pod", pt.DaemonSetPod(pt.GPUPod("team-a", "p1")).Obj(), false},
		{"other tolerations", pt.GPUPod("team-a", "p1").Toleration("x").Obj(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if same := cmp.Equal(base, sign(tt.pod)); same != tt.same {
				t.Errorf("same signature = %v, want %v", same, tt.same)
			}
		})
	}
}

func TestEventsToRegister(t *testing.T) {
	ctx, f := newFixture(t, noConditions())
	evs, err := f.pl.EventsToRegister(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		if e.QueueingHintFn == nil {
			t.Errorf("event %s has no queueing hint", e.Event.Label())
		}
		got = append(got, string(e.Event.Resource))
	}
	want := []string{"gpuprovisionrequests.v1alpha1.gpuspace.io", "Node", "TargetPod"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("resources (-want +got):\n%s", diff)
	}
}

func TestIsSchedulableAfterGPRChange(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	provisioned := func(g *gpuspacev1alpha1.GPUProvisionRequest) *gpuspacev1alpha1.GPUProvisionRequest {
		g.Status.ProvisioningStatus = gpuspacev1alpha1.GPRProvisioned
		return g
	}
	tests := []struct {
		name     string
		pod      *v1.Pod
		old, new *gpuspacev1alpha1.GPUProvisionRequest
		want     fwk.QueueingHint
		// wantHeld is PreEnqueue's verdict after the event.
		wantHeld bool
	}{
		{
			name: "GPR provisioned with its nodes: queue", pod: pt.GPUPod("team-g", "p").Obj(),
			old: pt.GPR("gpr-gamma-high", "gamma", 250, gpuspacev1alpha1.GPRQueued), new: provisioned(pt.WithNodes(pt.GPR("gpr-gamma-high", "gamma", 250, ""), "node-new")),
			want: fwk.Queue,
		},
		{
			name: "GPR provisioned, no node in its status yet: skip", pod: pt.GPUPod("team-g", "p").Obj(),
			old: pt.GPR("gpr-gamma-high", "gamma", 250, gpuspacev1alpha1.GPRQueued), new: provisioned(pt.GPR("gpr-gamma-high", "gamma", 250, "")),
			want: fwk.QueueSkip, wantHeld: true,
		},
		{
			name: "another workspace's GPR: skip", pod: pt.GPUPod("team-o", "p").Obj(),
			old: pt.GPR("gpr-gamma-high", "gamma", 250, gpuspacev1alpha1.GPRQueued), new: provisioned(pt.WithNodes(pt.GPR("gpr-gamma-high", "gamma", 250, ""), "node-new")),
			want: fwk.QueueSkip, wantHeld: true,
		},
		{
			name: "another workspace's GPR completes: its nodes may take a stranger's pod", pod: pt.Pod("plain", "p").Obj(),
			old: pt.WithNodes(pt.GPR("gpr-alpha", "alpha", 150, gpuspacev1alpha1.GPRProvisioned), "node-a1"), new: pt.WithNodes(pt.GPR("gpr-alpha", "alpha", 150, gpuspacev1alpha1.GPRComplete), "node-a1"),
			want: fwk.Queue,
		},
		{
			name: "another workspace's GPR deleted while holding nodes", pod: pt.GPUPod("team-b", "p").Obj(),
			old:  pt.WithNodes(pt.GPR("gpr-alpha", "alpha", 150, gpuspacev1alpha1.GPRProvisioned), "node-a1"),
			want: fwk.Queue,
		},
		{
			name: "another workspace's GPR provisioned: nothing freed", pod: pt.Pod("plain", "p").Obj(),
			old: pt.GPR("gpr-gamma-high", "gamma", 250, gpuspacev1alpha1.GPRQueued), new: provisioned(pt.WithNodes(pt.GPR("gpr-gamma-high", "gamma", 250, ""), "node-new")),
			want: fwk.QueueSkip,
		},
		{
			name: "estimate moved: skip, still held", pod: pt.GPUPod("team-g", "p").Obj(),
			old:  pt.GPR("gpr-gamma-high", "gamma", 250, gpuspacev1alpha1.GPRQueued),
			new:  pt.WithEstimate(pt.GPR("gpr-gamma-high", "gamma", 250, gpuspacev1alpha1.GPRQueued), estimate.Add(time.Minute)),
			want: fwk.QueueSkip, wantHeld: true,
		},
		{
			name: "GPR completed: skip, held again", pod: pt.GPUPod("team-a", "p").Obj(),
			old: pt.GPR("gpr-alpha", "alpha", 150, gpuspacev1alpha1.GPRProvisioned), new: pt.GPR("gpr-alpha", "alpha", 150, gpuspacev1alpha1.GPRComplete),
			want: fwk.QueueSkip, wantHeld: true,
		},
		{
			name: "GPR deleted: skip", pod: pt.GPUPod("team-a", "p").Obj(),
			old:  pt.GPR("gpr-alpha", "alpha", 150, gpuspacev1alpha1.GPRProvisioned),
			want: fwk.QueueSkip, wantHeld: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, f := newFixture(t, noConditions())
			var newObj any
			if tt.new != nil {
				newObj = tt.new
			}
			got, err := f.pl.isSchedulableAfterGPRChange(logger, tt.pod, tt.old, newObj)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("hint = %v, want %v", got, tt.want)
			}
			// The hint brought the index up to the event: PreEnqueue
			// agrees with it without waiting for the plugin's informer.
			if held := !f.pl.PreEnqueue(ctx, tt.pod).IsSuccess(); held != tt.wantHeld {
				t.Errorf("held after the event = %v, want %v", held, tt.wantHeld)
			}
		})
	}
}

func TestIsSchedulableAfterNodeChange(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	withTaint := func(n *v1.Node, key string) *v1.Node {
		n.Spec.Taints = append(n.Spec.Taints, v1.Taint{Key: key, Effect: v1.TaintEffectNoSchedule})
		return n
	}
	tests := []struct {
		name     string
		pod      *v1.Pod
		old, new *v1.Node
		want     fwk.QueueingHint
	}{
		{"held node loses a taint the pod did not tolerate", pt.GPUPod("team-a", "p").Obj(), withTaint(pt.Node("node-a1", "alpha"), "x"), pt.Node("node-a1", "alpha"), fwk.Queue},
		{"new node held by the pod's workspace", pt.GPUPod("team-a", "p").Obj(), nil, pt.Node("node-a3", ""), fwk.Queue},
		{"a label alone does not bind a node to the pod's workspace", pt.GPUPod("team-a", "p").Obj(), pt.Node("n", ""), pt.Node("n", "alpha"), fwk.QueueSkip},
		{"a label alone does not release a held pod", pt.GPUPod("team-d", "p").Obj(), pt.Node("n", ""), pt.Node("n", "delta"), fwk.QueueSkip},
		{"node bound to another workspace", pt.GPUPod("team-a", "p").Obj(), pt.Node("n", ""), pt.Node("n", "beta"), fwk.QueueSkip},
		{"node bound to a workspace whose GPR is queued", pt.GPUPod("team-g", "p").Obj(), pt.Node("n", ""), pt.Node("n", "gamma"), fwk.QueueSkip},
		{"node released: a stranger's pod may go there", pt.Pod("plain", "p").Obj(), pt.Node("n", "beta"), pt.Node("n", ""), fwk.Queue},
		{"node bound: a stranger's pod may not", pt.Pod("plain", "p").Obj(), pt.Node("n", ""), pt.Node("n", "beta"), fwk.QueueSkip},
		{"taint removed", pt.Pod("plain", "p").Obj(), withTaint(pt.Node("n", ""), "x"), pt.Node("n", ""), fwk.Queue},
		{"taint added", pt.Pod("plain", "p").Obj(), pt.Node("n", ""), withTaint(pt.Node("n", ""), "x"), fwk.QueueSkip},
		{"unrelated change", pt.Pod("team-a", "p").Obj(), pt.Node("n", "alpha"), pt.Node("n", "alpha"), fwk.QueueSkip},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, f := newFixture(t, noConditions())
			var oldObj any
			if tt.old != nil {
				oldObj = tt.old
			}
			got, err := f.pl.isSchedulableAfterNodeChange(logger, tt.pod, oldObj, tt.new)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("hint = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestIsSchedulableAfterPodTolerationChange(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	_, f := newFixture(t, noConditions())
	pod := pt.Pod("plain", "p").Obj()
	tests := []struct {
		name     string
		old, new *v1.Pod
		want     fwk.QueueingHint
	}{
		{"the pod itself gained a toleration", pod, pt.Pod("plain", "p").Toleration("x").Obj(), fwk.Queue},
		{"another pod", pt.Pod("plain", "q").Obj(), pt.Pod("plain", "q").Toleration("x").Obj(), fwk.QueueSkip},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.pl.isSchedulableAfterPodTolerationChange(logger, pod, tt.old, tt.new)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("hint = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewRejectsBadArgs(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	h := pt.NewHandle(ctx, t, nil)
	_, err := newPlugin(ctx, &runtime.Unknown{Raw: []byte(`{"exemptNamespace":["x"]}`)}, h.Handle, h.NewDynamic())
	if err == nil || !strings.Contains(err.Error(), "exemptNamespace") {
		t.Errorf("New with a misspelt field: err = %v, want it named", err)
	}
}
