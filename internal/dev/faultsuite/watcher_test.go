package faultsuite

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/planner"
	"github.com/gpuspace/gpuspace/internal/snapshot"
)

// The invariants and their deadlines.
const (
	invExclusive = "exclusive-nodes"
	invStray     = "stray-pods"
	invDue       = "due-complete"
	invLost      = "no-gpr-lost"
	invEstimates = "estimates-converge"

	strayDeadline     = 5 * time.Second
	dueDeadline       = 2 * time.Second
	estimatesDeadline = 30 * time.Second
)

var invariants = []string{invExclusive, invStray, invDue, invLost, invEstimates}

// violation is one broken invariant, with what the report needs to
// reproduce it.
type violation struct {
	invariant string
	when      time.Time
	at        time.Duration // since the load began
	object    string
	detail    string
	// node and podSeen, for a stray pod: where, and since when the
	// watcher saw the pod.
	node    string
	podSeen time.Time
}

func (v violation) String() string {
	return fmt.Sprintf("%s at +%s (%s): %s: %s", v.invariant, v.at.Round(time.Millisecond), v.when.UTC().Format("15:04:05.000"), v.object, v.detail)
}

// dueTrack follows a provisioned GPR until it completes.
type dueTrack struct {
	due     time.Time
	why     string
	flagged bool
	done    bool
}

// binding is who holds a node, by GPR status, since when the watcher saw it.
type binding struct {
	ws, gpr string
	since   time.Time
}

// strayTrack follows a GPU pod of another workspace on a bound node.
type strayTrack struct {
	pod, node, ws, podWS, gpr string
	since                     time.Time
	// created is the pod's creationTimestamp (whole seconds): a pod
	// created after the binding landed there afterwards, rather than
	// being left by the node's last holder.
	created             time.Time
	arrivedAfterBinding bool
	age                 time.Duration
	flagged             bool
}

// watcher checks the invariants on every state of GPRs and pods its
// informers (straight to the apiserver, not through the proxy) see, and
// every 200 ms.
type watcher struct {
	s      *system
	ledger *ledger
	cache  cache.Cache
	begin  time.Time

	mu         sync.Mutex
	checks     map[string]int
	violations []violation
	flagged    map[string]bool
	dues       map[string]*dueTrack
	duesMet    map[string]int // why due -> completed
	worstLate  time.Duration
	worstLateG string
	bindings   map[string]binding
	podSeen    map[types.UID]time.Time
	strays     map[string]*strayTrack
	straysSeen int
	worstStray *strayTrack
	seen       map[string]bool
	gone       map[string]bool
}

func newWatcher(s *system, l *ledger) *watcher {
	return &watcher{s: s, ledger: l, checks: map[string]int{}, flagged: map[string]bool{}, dues: map[string]*dueTrack{}, duesMet: map[string]int{},
		bindings: map[string]binding{}, podSeen: map[types.UID]time.Time{}, strays: map[string]*strayTrack{},
		seen: map[string]bool{}, gone: map[string]bool{}}
}

// start runs the informers and the checks until ctx ends; it returns once
// the informers have synced.
func (w *watcher) start(ctx context.Context) error {
	c, err := cache.New(w.s.config, cache.Options{Scheme: w.s.client.Scheme()})
	if err != nil {
		return err
	}
	w.cache = c
	poke := make(chan struct{}, 1)
	handler := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { nudge(poke) },
		UpdateFunc: func(any, any) { nudge(poke) },
		DeleteFunc: func(any) { nudge(poke) },
	}
	for _, obj := range []client.Object{&v1alpha1.GPUProvisionRequest{}, &corev1.Pod{}} {
		inf, err := c.GetInformer(ctx, obj)
		if err != nil {
			return err
		}
		if _, err := inf.AddEventHandler(handler); err != nil {
			return err
		}
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		return fmt.Errorf("watcher caches did not sync")
	}
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-poke:
			case <-t.C:
			}
			w.evaluate(ctx, time.Now())
		}
	}()
	return nil
}

