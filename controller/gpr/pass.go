package gpr

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/controller/metrics"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/planner"
	"github.com/gpuspace/gpuspace/internal/snapshot"
)

// pass is the state of one plan pass: what it read, and what it decided.
// gprs is updated in place as decisions are written, so later steps see
// them.
type pass struct {
	now    time.Time
	gprs   []*v1alpha1.GPUProvisionRequest
	byName map[string]int
	nodes  []*corev1.Node
	// nodeByName indexes nodes (loadNodes keeps it in step).
	nodeByName map[string]*corev1.Node
	workspaces map[string]*v1alpha1.Workspace
	// in and plan are the planner's input and decision.
	in      planner.Input
	plan    planner.Plan
	invalid map[string]string
	// likely are the plan's likely starts (likelyEstimates): made on first
	// use; plan's own estimates are the latest starts.
	likely domain.Estimates
	// started are the GPRs this pass started.
	started map[string]bool
	// policies are the WorkspacePolicies by workspace.
	policies domain.Policies
	// topologies are the Topology objects and the built-in ones.
	topologies domain.Topologies
	// lostWake is when the first NotReady node a GPR holds counts as lost,
	// if it stays NotReady (recoverNodes); zero when none.
	lostWake time.Time
	// idleWake is the next moment an idle GPR falls due for idle
	// release, if it stays idle (releaseIdle); zero when none.
	idleWake time.Time
	// errs are failures of steps that do not end the pass (pass.fail).
	errs []stepError
	// unwritable are GPRs admission refused whose refusal could not be
	// written: this pass neither plans nor admits them (they would
	// otherwise start, or be admitted, despite being invalid).
	unwritable map[string]bool
	// conflicts are the nodes in the status of more than one provisioned
	// GPR (bindNodes), reported by nodeHealth.
	conflicts []domain.Claim
	// writeRetries are the GPRs a decision could not be written for in
	// this pass: the pass's error retry, not their due time (past), wakes
	// the next pass for them.
	writeRetries map[string]bool
	// releaseWaits are the GPRs due for release whose cluster is not
	// reachable (partitioned), by name: they wake no pass, the cluster's
	// return does.
	releaseWaits map[string]string
	// admissions are the new GPRs this pass leaves to the estimate writer
	// to admit, Queued with their estimates (admitLater).
	admissions []*v1alpha1.GPUProvisionRequest
}

// load reads the GPRs (replacing any the cache has older than this
// reconciler's own last write), the nodes and the workspaces, as copies:
// steps may change what they read.
func (r *Reconciler) load(ctx context.Context) (*pass, error) {
	// Status timestamps have second precision; planning on whole seconds
	// keeps estimates, wait times and expiries consistent with them.
	p := &pass{now: r.clock.Now().Truncate(time.Second), started: map[string]bool{}}
	sr := snapshot.Reader{Client: r.client}
	items, err := sr.GPRs(ctx)
	if err != nil {
		return nil, err
	}
	p.gprs = r.written.freshest(items)
	p.byName = make(map[string]int, len(p.gprs))
	for i, g := range p.gprs {
		p.byName[g.Name] = i
	}
	if err := r.loadNodes(ctx, p, r.client); err != nil {
		return nil, err
	}
	if p.policies, err = sr.Policies(ctx); err != nil {
		return nil, err
	}
	if p.topologies, err = sr.Topologies(ctx); err != nil {
		return nil, err
	}
	var wss v1alpha1.WorkspaceList
	if err := r.client.List(ctx, &wss); err != nil {
		return nil, fmt.Errorf("list workspaces: %w", err)
	}
	p.workspaces = make(map[string]*v1alpha1.Workspace, len(wss.Items))
	for i := range wss.Items {
		p.workspaces[wss.Items[i].Name] = &wss.Items[i]
	}
	return p, nil
}

// loadNodes reads the pass's nodes: the local cluster's through local
// (the cache, or the apiserver for a live read), then every worker's,
// each labelled with its cluster.
func (r *Reconciler) loadNodes(ctx context.Context, p *pass, local client.Reader) error {
	sr := snapshot.Reader{Client: local}
	if r.clusters != nil {
		sr.Workers = r.clusters
	}
	nodes, err := sr.Nodes(ctx)
	if err != nil {
		return err
	}
	p.nodes = nodes
	p.indexNodes()
	return nil
}

