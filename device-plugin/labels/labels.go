// Package labels publishes a node's GPU facts as node labels, which the
// gpuspace inventory and planner read: NVIDIA GPU Feature Discovery's
// nvidia.com/gpu.product, nvidia.com/gpu.memory (MiB) and
// nvidia.com/gpu.count, and gpuspace.io/gpu.shape (the normalised model).
//
// Labels are written by server-side apply with their own field manager, so
// the plugin owns exactly the labels it sets and a later apply without one
// removes it. Where feature discovery already runs and owns the nvidia.com
// labels, the plugin leaves them to it and applies only its own.
package labels

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/device-plugin/nvml"
	"github.com/gpuspace/gpuspace/internal/util/gpushape"
)

// FieldManager is the server-side apply field manager of the labels.
const FieldManager = "gpuspace-device-plugin"

// labelGFDTimestamp is set by GPU Feature Discovery on every run.
const labelGFDTimestamp = "nvidia.com/gfd.timestamp"

// nvidiaLabels are the labels feature discovery also writes.
var nvidiaLabels = []string{v1alpha1.LabelGPUProduct, v1alpha1.LabelGPUMemory, v1alpha1.LabelGPUCount, v1alpha1.LabelGPUClique}

// For returns the labels for a node with gpus. On a node with more than
// one model, product, memory and shape describe the most common model
// (the lowest index wins a tie) and count is every GPU, as feature
// discovery does. A node without GPUs gets no labels.
func For(gpus []nvml.GPU) map[string]string {
	if len(gpus) == 0 {
		return map[string]string{}
	}
	count := map[string]int{}
	mem := map[string]uint64{}
	best := ""
	for _, g := range gpus {
		count[g.Name]++
		if m, ok := mem[g.Name]; !ok || g.MemoryMiB < m {
			mem[g.Name] = g.MemoryMiB
		}
		if best == "" || count[g.Name] > count[best] {
			best = g.Name
		}
	}
	out := map[string]string{
		v1alpha1.LabelGPUProduct: LabelValue(best),
		v1alpha1.LabelGPUMemory:  strconv.FormatUint(mem[best], 10),
		v1alpha1.LabelGPUCount:   strconv.Itoa(len(gpus)),
		v1alpha1.LabelGPUShape:   gpushape.Normalize(best),
	}
	if c := Clique(gpus); c != "" {
		out[v1alpha1.LabelGPUClique] = c
	}
	return out
}

// Clique is the node's NVLink clique: the one every GPU reports (fabric
// complete), else none.
func Clique(gpus []nvml.GPU) string {
	c := gpus[0].Clique
	for _, g := range gpus[1:] {
		if g.Clique != c {
			return ""
		}
	}
	return c
}

var invalidLabelChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// LabelValue turns a product name into a valid label value the way
// feature discovery does ("NVIDIA H100 80GB HBM3" → "NVIDIA-H100-80GB-HBM3").
func LabelValue(s string) string {
	s = invalidLabelChars.ReplaceAllString(strings.TrimSpace(s), "-")
	if len(s) > 63 {
		s = s[:63]
	}
	return strings.TrimFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	})
}

// Labeler applies a node's GPU labels.
type Labeler struct {
	Client kubernetes.Interface
	Node   string
	Log    logr.Logger
}

// Apply sets the labels for gpus on the node, leaving the nvidia.com
// labels to feature discovery where it owns them. It never creates the
// node. It returns the labels it applied.
func (l *Labeler) Apply(ctx context.Context, gpus []nvml.GPU) (map[string]string, error) {
	node, err := l.Client.CoreV1().Nodes().Get(ctx, l.Node, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get node %s: %w", l.Node, err)
	}
	want := For(gpus)
	if owner := gfdOwner(node); owner != "" {
		l.Log.V(1).Info("GPU feature discovery owns the nvidia.com labels; applying only gpuspace's", "manager", owner)
		for _, k := range nvidiaLabels {
			delete(want, k)
		}
	}
	ac := corev1ac.Node(l.Node).WithLabels(want)
	// Apply would create a missing node; the precondition on its UID
	// makes a node deleted since the Get fail instead.
	ac.WithUID(node.UID)
	if _, err := l.Client.CoreV1().Nodes().Apply(ctx, ac, metav1.ApplyOptions{FieldManager: FieldManager, Force: true}); err != nil {
		return nil, fmt.Errorf("apply labels to node %s: %w", l.Node, err)
	}
	return want, nil
}

// gfdOwner returns the field manager other than ours that owns
// nvidia.com/gpu.product on the node, or "" if none does. A node labelled
// with nvidia.com/gfd.timestamp counts as feature discovery's even when its
// managed fields are unavailable.
func gfdOwner(node interface {
	GetLabels() map[string]string
	GetManagedFields() []metav1.ManagedFieldsEntry
}) string {
	for _, mf := range node.GetManagedFields() {
		if mf.Manager == FieldManager || mf.FieldsV1 == nil {
			continue
		}
		var fields map[string]any
		if json.Unmarshal(mf.FieldsV1.Raw, &fields) != nil {
			continue
		}
		meta, _ := fields["f:metadata"].(map[string]any)
		labels, _ := meta["f:labels"].(map[string]any)
		if _, ok := labels["f:"+v1alpha1.LabelGPUProduct]; ok {
			return mf.Manager
		}
	}
	if _, ok := node.GetLabels()[labelGFDTimestamp]; ok {
		return "gpu-feature-discovery"
	}
	return ""
}

// Run applies the labels now and again every interval (default 10m), so
// that labels someone removed come back and feature discovery deployed
// later takes over; failures are retried after retry (default 10s). It
// returns when ctx ends.
func (l *Labeler) Run(ctx context.Context, gpus []nvml.GPU, interval, retry time.Duration) {
	if interval <= 0 {
		interval = 10 * time.Minute
	}
	if retry <= 0 {
		retry = 10 * time.Second
	}
	for {
		wait := interval
		applied, err := l.Apply(ctx, gpus)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			l.Log.Error(err, "node labels not applied; retrying", "in", retry)
			wait = retry
		} else {
			l.Log.V(1).Info("node labels applied", "labels", applied)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