func nudge(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// evaluate checks every invariant on the state the caches hold at now.
func (w *watcher) evaluate(ctx context.Context, now time.Time) {
	var gl v1alpha1.GPUProvisionRequestList
	var pl corev1.PodList
	if w.cache.List(ctx, &gl) != nil || w.cache.List(ctx, &pl) != nil {
		return
	}
	gprs := make([]*v1alpha1.GPUProvisionRequest, len(gl.Items))
	for i := range gl.Items {
		gprs[i] = &gl.Items[i]
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.checkExclusive(gprs, now)
	w.checkDue(ctx, gprs, now)
	w.checkStrays(ctx, gprs, pl.Items, now)
	w.checkLost(gprs, now)
}

// flag records a violation once per key.
func (w *watcher) flag(inv, key string, now time.Time, object, format string, args ...any) {
	w.flagViolation(key, violation{invariant: inv, when: now, object: object, detail: fmt.Sprintf(format, args...)})
}

func (w *watcher) flagViolation(key string, v violation) {
	if w.flagged[v.invariant+"/"+key] {
		return
	}
	w.flagged[v.invariant+"/"+key] = true
	v.at = v.when.Sub(w.begin)
	w.violations = append(w.violations, v)
}

func (w *watcher) checkExclusive(gprs []*v1alpha1.GPUProvisionRequest, now time.Time) {
	w.checks[invExclusive]++
	_, conflicts := domain.Holders(gprs)
	for _, c := range conflicts {
		w.flag(invExclusive, c.Node+"/"+strings.Join(c.GPRs, ","), now, "node "+c.Node,
			"in the status of Provisioned GPRs %s", strings.Join(c.GPRs, ", "))
	}
}

// checkDue follows each provisioned GPR's due time (its end, or the moment
// the load's early-release write returned) and measures, at completion,
// how late it was, less the outages in between. A completion is dated
// when the watcher saw it, or one second after its completionTimestamp
// (written truncated to the second) if that is earlier: the watcher's own
// informer may be slow to come back after an apiserver outage.
func (w *watcher) checkDue(ctx context.Context, gprs []*v1alpha1.GPUProvisionRequest, now time.Time) {
	w.checks[invDue]++
	for _, g := range gprs {
		tr := w.dues[g.Name]
		switch {
		case domain.IsProvisioned(g):
			due, why, ok := w.dueOf(g)
			if !ok {
				continue
			}
			if tr == nil || tr.done {
				tr = &dueTrack{}
				w.dues[g.Name] = tr
			}
			tr.due, tr.why = due, why
			if late := w.late(due, now); late > dueDeadline && !tr.flagged && w.stillProvisioned(ctx, g.Name) {
				w.flag(invDue, g.Name, now, "GPR "+g.Name, "still Provisioned %s after it was due (%s at +%s), %s of outages excluded; nodes %v",
					late.Round(time.Millisecond), why, due.Sub(w.begin).Round(time.Millisecond), w.s.outages.within(due, now).Round(time.Millisecond), g.Status.Nodes)
				tr.flagged = true
			}
		case tr != nil && !tr.done && g.Status.ProvisioningStatus == v1alpha1.GPRComplete:
			tr.done = true
			w.duesMet[tr.why]++
			at := now
			if ct := g.Status.CompletionTimestamp; ct != nil && ct.Add(time.Second).Before(at) {
				at = ct.Add(time.Second)
			}
			late := w.late(tr.due, at)
			if late > w.worstLate {
				w.worstLate, w.worstLateG = late, fmt.Sprintf("%s (%s, reason %s)", g.Name, tr.why, g.Status.Reason)
			}
			if late > dueDeadline {
				w.flag(invDue, g.Name, now, "GPR "+g.Name, "Complete (%s) %s after it was due (%s at +%s), %s of outages excluded",
					g.Status.Reason, late.Round(time.Millisecond), tr.why, tr.due.Sub(w.begin).Round(time.Millisecond), w.s.outages.within(tr.due, at).Round(time.Millisecond))
			}
		}
	}
}

// dueOf is when a provisioned GPR is due: its end, or the early release
// the load asked for, whichever is first.
func (w *watcher) dueOf(g *v1alpha1.GPUProvisionRequest) (time.Time, string, bool) {
	due, ok := domain.End(g)
	why := "expired"
	if rel, asked := w.ledger.releasedAt(g.Name); asked && (!ok || rel.Before(due)) {
		due, why, ok = rel, "early release", true
	}
	return due, why, ok
}

// late is how long after due t is, less the outages in between; never
// negative.
func (w *watcher) late(due, t time.Time) time.Duration {
	if !t.After(due) {
		return 0
	}
	return max(t.Sub(due)-w.s.outages.within(due, t), 0)
}

// checkStrays finds GPU pods of another workspace on nodes bound by GPR
// status, and how long each has been there since the binding (or since
// it appeared, if later), less the outages.
func (w *watcher) checkStrays(ctx context.Context, gprs []*v1alpha1.GPUProvisionRequest, pods []corev1.Pod, now time.Time) {
	w.checks[invStray]++
	holders, _ := domain.Holders(gprs)
	for node, h := range holders {
		if b, ok := w.bindings[node]; !ok || b.gpr != h.Name {
			w.bindings[node] = binding{ws: h.Spec.Workspace, gpr: h.Name, since: now}
		}
	}
	for node := range w.bindings {
		if holders[node] == nil {
			delete(w.bindings, node)
		}
	}
	current := map[string]bool{}
	for i := range pods {
		p := &pods[i]
		if _, ok := w.podSeen[p.UID]; !ok {
			w.podSeen[p.UID] = now
		}
		b, bound := w.bindings[p.Spec.NodeName]
		podWS := strings.TrimSuffix(p.Namespace, "-ns")
		if !bound || podWS == b.ws || !running(p) || !domain.PodUsesGPUs(p, domain.GPUPodRule{}, nil) {
			continue
		}
		key := string(p.UID) + "/" + b.gpr
		current[key] = true
		st := w.strays[key]
		if st == nil {
			seen := w.podSeen[p.UID]
			st = &strayTrack{pod: p.Namespace + "/" + p.Name, node: p.Spec.NodeName, ws: b.ws, podWS: podWS, gpr: b.gpr,
				since: maxTime(b.since, seen), created: p.CreationTimestamp.Time, arrivedAfterBinding: seen.After(b.since)}
			w.strays[key] = st
			w.straysSeen++
		}
		st.age = w.late(st.since, now)
		if w.worstStray == nil || st.age > w.worstStray.age {
			w.worstStray = st
		}
		if st.age > strayDeadline && !st.flagged && w.stillRunning(ctx, p) && w.stillHolds(ctx, st.gpr, st.node) {
			st.flagged = true
			w.flagViolation(key, violation{invariant: invStray, when: now, object: "pod " + st.pod, detail: st.describe(w.begin),
				node: st.node, podSeen: w.podSeen[p.UID]})
		}
	}
	for key := range w.strays {
		if !current[key] {
			delete(w.strays, key)
		}
	}
}

func (st *strayTrack) describe(begin time.Time) string {
	arrived := "was there when the node was bound"
	if st.arrivedAfterBinding {
		arrived = "arrived after the node was bound"
	}
	return fmt.Sprintf("GPU pod of workspace %s on node %s (bound to %s by %s since +%s) for %s, outages excluded; it %s (created +%s)",
		st.podWS, st.node, st.ws, st.gpr, st.since.Sub(begin).Round(time.Millisecond), st.age.Round(time.Millisecond), arrived,
		st.created.Sub(begin).Round(time.Second))
}

// stillProvisioned confirms on a live read that a GPR the cache shows
// Provisioned past its deadline still is: the watcher's informer may be
// slow to catch up after an apiserver outage. A failed read confirms.
func (w *watcher) stillProvisioned(ctx context.Context, name string) bool {
	var g v1alpha1.GPUProvisionRequest
	err := w.s.client.Get(ctx, client.ObjectKey{Name: name}, &g)
	return err != nil && !apierrors.IsNotFound(err) || err == nil && domain.IsProvisioned(&g)
}

// stillRunning confirms on a live read that a pod the cache shows running
// still is, as stillProvisioned does for GPRs.
func (w *watcher) stillRunning(ctx context.Context, p *corev1.Pod) bool {
	live, err := w.s.kube.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
	return err != nil && !apierrors.IsNotFound(err) || err == nil && live.UID == p.UID && running(live)
}

// stillHolds confirms on a live read that GPR name still holds node: the
// watcher's GPR and pod informers may lag each other after an outage, and
// a pod of the node's next holder is no stray of its last.
func (w *watcher) stillHolds(ctx context.Context, name, node string) bool {
	var g v1alpha1.GPUProvisionRequest
	err := w.s.client.Get(ctx, client.ObjectKey{Name: name}, &g)
	return err != nil && !apierrors.IsNotFound(err) || err == nil && domain.IsProvisioned(&g) && slices.Contains(g.Status.Nodes, node)
}

// running is a pod that is not being deleted and has not finished.
func running(p *corev1.Pod) bool {
	return p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

// checkLost flags GPRs that failed, or vanished without the load asking
// for their deletion.
func (w *watcher) checkLost(gprs []*v1alpha1.GPUProvisionRequest, now time.Time) {
	w.checks[invLost]++
	present := map[string]bool{}
	for _, g := range gprs {
		present[g.Name] = true
		w.seen[g.Name] = true
		if g.Status.ProvisioningStatus == v1alpha1.GPRError {
			w.flag(invLost, g.Name, now, "GPR "+g.Name, "failed: reason %s: %s", g.Status.Reason, g.Status.FailureReason)
		}
	}
	for name := range w.seen {
		if !present[name] && !w.gone[name] {
			w.gone[name] = true
			if !w.ledger.deleteAsked(name) {
				w.flag(invLost, name, now, "GPR "+name, "disappeared; the load never deleted it")
			}
		}
	}
}

// checkCreatedExist reads every GPR the load created and did not delete
// straight from the apiserver: each must exist.
func (w *watcher) checkCreatedExist(ctx context.Context) error {
	var list v1alpha1.GPUProvisionRequestList
	if err := w.s.client.List(ctx, &list); err != nil {
		return err
	}
	have := map[string]bool{}
	for _, g := range list.Items {
		have[g.Name] = true
	}
	w.ledger.mu.Lock()
	var missing []string
	for name := range w.ledger.created {
		if !have[name] && !w.ledger.deleted[name] {
			missing = append(missing, name)
		}
	}
	w.ledger.mu.Unlock()
	sort.Strings(missing)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.checks[invLost]++
	for _, name := range missing {
		w.flag(invLost, name, time.Now(), "GPR "+name, "created by the load, never deleted, not on the apiserver at the end")
	}
	return nil
}

// estimateDrift lists the queued GPRs whose stored estimates, the likely
// start (estimatedStartTime) or the latest (latestStartTime), are off the
// plan's by more than domain.EstimateTolerance, read straight from the
// apiserver and planned as the controller plans: the latest start is
// planner.Compute's, the likely one snapshot.Likely's.
func (w *watcher) estimateDrift(ctx context.Context) ([]string, error) {
	snap, err := snapshot.Reader{Client: w.s.client}.Read(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now().Truncate(time.Second)
	in, _ := snap.Input(now, v1alpha1.DefaultCluster)
	plan := planner.Compute(in)
	likely := snap.Likely(in, plan)
	var drift []string
	for _, g := range snap.GPRs {
		if !domain.IsQueued(g) {
			continue
		}
		latest, ok := plan.Estimates[g.Name]
		if domain.EstimatesMoved(g, likely[g.Name], latest, ok, now) {
			drift = append(drift, fmt.Sprintf("%s stored likely %v latest %v, plan likely %v latest %v", g.Name,
				storedTime(g.Status.EstimatedStartTime), storedTime(g.Status.LatestStartTime), planned(likely[g.Name], ok), planned(latest, ok)))
		}
	}
	return drift, nil
}

func storedTime(t *metav1.Time) string {
	if t == nil {
		return "none"
	}
	return t.UTC().Format(time.TimeOnly)
}

func planned(t time.Time, ok bool) string {
	if !ok {
		return "none"
	}
	return t.UTC().Format(time.TimeOnly)
}

// waitEstimates polls estimateDrift every 500 ms until there is none,
// and flags estimates-converge if that takes longer than the deadline
// (less the outages meanwhile). It returns how long convergence took.
func (w *watcher) waitEstimates(ctx context.Context, from time.Time) time.Duration {
	var last []string
	for {
		drift, err := w.estimateDrift(ctx)
		w.mu.Lock()
		w.checks[invEstimates]++
		w.mu.Unlock()
		if err == nil && len(drift) == 0 {
			return time.Since(from)
		}
		if err == nil {
			last = drift
		}
		if w.late(from, time.Now()) > estimatesDeadline || ctx.Err() != nil {
			w.mu.Lock()
			w.flag(invEstimates, "end", time.Now(), fmt.Sprintf("%d queued GPRs", len(last)),
				"stored estimates still off the plan %s after the faults stopped: %s", estimatesDeadline, strings.Join(last, "; "))
			w.mu.Unlock()
			return time.Since(from)
		}
		sleep(ctx, 500*time.Millisecond)
	}
}
