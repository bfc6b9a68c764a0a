// Package idlesignal is the idle signal of GPU nodes, shared by the device
// plugin (which measures GPUs from NVML), the simulated nodes of
// internal/dev/nodesim (which follow the GPU pods running on them) and the
// control plane (which releases GPRs whose GPUs stayed idle).
//
// The signal is one Node annotation, v1alpha1.AnnotationGPUsIdleSince: the
// RFC 3339 time since which all of the node's GPUs have been idle, or ""
// while any of them is busy. It is written only on transitions (busy →
// idle, idle → busy), so a node costs the apiserver two writes per busy
// spell, however often it is sampled; the idle-since time is carried in
// the value, so readers compute "idle for how long" from their own clock
// without further writes.
//
// Beside it, v1alpha1.AnnotationGPUUtilization carries a coarse mean GPU
// utilisation for display: written with every transition, and on its own
// at most once per Publisher.UtilizationInterval (5m) when it moved by 10
// points.
//
//   - Read, AllIdleSince, IdleFor and ReadUtilization interpret Nodes (for
//     controllers and the API); IdleChanged is for watch predicates.
//   - Tracker turns per-GPU idle/busy observations into the node's
//     idle-since: the moment the last of its GPUs became idle.
//   - Publisher writes the annotations, only when idle-ness changes (and
//     rarely for the utilisation).
package idlesignal

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// Annotation is the idle-since annotation this package reads and writes.
const Annotation = v1alpha1.AnnotationGPUsIdleSince

// UtilizationAnnotation is the coarse utilisation figure published beside
// it, for display.
const UtilizationAnnotation = v1alpha1.AnnotationGPUUtilization

// Defaults of Publisher.
const (
	DefaultUtilizationInterval = 5 * time.Minute
	DefaultUtilizationStep     = 10
)

// NoUtilization is the utilisation to publish when none could be read.
const NoUtilization = -1

