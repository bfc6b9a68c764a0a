package domain

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

func policy(spec v1alpha1.WorkspacePolicySpec) *v1alpha1.WorkspacePolicy {
	return &v1alpha1.WorkspacePolicy{ObjectMeta: metav1.ObjectMeta{Name: "team"}, Spec: spec}
}

func TestPolicyBands(t *testing.T) {
	for _, tt := range []struct {
		p        *v1alpha1.WorkspacePolicy
		band     v1alpha1.PriorityBand
		max      int32
		priority int32 // asked
		gets     int32 // after PolicyPriority
	}{
		{nil, v1alpha1.BandHigh, 300, 0, 101},
		{nil, v1alpha1.BandHigh, 300, 250, 250},
		{policy(v1alpha1.WorkspacePolicySpec{}), v1alpha1.BandLow, 100, 0, 100},
		{policy(v1alpha1.WorkspacePolicySpec{}), v1alpha1.BandLow, 100, 101, 100},
		{policy(v1alpha1.WorkspacePolicySpec{}), v1alpha1.BandLow, 100, 150, 150},
		{policy(v1alpha1.WorkspacePolicySpec{PriorityRange: v1alpha1.BandMedium}), v1alpha1.BandMedium, 200, 0, 101},
		{policy(v1alpha1.WorkspacePolicySpec{PriorityRange: v1alpha1.BandMedium}), v1alpha1.BandMedium, 200, 250, 250},
		{policy(v1alpha1.WorkspacePolicySpec{PriorityRange: "bogus"}), v1alpha1.BandLow, 100, 5, 5},
	} {
		if got := PolicyBand(tt.p); got != tt.band {
			t.Errorf("PolicyBand(%v) = %s, want %s", tt.p, got, tt.band)
		}
		if got := MaxPriority(tt.p); got != tt.max {
			t.Errorf("MaxPriority = %d, want %d", got, tt.max)
		}
		if got := PolicyPriority(tt.p, tt.priority); got != tt.gets {
			t.Errorf("PolicyPriority(%d) = %d, want %d", tt.priority, got, tt.gets)
		}
	}
	for _, tt := range []struct {
		p    int32
		band v1alpha1.PriorityBand
		lo   int32
	}{{1, "low", 1}, {100, "low", 1}, {101, "medium", 101}, {200, "medium", 101}, {201, "high", 201}, {300, "high", 201}} {
		b := bandOf(tt.p)
		lo, hi := BandRange(b)
		if b != tt.band || lo != tt.lo || tt.p < lo || tt.p > hi {
			t.Errorf("bandOf(%d) = %s %d-%d, want %s from %d", tt.p, b, lo, hi, tt.band, tt.lo)
		}
	}
}

