package domain

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/util/idlesignal"
)

func TestDefaultEnforceIdleTimeOut(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name    string
		enforce *bool
		timeout string
		want    bool
	}{
		{"not given, no timeout", nil, "", false},
		{"not given, timeout: EGS default on", nil, "0d0h30m", true},
		{"explicit false kept", &no, "0d0h30m", false},
		{"explicit true kept", &yes, "", true},
	}
	for _, tt := range tests {
		if got := DefaultEnforceIdleTimeOut(tt.enforce, tt.timeout); got != tt.want {
			t.Errorf("%s: DefaultEnforceIdleTimeOut = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestIdleEnforced(t *testing.T) {
	on := &v1alpha1.WorkspacePolicy{Spec: v1alpha1.WorkspacePolicySpec{EnforceIdleTimeOut: true}}
	off := &v1alpha1.WorkspacePolicy{}
	tests := []struct {
		name    string
		timeout string
		enforce bool
		policy  *v1alpha1.WorkspacePolicy
		want    bool
	}{
		{"enforced with a timeout", "0d0h5m", true, nil, true},
		{"not enforced", "0d0h5m", false, nil, false},
		{"enforced without a timeout: nothing to enforce", "", true, nil, false},
		{"zero timeout", "0d0h0m", true, nil, false},
		{"unparsable timeout", "5m", true, nil, false},
		{"policy enforces", "0d0h5m", false, on, true},
		{"policy enforces, no timeout", "", false, on, false},
		{"policy off, GPR on", "0d0h5m", true, off, true},
		{"policy off, GPR off", "0d0h5m", false, off, false},
	}
	for _, tt := range tests {
		g := &v1alpha1.GPUProvisionRequest{Spec: v1alpha1.GPUProvisionRequestSpec{IdleTimeOutDuration: tt.timeout, EnforceIdleTimeOut: tt.enforce}}
		if got := IdleEnforced(g, tt.policy); got != tt.want {
			t.Errorf("%s: IdleEnforced = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func idleNode(name string, since *time.Time) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if since != nil {
		n.Annotations = map[string]string{v1alpha1.AnnotationGPUsIdleSince: idlesignal.Format(*since)}
	}
	return n
}

func TestIdleRelease(t *testing.T) {
	at := func(d time.Duration) *time.Time { v := t0.Add(d); return &v }
	busy := &time.Time{}
	provisioned := func(nodes ...string) *v1alpha1.GPUProvisionRequest {
		return &v1alpha1.GPUProvisionRequest{
			Spec: v1alpha1.GPUProvisionRequestSpec{IdleTimeOutDuration: "0d0h10m", EnforceIdleTimeOut: true},
			Status: v1alpha1.GPUProvisionRequestStatus{
				ProvisioningStatus: v1alpha1.GPRProvisioned, Nodes: nodes,
				StartTimestamp: &metav1.Time{Time: t0},
			},
		}
	}
	tests := []struct {
		name    string
		gpr     *v1alpha1.GPUProvisionRequest
		nodes   []*corev1.Node
		now     time.Duration // after t0
		due     bool
		at      time.Duration // after t0; -1: zero
		idleFor time.Duration
	}{
		{"idle before start: counted from start, not due a second before",
			provisioned("a"), []*corev1.Node{idleNode("a", at(-time.Hour))}, 10*time.Minute - time.Second, false, 10 * time.Minute, 10*time.Minute - time.Second},
		{"idle before start: due at start + timeout",
			provisioned("a"), []*corev1.Node{idleNode("a", at(-time.Hour))}, 10 * time.Minute, true, 10 * time.Minute, 10 * time.Minute},
		{"idle since after start: counted from idle since",
			provisioned("a"), []*corev1.Node{idleNode("a", at(3*time.Minute))}, 12 * time.Minute, false, 13 * time.Minute, 9 * time.Minute},
		{"busy node", provisioned("a"), []*corev1.Node{idleNode("a", busy)}, time.Hour, false, -1, 0},
		{"node that does not publish is never idle", provisioned("a"), []*corev1.Node{idleNode("a", nil)}, time.Hour, false, -1, 0},
		{"node missing", provisioned("a"), nil, time.Hour, false, -1, 0},
		{"all nodes: the latest idle since counts",
			provisioned("a", "b"), []*corev1.Node{idleNode("a", at(time.Minute)), idleNode("b", at(4*time.Minute))}, 14 * time.Minute, true, 14 * time.Minute, 10 * time.Minute},
		{"all nodes: one busy",
			provisioned("a", "b"), []*corev1.Node{idleNode("a", at(time.Minute)), idleNode("b", busy)}, time.Hour, false, -1, 0},
		{"all nodes: one not publishing",
			provisioned("a", "b"), []*corev1.Node{idleNode("a", at(time.Minute)), idleNode("b", nil)}, time.Hour, false, -1, 0},
		{"enforcement off", func() *v1alpha1.GPUProvisionRequest {
			g := provisioned("a")
			g.Spec.EnforceIdleTimeOut = false
			return g
		}(), []*corev1.Node{idleNode("a", at(-time.Hour))}, time.Hour, false, -1, time.Hour},
		{"not provisioned", func() *v1alpha1.GPUProvisionRequest {
			g := provisioned("a")
			g.Status.ProvisioningStatus = v1alpha1.GPRComplete
			return g
		}(), []*corev1.Node{idleNode("a", at(-time.Hour))}, time.Hour, false, -1, 0},
	}
	for _, tt := range tests {
		byName := map[string]*corev1.Node{}
		for _, n := range tt.nodes {
			byName[n.Name] = n
		}
		now := t0.Add(tt.now)
		due, when := IdleRelease(tt.gpr, nil, byName, now)
		var wantAt time.Time
		if tt.at >= 0 {
			wantAt = t0.Add(tt.at)
		}
		if due != tt.due || !when.Equal(wantAt) {
			t.Errorf("%s: IdleRelease = %v, %v; want %v, %v", tt.name, due, when, tt.due, wantAt)
		}
		if got := IdleFor(tt.gpr, byName, now); got != tt.idleFor {
			t.Errorf("%s: IdleFor = %v, want %v", tt.name, got, tt.idleFor)
		}
	}
}
