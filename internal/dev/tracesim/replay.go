package tracesim

import (
	"container/heap"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/holdtime"
	"github.com/gpuspace/gpuspace/internal/planner"
	"github.com/gpuspace/gpuspace/internal/util/duration"
)

// cluster is the one cluster of a replay.
const cluster = "sim"

// Estimator names an estimate the replay records for every queued GPR.
type Estimator string

const (
	// Baseline is today's estimate: every GPR ahead holds its nodes for
	// its whole request (planner.Compute). It is also the latest start.
	Baseline Estimator = "baseline (requested durations)"
	// LastTwo is the likely start with holdtime.LastTwo (Tsafrir et al.).
	LastTwo Estimator = "likely, last-two mean"
	// Ratio is the likely start with holdtime.Ratio.
	Ratio Estimator = "likely, workspace ratio"
)

// Estimators are the estimates a replay records, Baseline first.
var Estimators = []Estimator{Baseline, LastTwo, Ratio}

// estimate is what the estimators said at one moment, in Estimators'
// order.
type estimate struct {
	at    time.Time
	start []time.Time
}

// record is one GPR's story in a replay.
type record struct {
	job     *Job
	started time.Time
	// series are the estimates made while it waited, each kept only when
	// one moved; series[0] is the estimate at submission.
	series []estimate
	// outranked is set when a GPR of higher priority arrived while it
	// waited: the latest-start bound promises nothing then.
	outranked bool
}

// replay is a trace being replayed.
type replay struct {
	t        Trace
	now      time.Time
	nodes    []*corev1.Node
	active   map[string]*v1alpha1.GPUProvisionRequest
	records  map[string]*record
	releases releaseHeap
	// gen counts each GPR's starts, so that a release scheduled for a run
	// an eviction ended is ignored.
	gen     map[string]int
	history *holdtime.History
	passes  int
	evicted int
}

// Replay runs trace t to the end and returns each GPR's record.
func Replay(t Trace) Result {
	r := &replay{t: t, now: t.Start, active: map[string]*v1alpha1.GPUProvisionRequest{}, records: map[string]*record{},
		gen: map[string]int{}, history: holdtime.NewHistory(holdtime.Keep)}
	r.nodes = poolNodes(t.Nodes)
	next := 0
	for next < len(t.Jobs) || r.releases.Len() > 0 {
		r.now = r.nextEvent(next)
		for r.releases.Len() > 0 && !r.releases[0].at.After(r.now) {
			r.release(heap.Pop(&r.releases).(release))
		}
		for next < len(t.Jobs) && !t.Jobs[next].Arrival.After(r.now) {
			r.arrive(&t.Jobs[next])
			next++
		}
		r.pass()
	}
	return r.result()
}

// nextEvent is the time of the next arrival or release.
func (r *replay) nextEvent(next int) time.Time {
	var at time.Time
	if next < len(r.t.Jobs) {
		at = r.t.Jobs[next].Arrival
	}
	if r.releases.Len() > 0 && (at.IsZero() || r.releases[0].at.Before(at)) {
		at = r.releases[0].at
	}
	return at
}

// arrive queues a job's GPR, as the REST API creates it and admission
// admits it.
func (r *replay) arrive(j *Job) {
	g := &v1alpha1.GPUProvisionRequest{
		ObjectMeta: metav1.ObjectMeta{Name: j.ID, CreationTimestamp: metav1.Time{Time: j.Arrival}},
		Spec: v1alpha1.GPUProvisionRequestSpec{
			GPRName: j.ID, Workspace: j.Workspace, ClusterName: cluster, GPUShape: j.Shape,
			NumberOfGPUs: 8, NumberOfGPUNodes: j.Nodes, Priority: j.Priority, EnableEviction: j.CanEvict,
			ExitDuration: duration.FormatEGS(j.Requested), RequeueOnFailure: true,
		},
	}
	domain.Admit(g)
	for id, w := range r.active {
		if domain.IsQueued(w) && w.Spec.Priority < j.Priority {
			r.records[id].outranked = true
		}
	}
	r.active[j.ID] = g
	r.records[j.ID] = &record{job: j}
}