func TestParsePolicyDuration(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"", 7 * 24 * time.Hour, false},
		{"1W", 7 * 24 * time.Hour, false},
		{"2W", 14 * 24 * time.Hour, false},
		{"1M", 30 * 24 * time.Hour, false},
		{"12M", 360 * 24 * time.Hour, false},
		{"0W", 0, false},
		{"W", 0, true},
		{"1D", 0, true},
		{"1w", 0, true},
		{"-1W", 0, true},
		{"+1W", 0, true},
		{"1.5W", 0, true},
		{"99999999999999M", 0, true},
	} {
		got, err := ParsePolicyDuration(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParsePolicyDuration(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
	if got := PolicyDurationWords("2M"); got != "2M (60 days)" {
		t.Errorf("PolicyDurationWords = %q", got)
	}
	if _, ok := MaxExitDuration(nil); ok {
		t.Error("no policy has a duration limit")
	}
	if d, ok := MaxExitDuration(policy(v1alpha1.WorkspacePolicySpec{})); !ok || d != Week {
		t.Errorf("default limit = %v %v, want a week", d, ok)
	}
}

func TestPolicyConstraints(t *testing.T) {
	p := policy(v1alpha1.WorkspacePolicySpec{
		GPUConstraints: v1alpha1.GPUConstraints{GPUShapes: []string{"H100", "Tesla-T4"}, MaxGPUPerGPR: 16, MaxMemoryPerGPR: 640},
		ClusterConstraints: []v1alpha1.ClusterGPUConstraints{
			{ClusterName: "east", GPUConstraints: v1alpha1.GPUConstraints{MaxGPUPerGPR: 8}},
			{ClusterName: "west", GPUConstraints: v1alpha1.GPUConstraints{GPUShapes: []string{"A100"}, MaxMemoryPerGPR: 80}},
		},
	})
	for _, tt := range []struct {
		cluster     string
		gpus, memGB int32
		allowed     []string
		refused     []string
	}{
		{"prod", 16, 640, []string{"H100", "NVIDIA-H100-80GB-HBM3", "t4", "T4"}, []string{"A100", ""}},
		{"east", 8, 640, []string{"H100"}, []string{"A100"}},
		{"west", 16, 80, []string{"A100", "NVIDIA A100-SXM4-40GB"}, []string{"H100"}},
	} {
		c := Constraints(p, tt.cluster)
		if c.MaxGPUPerGPR != tt.gpus || c.MaxMemoryPerGPR != tt.memGB {
			t.Errorf("%s: limits %d GPUs %d GB, want %d %d", tt.cluster, c.MaxGPUPerGPR, c.MaxMemoryPerGPR, tt.gpus, tt.memGB)
		}
		for _, s := range tt.allowed {
			if !ShapeAllowed(c, s) {
				t.Errorf("%s: shape %q refused", tt.cluster, s)
			}
		}
		for _, s := range tt.refused {
			if ShapeAllowed(c, s) {
				t.Errorf("%s: shape %q allowed", tt.cluster, s)
			}
		}
	}
	if c := Constraints(nil, "prod"); !ShapeAllowed(c, "") || c.MaxGPUPerGPR != 0 {
		t.Errorf("no policy constrains: %+v", c)
	}
}

func TestPolicySwitches(t *testing.T) {
	g := &v1alpha1.GPUProvisionRequest{}
	off := policy(v1alpha1.WorkspacePolicySpec{RequeueOnFailure: ptr.To(false), EnableAutoEviction: ptr.To(false), MinRuntimeBeforeEviction: "0d1h0m", MaxGPRs: ptr.To[int32](0)})
	def := policy(v1alpha1.WorkspacePolicySpec{})
	if !EvictionAllowed(nil) || !EvictionAllowed(def) || EvictionAllowed(off) {
		t.Error("EvictionAllowed: none and default allow, false refuses")
	}
	if RequeueOnFailure(g, nil) || !RequeueOnFailure(g, def) || RequeueOnFailure(g, off) {
		t.Error("RequeueOnFailure: the policy's, default true")
	}
	g.Spec.RequeueOnFailure = true
	if !RequeueOnFailure(g, off) {
		t.Error("a GPR's own requeueOnFailure counts")
	}
	if MinRuntimeBeforeEviction(nil) != 5*time.Minute || MinRuntimeBeforeEviction(off) != time.Hour {
		t.Error("MinRuntimeBeforeEviction")
	}
	if _, ok := MaxGPRs(nil); ok {
		t.Error("no policy has no GPR limit")
	}
	if n, ok := MaxGPRs(def); !ok || n != 3 {
		t.Errorf("default maxGPRs = %d", n)
	}
	if n, ok := MaxGPRs(off); !ok || n != 0 {
		t.Errorf("maxGPRs 0 = %d %v", n, ok)
	}
}

func TestPolicyRanksAndHold(t *testing.T) {
	mk := func(name, ws string, phase v1alpha1.ProvisioningStatus, age time.Duration) *v1alpha1.GPUProvisionRequest {
		return &v1alpha1.GPUProvisionRequest{
			ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(t0.Add(-age))},
			Spec:       v1alpha1.GPUProvisionRequestSpec{Workspace: ws},
			Status:     v1alpha1.GPUProvisionRequestStatus{ProvisioningStatus: phase},
		}
	}
	gprs := []*v1alpha1.GPUProvisionRequest{
		mk("q-new", "a", v1alpha1.GPRQueued, time.Minute),
		mk("p", "a", v1alpha1.GPRProvisioned, time.Second), // the youngest, yet first: it holds nodes
		mk("q-old", "a", "", time.Hour),
		mk("done", "a", v1alpha1.GPRComplete, 2*time.Hour),
		mk("b", "b", v1alpha1.GPRQueued, time.Minute),
	}
	want := map[string]int{"p": 0, "q-old": 1, "q-new": 2, "b": 0}
	got := PolicyRanks(gprs)
	if len(got) != len(want) {
		t.Fatalf("ranks %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("rank of %s = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
	g := gprs[0]
	HoldForPolicy(g, "priority too high")
	if !PolicyHeld(g) || g.Status.FailureReason != "priority too high" || !IsQueued(g) {
		t.Fatalf("held: %+v", g.Status)
	}
	AdmitWithinPolicy(g)
	if PolicyHeld(g) || g.Status.FailureReason != "" || g.Status.Reason != "" {
		t.Fatalf("admitted: %+v", g.Status)
	}
}
