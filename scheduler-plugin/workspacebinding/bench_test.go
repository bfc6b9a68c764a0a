package workspacebinding

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	pt "github.com/gpuspace/gpuspace/scheduler-plugin/internal/plugintest"
)

// BenchmarkFilter measures Filter on one node: ns/op and allocs/op per
// node evaluated. The pass cases are the hot path (target: ≤100 ns, 0
// allocs); a rejection allocates its Status, as every plugin's does.
func BenchmarkFilter(b *testing.B) {
	ctx, f := newBenchFixture(b)
	tainted := pt.Node("node-t", "")
	tainted.Spec.Taints = []v1.Taint{{Key: "other", Effect: v1.TaintEffectNoSchedule}}
	cases := []struct {
		name string
		pod  *v1.Pod
		node *v1.Node
	}{
		{"workspace GPU pod, own bound node (pass)", pt.GPUPod("team-a", "p").Obj(), pt.Node("node-a1", "alpha")},
		{"plain pod, unbound node (pass)", pt.Pod("plain", "p").Obj(), pt.Node("node-free", "")},
		{"plain pod, tolerated taint (pass)", pt.Pod("plain", "p").Toleration("other").Obj(), tainted},
		{"plain pod, bound node (reject)", pt.Pod("plain", "p").Obj(), pt.Node("node-a1", "alpha")},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			cs := framework.NewCycleState()
			if _, st := f.pl.PreFilter(ctx, cs, c.pod, nil); !st.IsSuccess() {
				b.Fatal(st)
			}
			ni := framework.NewNodeInfo()
			ni.SetNode(c.node)
			b.ReportAllocs()
			for b.Loop() {
				_ = f.pl.Filter(ctx, cs, c.pod, ni)
			}
		})
	}
}

// BenchmarkPreFilter measures PreFilter once per pod and cycle.
func BenchmarkPreFilter(b *testing.B) {
	ctx, f := newBenchFixture(b)
	cases := []struct {
		name string
		pod  *v1.Pod
	}{
		{"workspace GPU pod (narrows to 2 bound nodes)", pt.GPUPod("team-a", "p").Obj()},
		{"plain pod", pt.Pod("plain", "p").Obj()},
		{"exempt pod", pt.Pod("kube-system", "p").Obj()},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = f.pl.PreFilter(ctx, framework.NewCycleState(), c.pod, nil)
			}
		})
	}
}
