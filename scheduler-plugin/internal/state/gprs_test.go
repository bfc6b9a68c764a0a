package state

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/sets"

	gpuspacev1alpha1 "github.com/gpuspace/gpuspace/api/v1alpha1"
)

func gpr(name, ws string, prio int32, phase gpuspacev1alpha1.ProvisioningStatus, rv string, age time.Duration) GPR {
	return GPR{Name: name, Workspace: ws, Priority: prio, Phase: phase, ResourceVersion: rv,
		Created: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(-age)}
}

func TestGPRIndex(t *testing.T) {
	type op struct {
		upsert *GPR
		delete string
		rv     string
	}
	up := func(g GPR) op { return op{upsert: &g} }
	q, p, c := gpuspacev1alpha1.GPRQueued, gpuspacev1alpha1.GPRProvisioned, gpuspacev1alpha1.GPRComplete
	tests := []struct {
		name          string
		ops           []op
		wantPriority  int32
		wantProvision string
		wantNext      string
	}{
		{"empty", nil, 0, "", ""},
		{"queue head: priority then age", []op{
			up(gpr("a", "ws", 100, q, "1", 0)), up(gpr("b", "ws", 200, q, "2", 0)), up(gpr("c", "ws", 200, q, "3", time.Hour)),
		}, 200, "", "c"},
		{"provisioned sets the priority", []op{
			up(gpr("a", "ws", 300, q, "1", 0)), up(gpr("b", "ws", 50, p, "2", 0)),
		}, 50, "b", "a"},
		{"complete counts for nothing", []op{up(gpr("a", "ws", 100, c, "1", 0))}, 0, "", ""},
		{"an older copy does not overwrite a newer one", []op{
			up(gpr("a", "ws", 100, p, "10", 0)), up(gpr("a", "ws", 100, q, "9", 0)),
		}, 100, "a", ""},
		{"a late copy does not resurrect a deleted GPR", []op{
			up(gpr("a", "ws", 100, p, "10", 0)), {delete: "a", rv: "12"}, up(gpr("a", "ws", 100, p, "11", 0)),
		}, 0, "", ""},
		{"a newer object of the same name comes back", []op{
			up(gpr("a", "ws", 100, p, "10", 0)), {delete: "a", rv: "12"}, up(gpr("a", "ws", 100, q, "13", 0)),
		}, 100, "", "a"},
		{"workspace change moves the GPR", []op{
			up(gpr("a", "ws", 100, p, "1", 0)), up(gpr("a", "other", 100, p, "2", 0)),
		}, 0, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := NewGPRIndex()
			for _, o := range tt.ops {
				if o.upsert != nil {
					x.Upsert(*o.upsert)
				} else {
					x.Delete(o.delete, o.rv)
				}
			}
			s := x.Workspace("ws")
			got := []any{s.Priority, s.Provisioned.Name, s.Next.Name}
			want := []any{tt.wantPriority, tt.wantProvision, tt.wantNext}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("summary [priority provisioned next] (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGPRIndexBinding(t *testing.T) {
	p, c := gpuspacev1alpha1.GPRProvisioned, gpuspacev1alpha1.GPRComplete
	held := func(name, ws string, phase gpuspacev1alpha1.ProvisioningStatus, rv string, nodes ...string) GPR {
		g := gpr(name, ws, 100, phase, rv, 0)
		if phase == p {
			g.Nodes = nodes
		}
		return g
	}
	x := NewGPRIndex()
	x.Upsert(held("a", "ws-a", p, "1", "n1", "n2"))
	if b := x.Binding("n1", ""); b.Claimants != 1 || b.Holder != "ws-a" {
		t.Errorf("n1 held by a: %+v", b)
	}
	if got := x.Workspace("ws-a").Nodes; !got.Equal(sets.New("n1", "n2")) {
		t.Errorf("ws-a's nodes: %v", sets.List(got))
	}
	// Another workspace's GPR names n2 too: a conflict, no holder.
	x.Upsert(held("b", "ws-b", p, "2", "n2"))
	if b := x.Binding("n2", "ws-a"); b.Claimants != 2 || b.Holder != "" || b.Label != "ws-a" {
		t.Errorf("n2 claimed twice: %+v", b)
	}
	// a completes: it lets go of its nodes; b alone holds n2.
	x.Upsert(held("a", "ws-a", c, "3"))
	if b := x.Binding("n1", "ws-a"); b.Claimants != 0 {
		t.Errorf("n1 after a completed: %+v", b)
	}
	if b := x.Binding("n2", ""); b.Claimants != 1 || b.Holder != "ws-b" {
		t.Errorf("n2 after a completed: %+v", b)
	}
	if got := x.Workspace("ws-a").Nodes; got.Len() != 0 {
		t.Errorf("ws-a's nodes after completion: %v", sets.List(got))
	}
	// An older copy of a (still provisioned) changes nothing.
	x.Upsert(held("a", "ws-a", p, "2", "n1"))
	if b := x.Binding("n1", ""); b.Claimants != 0 {
		t.Errorf("n1 after a stale copy: %+v", b)
	}
	x.Delete("b", "4")
	if b := x.Binding("n2", ""); b.Claimants != 0 {
		t.Errorf("n2 after b was deleted: %+v", b)
	}
}

func TestGPRFrom(t *testing.T) {
	g := &gpuspacev1alpha1.GPUProvisionRequest{}
	g.Spec.Workspace = "ws"
	g.Status.Nodes = []string{"n1"}
	got := GPRFrom(g)
	if got.Phase != gpuspacev1alpha1.GPRQueued || got.Priority != gpuspacev1alpha1.DefaultPriority || len(got.Nodes) != 0 {
		t.Errorf("GPRFrom of an unset GPR: phase %q priority %d nodes %v; want Queued, %d, none",
			got.Phase, got.Priority, got.Nodes, gpuspacev1alpha1.DefaultPriority)
	}
}
