package state

import (
	"fmt"
	"math/rand/v2"
	"strconv"
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
		{"an update of a workspace's only queued GPR keeps it at the head", []op{
			up(gpr("a", "ws", 100, q, "1", 0)), up(gpr("a", "ws", 100, q, "2", 0)),
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

// TestGPRIndexSummaryMatchesWalk: after any sequence of upserts and deletes
// — new GPRs, updates that keep a GPR's place in the queue, phase,
// priority and workspace changes, stale copies, deletes and re-creations
// under the same name — each workspace's summary is what a walk of all its
// GPRs finds. Few names over many workspaces make workspaces of one GPR
// common: the case where a lazy queue heap once lost its only entry.
func TestGPRIndexSummaryMatchesWalk(t *testing.T) {
	for _, shape := range []struct{ names, workspaces int }{{60, 3}, {6, 4}} {
		t.Run(fmt.Sprintf("names=%d/workspaces=%d", shape.names, shape.workspaces), func(t *testing.T) {
			r := newIndexRun(shape.names, shape.workspaces)
			for step := range 5000 {
				op := r.step()
				for _, ws := range r.workspaces {
					want, got := walkSummary(r.live, ws), r.x.Workspace(ws)
					if diff := cmp.Diff(want, got); diff != "" {
						t.Fatalf("step %d (%s): summary of %s (-walk +index):\n%s", step, op, ws, diff)
					}
				}
			}
		})
	}
}

// indexRun drives a GPRIndex with random operations and keeps live, the
// GPRs it should hold.
type indexRun struct {
	rng        *rand.Rand
	x          *GPRIndex
	live       map[string]GPR
	names      []string
	workspaces []string
	rv         int
}

func newIndexRun(names, workspaces int) *indexRun {
	r := &indexRun{rng: rand.New(rand.NewPCG(1, 2)), x: NewGPRIndex(), live: map[string]GPR{}}
	for i := range names {
		r.names = append(r.names, "g"+strconv.Itoa(i))
	}
	for i := range workspaces {
		r.workspaces = append(r.workspaces, "ws-"+strconv.Itoa(i))
	}
	return r
}

// step applies one random operation and says which.
func (r *indexRun) step() string {
	r.rv++
	rv := strconv.Itoa(r.rv)
	name := r.names[r.rng.IntN(len(r.names))]
	old, had := r.live[name]
	switch k := r.rng.IntN(8); {
	case k == 0:
		r.x.Delete(name, rv)
		delete(r.live, name)
		return "delete " + name
	case k == 1 || !had:
		// A new object, or a re-creation under the same name (another
		// UID): a place in the queue of its own.
		r.x.Delete(name, rv)
		r.rv++
		r.upsert(r.random(name, strconv.Itoa(r.rv)))
		return "create " + name
	case k == 2:
		// A status write that leaves its place in the queue alone.
		g := old
		g.ResourceVersion, g.EstimatedStart = rv, g.Created.Add(time.Duration(r.rv)*time.Second)
		r.upsert(g)
		return "touch " + name
	case k == 3:
		g := old
		g.ResourceVersion, g.Phase = rv, r.phase()
		r.upsert(g)
		return fmt.Sprintf("phase %s %s", name, g.Phase)
	case k == 4:
		g := old
		g.ResourceVersion, g.Priority = rv, r.priority()
		r.upsert(g)
		return fmt.Sprintf("priority %s %d", name, g.Priority)
	case k == 5:
		g := old
		g.ResourceVersion, g.Workspace = rv, r.workspaces[r.rng.IntN(len(r.workspaces))]
		r.upsert(g)
		return fmt.Sprintf("move %s %s", name, g.Workspace)
	case k == 6:
		// A copy as old as the one held, or older (the other watch,
		// behind): changes nothing.
		held, _ := strconv.Atoi(old.ResourceVersion)
		if r.x.Upsert(r.random(name, strconv.Itoa(1+r.rng.IntN(held)))) {
			panic("a stale copy of " + name + " was taken")
		}
		return "stale copy of " + name
	default:
		r.upsert(r.random(name, rv))
		return "replace " + name
	}
}

func (r *indexRun) upsert(g GPR) {
	if !r.x.Upsert(g) {
		panic(fmt.Sprintf("a newer copy of %s (rv %s) was refused", g.Name, g.ResourceVersion))
	}
	r.live[g.Name] = g
}

func (r *indexRun) random(name, rv string) GPR {
	g := gpr(name, r.workspaces[r.rng.IntN(len(r.workspaces))], r.priority(), r.phase(), rv,
		time.Duration(r.rng.IntN(5))*time.Minute)
	if g.Phase == gpuspacev1alpha1.GPRProvisioned {
		g.Nodes = []string{"n" + strconv.Itoa(r.rng.IntN(4))}
	}
	return g
}

func (r *indexRun) phase() gpuspacev1alpha1.ProvisioningStatus {
	return []gpuspacev1alpha1.ProvisioningStatus{gpuspacev1alpha1.GPRQueued, gpuspacev1alpha1.GPRQueued,
		gpuspacev1alpha1.GPRProvisioned, gpuspacev1alpha1.GPRComplete}[r.rng.IntN(4)]
}

func (r *indexRun) priority() int32 { return int32(100 + r.rng.IntN(3)*50) }

// walkSummary is ws's summary found by walking all of live, as the index
// once computed it on every change: the queue's head by comparing every
// queued GPR.
func walkSummary(live map[string]GPR, ws string) Summary {
	var s Summary
	for _, g := range live {
		if g.Workspace != ws {
			continue
		}
		switch g.Phase {
		case gpuspacev1alpha1.GPRProvisioned:
			s.addProvisioned(g)
		case gpuspacev1alpha1.GPRQueued:
			if s.Next.Name == "" || before(g, s.Next) {
				s.Next = g
			}
		}
	}
	s.setPriority()
	return s
}

// TestGPRIndexTombstonesExpire: a deletion is remembered for tombstoneTTL,
// then forgotten, so a copy of the same name is taken again; a deletion
// made later, or one replaced by a newer delete, is kept.
func TestGPRIndexTombstonesExpire(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	x := NewGPRIndex()
	x.now = func() time.Time { return now }
	q := gpuspacev1alpha1.GPRQueued
	x.Upsert(gpr("a", "ws", 100, q, "10", 0))
	x.Delete("a", "12")
	x.Delete("b", "13")
	now = now.Add(tombstoneTTL / 2)
	x.Delete("b", "14") // b's tombstone now dates from here
	x.Delete("c", "15")
	if x.Upsert(gpr("a", "ws", 100, q, "11", 0)) {
		t.Fatal("a late copy of a resurrected it within the TTL")
	}
	now = now.Add(tombstoneTTL/2 + time.Second)
	x.Delete("d", "16") // expires the tombstones older than the TTL
	if !x.Upsert(gpr("a", "ws", 100, q, "11", 0)) {
		t.Error("a's tombstone outlived the TTL")
	}
	for _, name := range []string{"b", "c"} {
		if x.Upsert(gpr(name, "ws", 100, q, "9", 0)) {
			t.Errorf("%s's tombstone, within the TTL, was dropped", name)
		}
	}
}
