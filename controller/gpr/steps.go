package gpr

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/controller/metrics"
	"github.com/gpuspace/gpuspace/internal/admission"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/planner"
)

// release completes provisioned GPRs that are due (early release, expiry)
// or whose workspace is being deleted or gone, status first, the writes
// concurrently (inParallel); then those whose GPUs stayed idle
// (releaseIdle). A release that cannot be written is that GPR's problem
// (writeFailed): it keeps its nodes in this pass's view, so the planner
// never hands them out, and the next pass tries again; the other GPRs are
// released on time.
func (r *Reconciler) release(ctx context.Context, p *pass) error {
	var due, writes []*v1alpha1.GPUProvisionRequest
	var reasons []v1alpha1.GPRReason
	for _, g := range p.gprs {
		reason, ok := r.releaseDue(ctx, p, g)
		if !ok {
			continue
		}
		ng := g.DeepCopy()
		domain.Release(ng, reason, p.now)
		due, writes, reasons = append(due, g), append(writes, ng), append(reasons, reason)
	}
	errs := inParallel(len(writes), func(i int) error { return r.write(ctx, p, writes[i]) })
	for i, g := range due {
		if errs[i] != nil {
			r.writeFailed(p, g, "release", "Release", errs[i])
			continue
		}
		ng := writes[i]
		p.set(ng)
		r.event(ng, corev1.EventTypeNormal, "Released", "Release", "Released nodes %s (%s)", joinNames(g.Status.Nodes), reasons[i])
		logr.FromContextOrDiscard(ctx).Info("released GPR", "gpr", g.Name, "workspace", g.Spec.Workspace, "nodes", g.Status.Nodes, "reason", reasons[i])
	}
	r.releaseIdle(ctx, p)
	return nil
}

// releaseDue is why GPR g is released in this pass (domain.Due, or its
// workspace being deleted or gone); false when it is not, or when its
// cluster is partitioned (it is released when its cluster is back).
func (r *Reconciler) releaseDue(ctx context.Context, p *pass, g *v1alpha1.GPUProvisionRequest) (v1alpha1.GPRReason, bool) {
	reason, due := domain.Due(g, p.now)
	if !due && domain.IsProvisioned(g) {
		gone, err := r.workspaceGone(ctx, p, g.Spec.Workspace)
		if err != nil {
			p.fail("release", err)
			return "", false
		}
		reason, due = v1alpha1.ReasonWorkspaceDeleted, gone
	}
	if !due {
		return "", false
	}
	if c := r.partitioned(p, g); c != "" {
		p.waitCluster(g.Name, c)
		return "", false
	}
	return reason, true
}

// writeFailed records that a decision about GPR g could not be written in
// step: a pass error (log, metric, retry) and a Warning Event on g saying
// what failed. The GPR stays as the pass read it; the next pass decides
// again. (A condition cannot say it: it would be a write to the same
// object.)
func (r *Reconciler) writeFailed(p *pass, g *v1alpha1.GPUProvisionRequest, step, action string, err error) {
	p.fail(step, fmt.Errorf("%s GPR %s: %w", step, g.Name, err))
	p.retryWrite(g.Name)
	r.event(g, corev1.EventTypeWarning, "WriteFailed", action, "the %s decision could not be written, retrying: %v", step, err)
}

// workspaceGone reports whether workspace ws is being deleted, or is gone
// by a live read (the cache may not show a workspace created just now).
func (r *Reconciler) workspaceGone(ctx context.Context, p *pass, ws string) (bool, error) {
	if w := p.workspaces[ws]; w != nil {
		return w.DeletionTimestamp != nil, nil
	}
	w, err := r.liveWorkspace(ctx, p, ws)
	return w == nil || w.DeletionTimestamp != nil, err
}

// liveWorkspace reads a workspace from the apiserver into the pass; nil if
// it does not exist.
func (r *Reconciler) liveWorkspace(ctx context.Context, p *pass, name string) (*v1alpha1.Workspace, error) {
	var w v1alpha1.Workspace
	err := r.apiReader.Get(ctx, client.ObjectKey{Name: name}, &w)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("get workspace %s: %w", name, err)
	}
	p.workspaces[name] = &w
	return &w, nil
}

