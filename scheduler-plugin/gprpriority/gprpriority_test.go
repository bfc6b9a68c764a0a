package gprpriority

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	gpuspacev1alpha1 "github.com/gpuspace/gpuspace/api/v1alpha1"
	pt "github.com/gpuspace/gpuspace/scheduler-plugin/internal/plugintest"
)

func newPluginForTest(t *testing.T) *GPRPriority {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	objs := []runtime.Object{
		pt.Namespace("team-hi", "hi"), pt.Namespace("team-lo", "lo"), pt.Namespace("team-q", "queued"),
		pt.Namespace("plain", ""), pt.Namespace("kube-system", ""),
	}
	h := pt.NewHandle(ctx, t, objs,
		pt.GPR("gpr-hi", "hi", 250, gpuspacev1alpha1.GPRProvisioned),
		pt.GPR("gpr-lo", "lo", 20, gpuspacev1alpha1.GPRProvisioned),
		// A queued GPR of priority 300 must not lift "lo": the
		// provisioned GPR's priority is the workspace's.
		pt.GPR("gpr-lo-next", "lo", 300, gpuspacev1alpha1.GPRQueued),
		pt.GPR("gpr-queued", "queued", 120, gpuspacev1alpha1.GPRQueued),
	)
	pl, err := newPlugin(ctx, nil, h.Handle, h.NewDynamic())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.Start(ctx)
	return pl
}

var t0 = time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)

func entity(t *testing.T, pod *v1.Pod, added time.Duration) fwk.QueuedEntityInfo {
	t.Helper()
	pi, err := framework.NewPodInfo(pod)
	if err != nil {
		t.Fatal(err)
	}
	return &framework.QueuedPodInfo{PodInfo: pi, QueueingParams: framework.QueueingParams{Timestamp: t0.Add(added)}}
}

func TestLess(t *testing.T) {
	pl := newPluginForTest(t)
	tests := []struct {
		name string
		a, b fwk.QueuedEntityInfo
		want bool
	}{
		{"higher GPR priority first, whatever the pod priority",
			entity(t, pt.Pod("team-hi", "a").Obj(), time.Second), entity(t, pt.Pod("team-lo", "b").Priority(1000).Obj(), 0), true},
		{"lower GPR priority after",
			entity(t, pt.Pod("team-lo", "a").Priority(1000).Obj(), 0), entity(t, pt.Pod("team-hi", "b").Obj(), time.Second), false},
		{"queued GPR's priority when none is provisioned",
			entity(t, pt.Pod("team-q", "a").Obj(), time.Second), entity(t, pt.Pod("team-lo", "b").Obj(), 0), true},
		{"no workspace sorts last",
			entity(t, pt.Pod("team-lo", "a").Obj(), time.Second), entity(t, pt.Pod("plain", "b").Priority(1000).Obj(), 0), true},
		{"exempt namespaces sort first",
			entity(t, pt.Pod("kube-system", "a").Obj(), time.Second), entity(t, pt.Pod("team-hi", "b").Priority(1000).Obj(), 0), true},
		{"same workspace: pod priority",
			entity(t, pt.Pod("team-hi", "a").Priority(10).Obj(), time.Second), entity(t, pt.Pod("team-hi", "b").Obj(), 0), true},
		{"same workspace and priority: older first",
			entity(t, pt.Pod("team-hi", "a").Obj(), 0), entity(t, pt.Pod("team-hi", "b").Obj(), time.Second), true},
		{"same workspace and priority: newer after",
			entity(t, pt.Pod("team-hi", "a").Obj(), time.Second), entity(t, pt.Pod("team-hi", "b").Obj(), 0), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pl.Less(tt.a, tt.b); got != tt.want {
				t.Errorf("Less = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLessSortsAQueue(t *testing.T) {
	pl := newPluginForTest(t)
	es := []fwk.QueuedEntityInfo{
		entity(t, pt.Pod("plain", "plain").Obj(), 0),
		entity(t, pt.Pod("team-lo", "lo").Obj(), 1),
		entity(t, pt.Pod("team-hi", "hi-late").Obj(), 3),
		entity(t, pt.Pod("kube-system", "sys").Obj(), 4),
		entity(t, pt.Pod("team-q", "queued").Obj(), 5),
		entity(t, pt.Pod("team-hi", "hi-early").Obj(), 2),
	}
	sort.SliceStable(es, func(i, j int) bool { return pl.Less(es[i], es[j]) })
	var got []string
	for _, e := range es {
		got = append(got, e.(*framework.QueuedPodInfo).Pod.Name)
	}
	want := []string{"sys", "hi-early", "hi-late", "queued", "lo", "plain"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}
