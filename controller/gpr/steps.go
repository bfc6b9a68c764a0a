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
// or whose workspace is being deleted or gone, status first, then those
// whose GPUs stayed idle (releaseIdle). A release that cannot be written
// is that GPR's problem (writeFailed): it keeps its nodes in this pass's
// view, so the planner never hands them out, and the next pass tries
// again; the other GPRs are released on time.
func (r *Reconciler) release(ctx context.Context, p *pass) error {
	for _, g := range p.gprs {
		reason, due := domain.Due(g, p.now)
		if !due && domain.IsProvisioned(g) {
			gone, err := r.workspaceGone(ctx, p, g.Spec.Workspace)
			if err != nil {
				p.fail("release", err)
				continue
			}
			reason, due = v1alpha1.ReasonWorkspaceDeleted, gone
		}
		if !due {
			continue
		}
		if c := r.partitioned(p, g); c != "" {
			p.waitCluster(g.Name, c) // released when its cluster is back
			continue
		}
		ng := g.DeepCopy()
		domain.Release(ng, reason, p.now)
		if err := r.write(ctx, p, ng); err != nil {
			r.writeFailed(p, g, "release", "Release", err)
			continue
		}
		p.set(ng)
		r.event(ng, corev1.EventTypeNormal, "Released", "Release", "Released nodes %s (%s)", joinNames(g.Status.Nodes), reason)
		logr.FromContextOrDiscard(ctx).Info("released GPR", "gpr", g.Name, "workspace", g.Spec.Workspace, "nodes", g.Status.Nodes, "reason", reason)
	}
	r.releaseIdle(ctx, p)
	return nil
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

// planAndStart plans over the nodes and the GPRs, then writes the starts
// one by one. A start that cannot be written is that GPR's problem
// (writeFailed) and the others still start: the plan's starts hold
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
	log := logr.FromContextOrDiscard(ctx)
	for _, s := range p.plan.Starts {
		if blocked[s.ID] {
			continue // a victim still holds some of its nodes
		}
		g := p.gprs[p.byName[s.ID]]
		ng := g.DeepCopy()
		domain.Start(ng, s.Nodes, p.now)
		if err := r.write(ctx, p, ng); err != nil {
			r.writeFailed(p, g, "start", "Bind", err)
			continue
		}
		p.set(ng)
		p.started[ng.Name] = true
		metrics.WaitSeconds.Observe(p.now.Sub(g.CreationTimestamp.Time).Seconds())
		if e, ok := domain.StartEstimateError(ng); ok {
			metrics.StartEstimateError.WithLabelValues(cmp.Or(g.Spec.ClusterName, r.defaultCluster), cmp.Or(g.Spec.GPUShape, "any")).
				Observe(e.Seconds())
		}
		r.event(ng, corev1.EventTypeNormal, "Provisioned", "Bind", "Provisioned nodes %s", joinNames(s.Nodes))
		log.Info("provisioned GPR", "gpr", g.Name, "workspace", g.Spec.Workspace, "nodes", s.Nodes)
	}
	return nil
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
