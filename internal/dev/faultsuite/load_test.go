package faultsuite

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// ledger is what the load did, for the watcher: the GPRs it created, those
// it asked to delete, and when it asked for each early release.
type ledger struct {
	mu       sync.Mutex
	created  map[string]time.Time
	deleted  map[string]bool // delete asked (it may have failed)
	released map[string]time.Time
	ops      map[string]int // operation -> how many succeeded
	failed   map[string]int // operation -> how many failed
}

func newLedger() *ledger {
	return &ledger{created: map[string]time.Time{}, deleted: map[string]bool{}, released: map[string]time.Time{},
		ops: map[string]int{}, failed: map[string]int{}}
}

func (l *ledger) record(op string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.failed[op]++
		return
	}
	l.ops[op]++
}

// note records when the load's write of op to GPR name succeeded, in m
// (created or released).
func (l *ledger) note(op string, m map[string]time.Time, name string, err error) {
	l.record(op, err)
	if err == nil {
		l.mu.Lock()
		m[name] = time.Now()
		l.mu.Unlock()
	}
}

func (l *ledger) releasedAt(name string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.released[name]
	return t, ok
}

func (l *ledger) deleteAsked(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deleted[name]
}

// load drives GPRs and pods straight at the apiserver (the load is not
// under test): users creating, re-prioritising, releasing and deleting
// GPRs, and their GPU pods on the nodes bound to them.
type load struct {
	s      *system
	ledger *ledger
	rng    *rand.Rand
	seq    int
	// maxQueued caps the queue the creator fills.
	maxQueued int
}

// run acts every 250 ms until ctx ends: each tick creates a GPR while
// the queue is short, and, by chance, re-prioritises a queued GPR,
// releases a provisioned one early, deletes a queued or complete one, or
// puts a GPU pod of some workspace on a free node (a stray once the node
// is bound to another). Pods of provisioned GPRs are kept on their nodes
// on every tick.
func (l *load) run(ctx context.Context, mutate func() bool) {
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		gprs, err := l.list(ctx)
		if err != nil {
			return // the apiserver is down
		}
		if mutate() {
			l.mutate(ctx, gprs)
		}
		l.placePods(ctx, gprs)
	}, 250*time.Millisecond)
}

func (l *load) list(ctx context.Context) ([]*v1alpha1.GPUProvisionRequest, error) {
	var list v1alpha1.GPUProvisionRequestList
	if err := l.s.client.List(ctx, &list); err != nil {
		return nil, err
	}
	out := make([]*v1alpha1.GPUProvisionRequest, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	slices.SortFunc(out, func(a, b *v1alpha1.GPUProvisionRequest) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

func (l *load) mutate(ctx context.Context, gprs []*v1alpha1.GPUProvisionRequest) {
	var queued, provisioned, complete []*v1alpha1.GPUProvisionRequest
	for _, g := range gprs {
		switch {
		case domain.IsQueued(g):
			queued = append(queued, g)
		case domain.IsProvisioned(g):
			provisioned = append(provisioned, g)
		case g.Status.ProvisioningStatus == v1alpha1.GPRComplete:
			complete = append(complete, g)
		}
	}
	if len(queued) < l.maxQueued {
		l.create(ctx)
	}
	switch r := l.rng.Float64(); {
	case r < 0.12 && len(queued) > 0:
		l.reprioritise(ctx, pick(l.rng, queued))
	case r < 0.24 && len(provisioned) > 0:
		l.release(ctx, pick(l.rng, provisioned))
	case r < 0.30 && len(queued) > 0:
		l.delete(ctx, pick(l.rng, queued))
	case r < 0.36 && len(complete) > 0:
		l.delete(ctx, pick(l.rng, complete))
	case r < 0.42:
		l.squat(ctx, gprs)
	}
}

// newRand is the seeded source of one stream of choices.
func newRand(seed int64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), stream))
}

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