// release ends a run: the GPR's user released it (or it was idle), or
// its time was up; its hold joins its workspace's history.
func (r *replay) release(rel release) {
	g := r.active[rel.id]
	if g == nil || r.gen[rel.id] != rel.gen || !domain.IsProvisioned(g) {
		return // evicted since
	}
	reason := v1alpha1.ReasonEarlyReleased
	if j := r.records[rel.id].job; j.Held >= j.Requested {
		reason = v1alpha1.ReasonExpired
	}
	domain.Release(g, reason, r.now)
	r.history.Add(g.Spec.Workspace, holdtime.Sample{Requested: r.records[rel.id].job.Requested,
		Held: r.now.Sub(g.Status.StartTimestamp.Time), Finished: r.now})
	delete(r.active, rel.id)
}

// pass is the controller's plan pass, without an apiserver: plan, evict,
// start, and record every estimate.
func (r *replay) pass() {
	r.passes++
	gprs := make([]*v1alpha1.GPUProvisionRequest, 0, len(r.active))
	for _, g := range r.active {
		gprs = append(gprs, g)
	}
	slices.SortFunc(gprs, func(a, b *v1alpha1.GPUProvisionRequest) int { return strings.Compare(a.Name, b.Name) })
	in, _ := planner.InputOf(r.now, gprs, r.nodes, cluster)
	plan := planner.Compute(in)
	likely := []map[string]time.Time{
		planner.LikelyEstimates(in, plan, holdtime.ForPlan{Predictor: holdtime.LastTwo{History: r.history}}),
		planner.LikelyEstimates(in, plan, holdtime.ForPlan{Predictor: holdtime.Ratio{History: r.history}}),
	}
	for _, e := range plan.Evictions {
		domain.Evict(r.active[e.Victim], e.By, true, "", r.now)
		r.evicted++
	}
	for _, s := range plan.Starts {
		g := r.active[s.ID]
		domain.Start(g, s.Nodes, r.now)
		r.gen[s.ID]++
		rec := r.records[s.ID]
		if rec.started.IsZero() {
			rec.started = r.now
		}
		heap.Push(&r.releases, release{at: r.now.Add(rec.job.Held), id: s.ID, gen: r.gen[s.ID]})
	}
	for id, latest := range plan.Estimates {
		rec := r.records[id]
		if !rec.started.IsZero() && rec.started.Before(r.now) {
			continue // requeued after an eviction: its first wait is measured
		}
		rec.note(r.now, []time.Time{latest, likely[0][id], likely[1][id]})
	}
}

// note records the estimates of a waiting GPR at now, when one moved by a
// second or more since the last.
func (rec *record) note(now time.Time, starts []time.Time) {
	if n := len(rec.series); n > 0 {
		last := rec.series[n-1].start
		same := true
		for i := range starts {
			if d := starts[i].Sub(last[i]); d > time.Second || d < -time.Second {
				same = false
			}
		}
		if same {
			return
		}
	}
	rec.series = append(rec.series, estimate{at: now, start: starts})
}

// poolNodes are the simulated pool's nodes, Ready, 8 GPUs each.
func poolNodes(perShape map[string]int) []*corev1.Node {
	var out []*corev1.Node
	for _, s := range shapes {
		for i := range perShape[s.name] {
			out = append(out, &corev1.Node{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%03d", s.name, i), Labels: map[string]string{
					v1alpha1.LabelGPUShape: s.name, v1alpha1.LabelGPUCount: "8", v1alpha1.LabelGPUMemory: "81920",
				}},
				Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}},
			})
		}
	}
	return out
}

// release is a scheduled end of a run.
type release struct {
	at  time.Time
	id  string
	gen int
}

// releaseHeap orders releases by time, then GPR.
type releaseHeap []release

func (h releaseHeap) Len() int { return len(h) }
func (h releaseHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].id < h[j].id
}
func (h releaseHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *releaseHeap) Push(x any)   { *h = append(*h, x.(release)) }
func (h *releaseHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
