// Package idlesignal is the idle signal of GPU nodes, shared by the device
// plugin (which measures GPUs from NVML), the simulated nodes of
// internal/nodesim (which follow the GPU pods running on them) and the
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
//   - Read interprets a Node's annotation (for controllers and the API).
//   - Tracker turns per-GPU idle/busy observations into the node's
//     idle-since: the moment the last of its GPUs became idle.
//   - Publisher writes the annotation, only when idle-ness changes.
package idlesignal

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// Annotation is the annotation this package reads and writes.
const Annotation = v1alpha1.AnnotationGPUsIdleSince

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
// changes, and only then. It learns what is published from the node on
// its first call (or from Seed), so a restarted publisher neither rewrites
// an unchanged state nor resets the idle-since of a node that stayed idle.
// It is safe for concurrent use.
type Publisher struct {
	Client kubernetes.Interface
	Node   string
	// FieldManager names the writer in the node's managed fields.
	FieldManager string

	mu     sync.Mutex
	known  bool   // value is what the node carries
	value  string // the published value
	hasKey bool   // the node carries the annotation at all
	writes int
}

// Seed tells the publisher what the node carries now, from an object at
// hand, sparing the read its first Publish would make.
func (p *Publisher) Seed(node metav1.Object) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.value, p.hasKey = node.GetAnnotations()[Annotation]
	p.known = true
}

// Forget makes the next Publish read the node again, to notice an
// annotation someone else removed or changed.
func (p *Publisher) Forget() {
	p.mu.Lock()
	p.known = false
	p.mu.Unlock()
}

// Writes is how many times the publisher has written the annotation.
func (p *Publisher) Writes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.writes
}

// Published is the value the publisher last knew the node to carry, and
// whether it carries the annotation at all.
func (p *Publisher) Published() (value string, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.value, p.known && p.hasKey
}

// Publish makes the node say idle since idleSince (the zero time: busy).
// It writes only when the node's published idle-ness differs: a node
// already published idle stays published with its earlier idle-since (a
// restarted plugin continues the count), and a busy node is not rewritten.
// It reports whether it wrote.
func (p *Publisher) Publish(ctx context.Context, idleSince time.Time) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.known {
		n, err := p.Client.CoreV1().Nodes().Get(ctx, p.Node, metav1.GetOptions{})
		if err != nil {
			return false, fmt.Errorf("read idle annotation of node %s: %w", p.Node, err)
		}
		p.value, p.hasKey = n.Annotations[Annotation]
		p.known = true
	}
	wantIdle := !idleSince.IsZero()
	if p.hasKey {
		t, err := time.Parse(time.RFC3339, p.value)
		valid := p.value == "" || err == nil
		if valid && (!t.IsZero()) == wantIdle {
			return false, nil
		}
	}
	value := Format(idleSince)
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{Annotation: value}}})
	if err != nil {
		return false, err
	}
	if _, err := p.Client.CoreV1().Nodes().Patch(ctx, p.Node, types.MergePatchType, patch,
		metav1.PatchOptions{FieldManager: p.FieldManager}); err != nil {
		p.known = false // the write may have happened; read before the next one
		return false, fmt.Errorf("write idle annotation of node %s: %w", p.Node, err)
	}
	p.value, p.hasKey = value, true
	p.writes++
	return true, nil
}