// admit applies admission to every queued GPR: one it refuses is failed
// with the reason before any planning (confirmed on a live read of its
// workspace, since failing is final), so it never binds a node; then the
// workspaces' policies hold or re-admit queued GPRs (admitPolicies).
func (r *Reconciler) admit(ctx context.Context, p *pass) error {
	for _, g := range p.gprs {
		if !domain.IsQueued(g) {
			continue
		}
		ws := p.workspaces[g.Spec.Workspace]
		errs := admission.ValidateGPR(g, ws)
		if len(errs) == 0 {
			continue
		}
		live, err := r.liveWorkspace(ctx, p, g.Spec.Workspace)
		if err != nil {
			// Invalid by the cache and not confirmed: neither refused
			// (final) nor planned in this pass.
			p.leaveOut(g.Name)
			p.fail("admit", err)
			continue
		}
		if errs = admission.ValidateGPR(g, live); len(errs) == 0 {
			continue // the cache was behind
		}
		ng := g.DeepCopy()
		domain.Fail(ng, v1alpha1.ReasonInvalid, admission.Message(g, live, errs))
		if err := r.write(ctx, p, ng); err != nil {
			// This GPR's problem, not the queue's: it is left out of
			// this pass (never planned, never admitted) and tried again
			// on the next; the others go on.
			p.leaveOut(g.Name)
			p.fail("admit", fmt.Errorf("fail GPR %s: %w", g.Name, err))
			r.event(g, corev1.EventTypeWarning, "RefusalNotRecorded", "Admit", "refused (%s), but the refusal could not be written: %v", ng.Status.FailureReason, err)
			continue
		}
		p.set(ng)
		r.event(ng, corev1.EventTypeWarning, "Refused", "Admit", "%s", ng.Status.FailureReason)
		logr.FromContextOrDiscard(ctx).Info("GPR refused at admission", "gpr", g.Name, "reason", ng.Status.FailureReason)
	}
	return r.admitPolicies(ctx, p)
}

// planAndStart plans over the nodes and the GPRs, then writes the starts,
// concurrently (inParallel). A start that cannot be written is that GPR's
// problem (writeFailed) and the others still start: the plan's starts hold
// disjoint nodes. A start whose evictions were not all written waits for
// the next pass (evictForPlan). New GPRs are marked Queued with their
// estimate in the same write that admits them: one write per new GPR.
func (r *Reconciler) planAndStart(ctx context.Context, p *pass) error {
	p.in, p.invalid = p.snapshot().Input(p.now, r.defaultCluster)
	p.plan = planner.Compute(p.in)
	if len(p.plan.Unsatisfiable) > 0 {
		// Failing a GPR is final, so confirm against a live node list: a
		// node created just before the GPR may not be in the cache yet.
		// This costs a list only in passes that would fail a GPR. Workers'
		// nodes come from their caches again (a GPR for a worker whose
		// nodes are out of sight is not failed: clusterWhy).
		if err := r.loadNodes(ctx, p, r.apiReader); err != nil {
			// Not confirmed: start what the cached plan starts, fail
			// nothing this pass.
			p.fail("plan", err)
			p.plan.Unsatisfiable = nil
		} else {
			p.in, p.invalid = p.snapshot().Input(p.now, r.defaultCluster)
			p.plan = planner.Compute(p.in)
		}
	}
	blocked := r.evictForPlan(ctx, p)
	var starts []planner.Start
	var writes []*v1alpha1.GPUProvisionRequest // writes[i] starts starts[i]
	for _, s := range p.plan.Starts {
		if blocked[s.ID] {
			continue // a victim still holds some of its nodes
		}
		ng := p.gprs[p.byName[s.ID]].DeepCopy()
		domain.Start(ng, s.Nodes, p.now)
		starts, writes = append(starts, s), append(writes, ng)
	}
	errs := inParallel(len(writes), func(i int) error { return r.write(ctx, p, writes[i]) })
	for i, s := range starts {
		r.started(ctx, p, p.gprs[p.byName[s.ID]], writes[i], errs[i])
	}
	return nil
}

// started records in the pass the start of g, written as ng unless err:
// a start that failed is g's problem (writeFailed).
func (r *Reconciler) started(ctx context.Context, p *pass, g, ng *v1alpha1.GPUProvisionRequest, err error) {
	if err != nil {
		r.writeFailed(p, g, "start", "Bind", err)
		return
	}
	p.set(ng)
	p.started[ng.Name] = true
	metrics.WaitSeconds.Observe(p.now.Sub(g.CreationTimestamp.Time).Seconds())
	if e, ok := domain.StartEstimateError(ng); ok {
		metrics.StartEstimateError.WithLabelValues(cmp.Or(g.Spec.ClusterName, r.defaultCluster), cmp.Or(g.Spec.GPUShape, "any")).
			Observe(e.Seconds())
	}
	r.event(ng, corev1.EventTypeNormal, "Provisioned", "Bind", "Provisioned nodes %s", joinNames(ng.Status.Nodes))
	logr.FromContextOrDiscard(ctx).Info("provisioned GPR", "gpr", g.Name, "workspace", g.Spec.Workspace, "nodes", ng.Status.Nodes)
}