// snapshot is the pass's objects, the planner's input (snapshot.Input),
// less the GPRs it could not mark refused.
func (p *pass) snapshot() snapshot.Snapshot {
	gprs := p.gprs
	if len(p.unwritable) > 0 {
		gprs = make([]*v1alpha1.GPUProvisionRequest, 0, len(p.gprs))
		for _, g := range p.gprs {
			if !p.unwritable[g.Name] {
				gprs = append(gprs, g)
			}
		}
	}
	return snapshot.Snapshot{GPRs: gprs, Nodes: p.nodes, Policies: p.policies, Topologies: p.topologies}
}

// stepError is a failure of one step for one object: the pass goes on.
type stepError struct {
	step string
	err  error
}

// leaveOut keeps a GPR whose refusal or hold could not be written out of
// this pass's plan and admission.
func (p *pass) leaveOut(name string) {
	if p.unwritable == nil {
		p.unwritable = map[string]bool{}
	}
	p.unwritable[name] = true
}

// retryWrite records that a decision for GPR name could not be written in
// this pass (see writeRetries).
func (p *pass) retryWrite(name string) {
	if p.writeRetries == nil {
		p.writeRetries = map[string]bool{}
	}
	p.writeRetries[name] = true
}

// fail records a failure of step that does not end the pass.
func (p *pass) fail(step string, err error) { p.errs = append(p.errs, stepError{step: step, err: err}) }

// indexNodes rebuilds nodeByName from nodes.
func (p *pass) indexNodes() {
	p.nodeByName = make(map[string]*corev1.Node, len(p.nodes))
	for _, n := range p.nodes {
		p.nodeByName[n.Name] = n
	}
}

// set replaces a GPR of the pass with the version just written.
func (p *pass) set(g *v1alpha1.GPUProvisionRequest) { p.gprs[p.byName[g.Name]] = g }

// estimateWrites are the queued GPRs whose stored estimates (likely or
// latest) moved beyond the tolerance in this pass's plan, with the status
// to write. GPRs the controller has not admitted yet are left out: the
// pass admitted them with their estimates, or left that to the writer
// (admissions).
func (p *pass) estimateWrites() []*v1alpha1.GPUProvisionRequest {
	var out []*v1alpha1.GPUProvisionRequest
	for _, g := range p.gprs {
		if !domain.IsQueued(g) || domain.NotAdmitted(g) || domain.WaitsOnReason(g) || p.invalid[g.Name] != "" {
			continue
		}
		latest, ok := p.plan.Estimates[g.Name]
		likely := p.likelyEstimates()[g.Name]
		if !domain.EstimatesMoved(g, likely, latest, ok, p.now) {
			continue
		}
		ng := g.DeepCopy()
		domain.SetEstimates(ng, likely, latest, ok, p.now)
		out = append(out, ng)
	}
	return out
}

// admitsLater reports whether this pass left GPR name's admission to the
// estimate writer: it waits, like an admitted GPR, and no pass follows
// the writer's admission (gprChanged).
func (p *pass) admitsLater(name string) bool {
	for _, g := range p.admissions {
		if g.Name == name {
			return true
		}
	}
	return false
}

// likelyEstimates are the plan's likely starts (snapshot.Likely), made on
// first use: one more plan per pass, and only when a GPR waits.
func (p *pass) likelyEstimates() domain.Estimates {
	if p.likely == nil {
		p.likely = p.snapshot().Likely(p.in, p.plan)
	}
	return p.likely
}

// nextWake is the next expiry of a provisioned GPR, or the next idle
// release or node loss if sooner; zero when none.
func (p *pass) nextWake() time.Time {
	next := p.idleWake
	if !p.lostWake.IsZero() && (next.IsZero() || p.lostWake.Before(next)) {
		next = p.lostWake
	}
	for _, g := range p.gprs {
		if !domain.IsProvisioned(g) || p.releaseWaits[g.Name] != "" || p.writeRetries[g.Name] {
			continue
		}
		if end, ok := domain.End(g); ok && (next.IsZero() || end.Before(next)) {
			next = end
		}
	}
	if at := p.evictableWake(); !at.IsZero() && (next.IsZero() || at.Before(next)) {
		next = at
	}
	return next
}