// create makes a one-minute GPR for one node of a random workspace.
func (l *load) create(ctx context.Context) {
	l.seq++
	ws := pick(l.rng, l.s.workspaces)
	g := &v1alpha1.GPUProvisionRequest{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("gpr-fs-%05d", l.seq)},
		Spec: v1alpha1.GPUProvisionRequestSpec{
			GPRName: fmt.Sprintf("load-%d", l.seq), Workspace: ws, ClusterName: v1alpha1.DefaultCluster,
			NumberOfGPUs: int32(1 + l.rng.IntN(4)), NumberOfGPUNodes: 1,
			Priority: int32(101 + l.rng.IntN(100)), ExitDuration: "0d0h1m",
		},
	}
	l.ledger.note("create", l.ledger.created, g.Name, l.s.client.Create(ctx, g))
}

func (l *load) reprioritise(ctx context.Context, g *v1alpha1.GPUProvisionRequest) {
	patch := fmt.Sprintf(`{"spec":{"priority":%d}}`, 101+l.rng.IntN(100))
	l.ledger.record("reprioritise", l.s.client.Patch(ctx, g, client.RawPatch(types.MergePatchType, []byte(patch))))
}

// release asks for early release; the GPR is due from the moment the
// write returned.
func (l *load) release(ctx context.Context, g *v1alpha1.GPUProvisionRequest) {
	if g.Spec.EarlyRelease {
		return
	}
	l.ledger.note("release", l.ledger.released, g.Name,
		l.s.client.Patch(ctx, g, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"earlyRelease":true}}`))))
}

func (l *load) delete(ctx context.Context, g *v1alpha1.GPUProvisionRequest) {
	l.ledger.mu.Lock()
	l.ledger.deleted[g.Name] = true
	l.ledger.mu.Unlock()
	l.ledger.record("delete", ignoreNotFound(l.s.client.Delete(ctx, g)))
}

// squat puts a GPU pod of a random workspace on a node no GPR holds and no
// binding label names, as a pod that landed while the node was free.
func (l *load) squat(ctx context.Context, gprs []*v1alpha1.GPUProvisionRequest) {
	holders, _ := domain.Holders(gprs)
	var free []string
	for _, n := range l.s.nodes {
		if holders[n] != nil {
			continue
		}
		node, err := l.s.kube.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
		if err == nil && node.Labels[v1alpha1.LabelWorkspace] == "" {
			free = append(free, n)
		}
	}
	if len(free) == 0 {
		return
	}
	ws := pick(l.rng, l.s.workspaces)
	l.seq++
	l.ledger.record("squat", l.createPod(ctx, ws, fmt.Sprintf("squat-%05d", l.seq), pick(l.rng, free)))
}

// placePods keeps one GPU pod of each provisioned GPR's workspace on each
// of its nodes, as its scheduler would. A fresh read of the GPR right
// before the create keeps the window in which a pod lands on a node that
// just changed hands small.
func (l *load) placePods(ctx context.Context, gprs []*v1alpha1.GPUProvisionRequest) {
	for _, g := range gprs {
		if !domain.IsProvisioned(g) || g.Spec.EarlyRelease {
			continue
		}
		for _, node := range g.Status.Nodes {
			name := fmt.Sprintf("%s-%s", g.Name, node)
			if _, err := l.s.kube.CoreV1().Pods(wsNamespace(g.Spec.Workspace)).Get(ctx, name, metav1.GetOptions{}); err == nil {
				continue
			}
			var fresh v1alpha1.GPUProvisionRequest
			if err := l.s.client.Get(ctx, client.ObjectKeyFromObject(g), &fresh); err != nil ||
				!domain.IsProvisioned(&fresh) || !slices.Contains(fresh.Status.Nodes, node) {
				continue
			}
			l.ledger.record("pod", l.createPod(ctx, g.Spec.Workspace, name, node))
		}
	}
}

// createPod creates a pod of workspace ws using one GPU, bound to node.
func (l *load) createPod(ctx context.Context, ws, name, node string) error {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: wsNamespace(ws)},
		Spec: corev1.PodSpec{
			NodeName: node,
			Containers: []corev1.Container{{Name: "train", Image: "example.com/train:1",
				Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceName(v1alpha1.ResourceGPU): resource.MustParse("1")}}}},
			TerminationGracePeriodSeconds: new(int64),
		},
	}
	_, err := l.s.kube.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	return err
}
