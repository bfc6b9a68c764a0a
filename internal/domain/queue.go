package domain

import (
	"cmp"
	"strings"
	"time"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// QueueKey is what orders queued GPRs, within a workspace and across
// workspaces alike: the planner and the scheduler plugin's QueueSort both
// compare QueueKeys, so pods and the plan agree on who goes first.
type QueueKey struct {
	// Priority is the effective priority (Priority): higher first.
	Priority int32
	// Created is when the GPR joined the queue (QueueCreated): older first.
	Created time.Time
	// Name breaks ties, so the order is total.
	Name string
}

// QueueKeyOf is g's place in the queue.
func QueueKeyOf(g *v1alpha1.GPUProvisionRequest) QueueKey {
	return QueueKey{Priority: Priority(g), Created: QueueCreated(g), Name: g.Name}
}

// Compare orders a before b (negative) when a goes first: priority (higher
// first), then creation (older first), then name.
func (a QueueKey) Compare(b QueueKey) int {
	return cmp.Or(
		cmp.Compare(b.Priority, a.Priority),
		a.Created.Compare(b.Created),
		strings.Compare(a.Name, b.Name),
	)
}

// QueueCreated is when g joined the queue: its creation, except for the
// hub's projection of a GPR into a worker cluster, created when it was
// projected, whose age is the hub GPR's (AnnotationProjectedCreated).
func QueueCreated(g *v1alpha1.GPUProvisionRequest) time.Time {
	if g.Labels[v1alpha1.LabelProjectedFrom] != "" {
		if t, err := time.Parse(time.RFC3339, g.Annotations[v1alpha1.AnnotationProjectedCreated]); err == nil {
			return t
		}
	}
	return g.CreationTimestamp.Time
}