// evictableWake is the next moment a provisioned GPR leaves its
// minimum-runtime protection while some queued GPR may evict
// (domain.CanEvict): preemption then becomes possible without any event,
// so the pass must wake for it. Zero when there is none.
func (p *pass) evictableWake() time.Time {
	evictor := false
	for _, g := range p.gprs {
		if domain.IsQueued(g) && domain.CanEvict(g, p.policies.Of(g.Spec.Workspace)) && (!domain.NotAdmitted(g) || p.admitsLater(g.Name)) {
			evictor = true
			break
		}
	}
	if !evictor {
		return time.Time{}
	}
	var next time.Time
	for _, g := range p.gprs {
		if !domain.IsProvisioned(g) {
			continue
		}
		if at, ok := domain.EvictableAt(g, p.policies.Of(g.Spec.Workspace)); ok && at.After(p.now) && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	return next
}

// versions holds the GPRs a reconciler wrote, as the apiserver returned
// them, until the cache shows that version: a pass must never plan on a
// cached GPR older than its own last write, or it could give a node that
// GPR already holds to another.
type versions struct {
	mu sync.Mutex
	m  map[string]*v1alpha1.GPUProvisionRequest
}

// remember records a GPR as written.
func (v *versions) remember(g *v1alpha1.GPUProvisionRequest) {
	v.mu.Lock()
	v.m[g.Name] = g.DeepCopy()
	v.mu.Unlock()
}

// freshest returns the listed GPRs, sorted by name, each replaced by this
// reconciler's own last write where the list has an older version, and
// forgets writes the cache has caught up with.
func (v *versions) freshest(items []v1alpha1.GPUProvisionRequest) []*v1alpha1.GPUProvisionRequest {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]*v1alpha1.GPUProvisionRequest, len(items))
	seen := make(map[string]bool, len(items))
	for i := range items {
		g := &items[i]
		seen[g.Name] = true
		if w, ok := v.m[g.Name]; ok {
			if w.UID == g.UID && domain.OlderVersion(g.ResourceVersion, w.ResourceVersion) {
				g = w.DeepCopy()
			} else {
				delete(v.m, g.Name)
			}
		}
		out[i] = g
	}
	for name := range v.m {
		if !seen[name] {
			delete(v.m, name) // deleted since
		}
	}
	slices.SortFunc(out, func(a, b *v1alpha1.GPUProvisionRequest) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// writeStatus updates g's status through c with optimistic concurrency
// (g's resourceVersion) and remembers the result.
func (v *versions) writeStatus(ctx context.Context, c client.Client, g *v1alpha1.GPUProvisionRequest) error {
	if err := c.Status().Update(ctx, g); err != nil {
		return err
	}
	v.remember(g)
	return nil
}

// writeConcurrency is how many of a step's requests are in flight at once
// (inParallel). They are to disjoint objects, so their order does not
// matter to the apiserver; the client's rate limiter (--kube-api-qps)
// still paces them, and 16 stays far below the apiserver's
// --max-mutating-requests-inflight.
const writeConcurrency = 16

// inParallel runs do(0..n-1), at most writeConcurrency at a time, and
// returns each one's error by index. do must touch only its own objects;
// the caller applies the results to the pass serially, in index order, so
// the pass's view, its errors and its Events come out in the same order
// as if the requests had been made one by one. A step's requests are
// round trips of a few milliseconds each: one by one, a pass that starts
// and releases tens of GPRs spends its time waiting on them.
func inParallel(n int, do func(i int) error) []error {
	errs := make([]error, n)
	if n == 1 {
		errs[0] = do(0)
		return errs
	}
	var g errgroup.Group
	g.SetLimit(writeConcurrency)
	for i := range n {
		g.Go(func() error {
			errs[i] = do(i)
			return nil
		})
	}
	_ = g.Wait() // the errors are in errs
	return errs
}

// write writes a decision of pass p: g's status, through the decision
// client; a GPR it completes gets status.cost in the same write
// (stampCost).
func (r *Reconciler) write(ctx context.Context, p *pass, g *v1alpha1.GPUProvisionRequest) error {
	r.stampCost(p, g) // a GPR this write completes gets its cost with it
	if err := r.written.writeStatus(ctx, r.client, g); err != nil {
		return err
	}
	metrics.StatusWrites.WithLabelValues("decision").Inc()
	return nil
}