// failUnsatisfiable fails the GPRs no inventory could satisfy (or that
// cannot be planned), or holds them in the queue with the reason when they
// asked to wait (requeueOnFailure, their own or their policy's); and marks
// new GPRs Queued with their estimate, or, while GPRs arrive in a burst,
// leaves that to the estimate writer (admitLater, pass.admissions).
// Errors are collected, the pass goes on.
func (r *Reconciler) failUnsatisfiable(ctx context.Context, p *pass) error {
	later := admitLater(p.gprs, p.now)
	failed := maps.Clone(p.invalid)
	if failed == nil {
		failed = map[string]string{}
	}
	for _, u := range p.plan.Unsatisfiable {
		failed[u.ID] = u.Reason
	}
	for _, g := range p.gprs {
		if !domain.IsQueued(g) || domain.PolicyHeld(g) || p.unwritable[g.Name] {
			continue // a policy's hold is admitPolicies'; an unwritable refusal is admit's
		}
		if failed[g.Name] == "" && !domain.NotAdmitted(g) && g.Status.Reason != v1alpha1.ReasonUnsatisfiable {
			continue // estimates are the writer's; no copy for the many queued GPRs
		}
		ng := g.DeepCopy()
		why := r.clusterWhy(p, g, failed[g.Name])
		switch {
		case why != "" && domain.RequeueOnFailure(g, p.policies[g.Spec.Workspace]) && p.invalid[g.Name] == "":
			domain.Hold(ng, v1alpha1.ReasonUnsatisfiable, why)
		case why != "":
			reason := v1alpha1.ReasonUnsatisfiable
			if p.invalid[g.Name] != "" {
				reason = v1alpha1.ReasonInvalid
			}
			domain.Fail(ng, reason, why)
		case domain.NotAdmitted(g) || g.Status.Reason == v1alpha1.ReasonUnsatisfiable:
			// New, or held and now satisfiable: queued, with its estimate.
			domain.Admit(ng)
			latest, ok := p.plan.Estimates[g.Name]
			domain.SetEstimates(ng, p.likelyEstimates()[g.Name], latest, ok, p.now)
			if later && domain.NotAdmitted(g) {
				p.admissions = append(p.admissions, ng) // the writer's, once the burst ends
				continue
			}
		default:
			continue // its cluster is out of sight: it waits as it is
		}
		if equality.Semantic.DeepEqual(g.Status, ng.Status) {
			continue
		}
		if err := r.write(ctx, p, ng); err != nil {
			r.writeFailed(p, g, "status", "Plan", err)
			continue
		}
		p.set(ng)
		if domain.Phase(ng) == v1alpha1.GPRError {
			r.event(ng, corev1.EventTypeWarning, "Unsatisfiable", "Plan", "%s", ng.Status.FailureReason)
			logr.FromContextOrDiscard(ctx).Info("GPR cannot be satisfied", "gpr", g.Name, "reason", ng.Status.FailureReason)
		}
	}
	return nil
}

// nodeHealth sets the NodesHealthy condition of provisioned GPRs; a GPR
// that shares a node with another says so (domain.ClaimedTwice), and the
// node gets an Event when it is first reported.
func (r *Reconciler) nodeHealth(ctx context.Context, p *pass) error {
	for _, g := range p.gprs {
		if !domain.IsProvisioned(g) {
			continue
		}
		c, twice := domain.ClaimedTwice(g, p.conflicts)
		if !twice {
			c = r.outOfSight(p, g, domain.NodesHealthy(g, p.nodeByName))
		}
		old := meta.FindStatusCondition(g.Status.Conditions, c.Type)
		if old != nil && old.Status == c.Status && old.Reason == c.Reason && old.Message == c.Message {
			continue
		}
		if old != nil && c.Status == metav1.ConditionTrue && (old.Reason == domain.ReasonNodesReplaced || domain.Shortfall(g) > 0) {
			continue // recoverNodes' word on what it lost stands while the rest are Ready
		}
		ng := g.DeepCopy()
		meta.SetStatusCondition(&ng.Status.Conditions, c)
		if err := r.write(ctx, p, ng); err != nil {
			r.writeFailed(p, g, "status", "Watch", err)
			continue
		}
		p.set(ng)
		if c.Status == metav1.ConditionFalse {
			r.event(ng, corev1.EventTypeWarning, c.Reason, "Watch", "%s", c.Message)
		}
		if twice {
			r.claimedTwiceEvents(p, g)
		}
	}
	return nil
}

// claimedTwiceEvents records a Warning Event on each node GPR g shares
// with another provisioned GPR.
func (r *Reconciler) claimedTwiceEvents(p *pass, g *v1alpha1.GPUProvisionRequest) {
	if r.recorder == nil {
		return
	}
	for _, cl := range p.conflicts {
		if n := p.nodeByName[cl.Node]; n != nil && slices.Contains(cl.GPRs, g.Name) {
			r.recorder.Eventf(n, g, corev1.EventTypeWarning, domain.ReasonNodeClaimedTwice, "Bind",
				"in the status of GPRs %s: its binding is left as it is until one of them is corrected", joinNames(cl.GPRs))
		}
	}
}