// ReadUtilization returns the node's published mean GPU utilisation in
// percent, and false when it publishes none.
func ReadUtilization(node metav1.Object) (percent int, ok bool) {
	v, present := node.GetAnnotations()[UtilizationAnnotation]
	if !present || v == "" {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > 100 {
		return 0, false
	}
	return n, true
}

// Read returns the time since which all of the node's GPUs have been idle
// (zero while any is busy) and whether the node publishes idleness at all.
// A node without the annotation, or with a value that is not a time, does
// not publish: idle release must never apply to it. Read is pure; pass a
// *corev1.Node or any object's metadata.
func Read(node metav1.Object) (idleSince time.Time, published bool) {
	v, ok := node.GetAnnotations()[Annotation]
	if !ok {
		return time.Time{}, false
	}
	if v == "" {
		return time.Time{}, true
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

// IdleChanged reports whether a node update changed its idle signal (the
// idle-since annotation; not the utilisation figure), for watch
// predicates that should wake on idle transitions and nothing else.
func IdleChanged(old, new metav1.Object) bool {
	o, oldOK := old.GetAnnotations()[Annotation]
	n, newOK := new.GetAnnotations()[Annotation]
	return oldOK != newOK || o != n
}

// AllIdleSince is the time since which all of nodes have been idle (the
// latest of their idle-since times), for a GPR holding several nodes. ok is
// false when any node does not publish idleness or there are no nodes;
// the time is zero when any is busy.
func AllIdleSince[N metav1.Object](nodes []N) (since time.Time, ok bool) {
	if len(nodes) == 0 {
		return time.Time{}, false
	}
	busy := false
	for _, n := range nodes {
		s, published := Read(n)
		if !published {
			return time.Time{}, false
		}
		if s.IsZero() {
			busy = true
		}
		if s.After(since) {
			since = s
		}
	}
	if busy {
		return time.Time{}, true
	}
	return since, true
}

// IdleFor is how long the node's GPUs have been idle at now, counted from
// no earlier than from (a GPR's start, say): max(from, idleSince) to now.
// It is 0 when the node is busy, publishes nothing, or from/idleSince is
// after now.
func IdleFor(node metav1.Object, from, now time.Time) time.Duration {
	since, ok := Read(node)
	if !ok || since.IsZero() {
		return 0
	}
	if from.After(since) {
		since = from
	}
	if d := now.Sub(since); d > 0 {
		return d
	}
	return 0
}

// Format is the annotation value for idle since t: RFC 3339 in UTC, in
// whole seconds rounded up, so that idleness is never over-counted by the
// truncation. The zero time formats as "" (busy).
func Format(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	t = t.UTC()
	if r := t.Truncate(time.Second); !r.Equal(t) {
		t = r.Add(time.Second)
	}
	return t.Format(time.RFC3339)
}

// Tracker follows the idle state of a node's GPUs between observations.
// The zero value is ready to use; it is not safe for concurrent use.
type Tracker struct {
	since map[string]time.Time // GPU -> when it was first seen idle
	seen  map[string]bool      // every GPU ever observed
}

// Observe records which GPUs are idle at now (a GPU missing from idle, or
// false, is busy: callers put GPUs they could not read there as false) and
// returns the time since which all of them have been idle: the latest of
// the moments each became idle. A GPU observed before and missing now is
// busy. It returns zero while any GPU is busy, and for a node without GPUs.
func (t *Tracker) Observe(now time.Time, idle map[string]bool) time.Time {
	if t.since == nil {
		t.since = map[string]time.Time{}
		t.seen = map[string]bool{}
	}
	for gpu := range t.since {
		if !idle[gpu] {
			delete(t.since, gpu)
		}
	}
	var all time.Time
	busy := len(idle) == 0
	for gpu := range t.seen {
		if _, ok := idle[gpu]; !ok {
			busy = true
		}
	}
	for gpu, isIdle := range idle {
		t.seen[gpu] = true
		if !isIdle {
			busy = true
			continue
		}
		s, ok := t.since[gpu]
		if !ok {
			s = now
			t.since[gpu] = s
		}
		if s.After(all) {
			all = s
		}
	}
	if busy {
		return time.Time{}
	}
	return all
}

// Publisher writes a node's idle annotation when the node's idle-ness
// changes, and only then; beside it, the node's mean GPU utilisation, with
// every such write and otherwise at most once per UtilizationInterval when
// it moved by UtilizationStep points. It learns what is published from the
// node on its first call (or from Seed), so a restarted publisher neither
// rewrites an unchanged state nor resets the idle-since of a node that
// stayed idle. It is safe for concurrent use.
type Publisher struct {
	Client kubernetes.Interface
	Node   string
	// FieldManager names the writer in the node's managed fields.
	FieldManager string
	// UtilizationInterval is the least time between writes made for the
	// utilisation alone (DefaultUtilizationInterval; negative: none, the
	// utilisation then changes only with idle-ness).
	UtilizationInterval time.Duration
	// UtilizationStep is how many points the utilisation must move for a
	// write of its own (DefaultUtilizationStep).
	UtilizationStep int
	// Now is the clock (time.Now).
	Now func() time.Time

	mu      sync.Mutex
	known   bool   // idle and util are what the node carries
	idle    string // the published idle-since value
	hasIdle bool   // the node carries the idle annotation at all
	util    string // the published utilisation
	hasUtil bool
	utilAt  time.Time // when the utilisation was last written
	writes  int
}

// Seed tells the publisher what the node carries now, from an object at
// hand, sparing the read its first Publish would make.
func (p *Publisher) Seed(node metav1.Object) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.learn(node.GetAnnotations())
}

func (p *Publisher) learn(a map[string]string) {
	p.idle, p.hasIdle = a[Annotation]
	p.util, p.hasUtil = a[UtilizationAnnotation]
	p.known = true
}

// Forget makes the next Publish read the node again, to notice an
// annotation someone else removed or changed.
func (p *Publisher) Forget() {
	p.mu.Lock()
	p.known = false
	p.mu.Unlock()
}

// Writes is how many times the publisher has written the node.
func (p *Publisher) Writes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.writes
}

// Publish makes the node say idle since idleSince (the zero time: busy),
// publishing no utilisation. See PublishUsage.
func (p *Publisher) Publish(ctx context.Context, idleSince time.Time) (bool, error) {
	return p.PublishUsage(ctx, idleSince, NoUtilization)
}

// PublishUsage makes the node say idle since idleSince (the zero time:
// busy) and, unless utilPercent is NoUtilization, that its GPUs' mean
// utilisation is utilPercent. It writes when the node's published
// idle-ness differs — a node already published idle keeps its earlier
// idle-since (a restarted plugin continues the count) — carrying the
// utilisation along, or when the utilisation alone moved enough and the
// last write of it is old enough. It reports whether it wrote.
func (p *Publisher) PublishUsage(ctx context.Context, idleSince time.Time, utilPercent int) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.known {
		n, err := p.Client.CoreV1().Nodes().Get(ctx, p.Node, metav1.GetOptions{})
		if err != nil {
			return false, fmt.Errorf("read idle annotation of node %s: %w", p.Node, err)
		}
		p.learn(n.Annotations)
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	annotations := map[string]string{}
	if !p.idleMatches(!idleSince.IsZero()) {
		annotations[Annotation] = Format(idleSince)
		if utilPercent != NoUtilization {
			annotations[UtilizationAnnotation] = strconv.Itoa(utilPercent)
		}
	} else if utilPercent != NoUtilization && p.utilDue(utilPercent, now()) {
		annotations[UtilizationAnnotation] = strconv.Itoa(utilPercent)
	}
	if len(annotations) == 0 {
		return false, nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": annotations}})
	if err != nil {
		return false, err
	}
	if _, err := p.Client.CoreV1().Nodes().Patch(ctx, p.Node, types.MergePatchType, patch,
		metav1.PatchOptions{FieldManager: p.FieldManager}); err != nil {
		p.known = false // the write may have happened; read before the next one
		return false, fmt.Errorf("write idle annotation of node %s: %w", p.Node, err)
	}
	if v, ok := annotations[Annotation]; ok {
		p.idle, p.hasIdle = v, true
	}
	if v, ok := annotations[UtilizationAnnotation]; ok {
		p.util, p.hasUtil, p.utilAt = v, true, now()
	}
	p.writes++
	return true, nil
}

// Set writes the node's idle-since as given, transition or not (zero:
// busy), and remembers it: for tests and simulations that place the signal
// at a chosen moment.
func (p *Publisher) Set(ctx context.Context, idleSince time.Time) error {
	p.mu.Lock()
	p.known, p.hasIdle, p.idle = true, false, ""
	p.mu.Unlock()
	_, err := p.Publish(ctx, idleSince)
	return err
}

// idleMatches reports whether the node already says it is idle (or busy)
// with a well-formed value.
func (p *Publisher) idleMatches(wantIdle bool) bool {
	if !p.hasIdle {
		return false
	}
	if p.idle == "" {
		return !wantIdle
	}
	_, err := time.Parse(time.RFC3339, p.idle)
	return err == nil && wantIdle
}

// utilDue reports whether the utilisation alone is worth a write now.
func (p *Publisher) utilDue(percent int, now time.Time) bool {
	interval := p.UtilizationInterval
	if interval == 0 {
		interval = DefaultUtilizationInterval
	}
	step := p.UtilizationStep
	if step <= 0 {
		step = DefaultUtilizationStep
	}
	if interval < 0 || (!p.utilAt.IsZero() && now.Sub(p.utilAt) < interval) {
		return false
	}
	old, err := strconv.Atoi(p.util)
	if !p.hasUtil || err != nil {
		return true
	}
	d := percent - old
	return d >= step || -d >= step
}
