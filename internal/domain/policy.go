package domain

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/util/duration"
	"github.com/gpuspace/gpuspace/internal/util/gpushape"
)

// The rules that interpret a WorkspacePolicy. A nil policy is a workspace
// without one: no limits, eviction allowed, nothing requeued on its
// account. A policy's unset fields read as EGS's defaults (the CRD writes
// them on create; objects stored otherwise read the same).

// BandRange is the priority range of a band: low 1-100, medium 101-200,
// high 201-300. An unknown band reads as low.
func BandRange(b v1alpha1.PriorityBand) (lo, hi int32) {
	switch b {
	case v1alpha1.BandMedium:
		return 101, 200
	case v1alpha1.BandHigh:
		return 201, 300
	}
	return 1, 100
}

// bandOf is the band a priority is in.
func bandOf(priority int32) v1alpha1.PriorityBand {
	switch {
	case priority > 200:
		return v1alpha1.BandHigh
	case priority > 100:
		return v1alpha1.BandMedium
	}
	return v1alpha1.BandLow
}

// PolicyBand is the highest band a policy lets its workspace use.
func PolicyBand(p *v1alpha1.WorkspacePolicy) v1alpha1.PriorityBand {
	if p == nil {
		return v1alpha1.BandHigh
	}
	switch b := p.Spec.PriorityRange; b {
	case v1alpha1.BandLow, v1alpha1.BandMedium, v1alpha1.BandHigh:
		return b
	}
	return v1alpha1.DefaultPolicyPriorityRange
}

// MaxPriority is the highest priority a policy allows.
func MaxPriority(p *v1alpha1.WorkspacePolicy) int32 {
	_, hi := BandRange(PolicyBand(p))
	return hi
}

// PolicyPriority is the priority a GPR asking for priority (0: none) gets
// under a policy: a GPR at the default priority (101, medium) in a
// workspace limited to low runs at 100, the top of its range, rather than
// being refused for a priority its user never chose. Any other priority
// is kept (and refused if above the range).
func PolicyPriority(p *v1alpha1.WorkspacePolicy, priority int32) int32 {
	priority = PriorityOr(priority)
	if hi := MaxPriority(p); priority == v1alpha1.DefaultPriority && priority > hi {
		return hi
	}
	return priority
}

// MaxGPRs is how many GPRs a policy lets its workspace have queued or
// provisioned at once; ok is false without a limit (no policy).
func MaxGPRs(p *v1alpha1.WorkspacePolicy) (n int32, ok bool) {
	switch {
	case p == nil:
		return 0, false
	case p.Spec.MaxGPRs == nil:
		return v1alpha1.DefaultPolicyMaxGPRs, true
	}
	return *p.Spec.MaxGPRs, true
}

// Units of maxExitDurationPerGPR. EGS's pattern is ^([0-9]+)([MW])$ with
// default 1W; W is a week, and M, beside it, a month — counted as 30 days,
// since a limit has to be a fixed length. (M is not minutes: a policy
// capping GPRs at minutes would not be written in the unit beside weeks.)
const (
	Week  = 7 * 24 * time.Hour
	Month = 30 * 24 * time.Hour
)

// ErrPolicyDuration is the error of a maxExitDurationPerGPR that is not N
// followed by W or M.
var ErrPolicyDuration = errors.New("must be a number of weeks or months, e.g. 1W or 2M")

// ParsePolicyDuration reads a maxExitDurationPerGPR: "1W" is 7 days, "2M"
// 60 days. Empty is the default, 1W.
func ParsePolicyDuration(s string) (time.Duration, error) {
	if s == "" {
		s = v1alpha1.DefaultPolicyMaxExitDurationPerGPR
	}
	if len(s) < 2 {
		return 0, ErrPolicyDuration
	}
	n, err := strconv.ParseInt(s[:len(s)-1], 10, 64)
	if err != nil || n < 0 || s[0] == '+' || s[0] == '-' {
		return 0, ErrPolicyDuration
	}
	var unit time.Duration
	switch s[len(s)-1] {
	case 'W':
		unit = Week
	case 'M':
		unit = Month
	default:
		return 0, ErrPolicyDuration
	}
	if n > int64((1<<63-1)/unit) {
		return 0, ErrPolicyDuration
	}
	return time.Duration(n) * unit, nil
}

// MaxExitDuration is the longest exitDuration a policy allows; ok is false
// without a limit (no policy, or a value that does not parse — the CRD
// refuses those).
func MaxExitDuration(p *v1alpha1.WorkspacePolicy) (d time.Duration, ok bool) {
	if p == nil {
		return 0, false
	}
	d, err := ParsePolicyDuration(p.Spec.MaxExitDurationPerGPR)
	return d, err == nil
}

// PolicyDurationWords says a maxExitDurationPerGPR in days ("1W (7 days)").
func PolicyDurationWords(s string) string {
	if s == "" {
		s = v1alpha1.DefaultPolicyMaxExitDurationPerGPR
	}
	d, err := ParsePolicyDuration(s)
	if err != nil {
		return s
	}
	days := int64(d / (24 * time.Hour))
	if days == 1 {
		return s + " (1 day)"
	}
	return fmt.Sprintf("%s (%d days)", s, days)
}

// Constraints are the GPU constraints a policy sets for the GPRs of a
// cluster: the workspace-wide ones, each field replaced by the cluster's
// entry where that sets it. No policy: none.
func Constraints(p *v1alpha1.WorkspacePolicy, cluster string) v1alpha1.GPUConstraints {
	if p == nil {
		return v1alpha1.GPUConstraints{}
	}
	c := p.Spec.GPUConstraints
	for _, cc := range p.Spec.ClusterConstraints {
		if cc.ClusterName != cluster {
			continue
		}
		if len(cc.GPUShapes) > 0 {
			c.GPUShapes = cc.GPUShapes
		}
		if cc.MaxGPUPerGPR > 0 {
			c.MaxGPUPerGPR = cc.MaxGPUPerGPR
		}
		if cc.MaxMemoryPerGPR > 0 {
			c.MaxMemoryPerGPR = cc.MaxMemoryPerGPR
		}
	}
	return c
}

// ShapeAllowed reports whether constraints allow a requested GPU shape,
// compared on normalised names (H100 is NVIDIA-H100-80GB-HBM3). No shape
// list allows any; with one, a GPR that names no shape (any) is not
// allowed: it could land on any shape.
func ShapeAllowed(c v1alpha1.GPUConstraints, shape string) bool {
	if len(c.GPUShapes) == 0 {
		return true
	}
	want := gpushape.Normalize(shape)
	if want == "" {
		return false
	}
	return slices.ContainsFunc(c.GPUShapes, func(s string) bool { return gpushape.Normalize(s) == want })
}

// TotalGPUs is how many GPUs a GPR asks for in all.
func TotalGPUs(g *v1alpha1.GPUProvisionRequest) int64 {
	return int64(g.Spec.NumberOfGPUs) * int64(NodeCount(g))
}

// TotalMemoryGB is how much GPU memory, in GB, a GPR asks for in all
// (memoryPerGPU × its GPUs); 0 when it names no memory (any).
func TotalMemoryGB(g *v1alpha1.GPUProvisionRequest) int64 {
	return int64(g.Spec.MemoryPerGPU) * TotalGPUs(g)
}

// EvictionAllowed reports whether a policy lets its workspace's GPRs evict
// others (enableAutoEviction, default true). No policy: allowed.
func EvictionAllowed(p *v1alpha1.WorkspacePolicy) bool {
	return p == nil || p.Spec.EnableAutoEviction == nil || *p.Spec.EnableAutoEviction
}

// RequeueOnFailure reports whether a GPR goes back to the queue when it
// fails or is evicted: its own requeueOnFailure, or its workspace's
// policy's (default true).
func RequeueOnFailure(g *v1alpha1.GPUProvisionRequest, p *v1alpha1.WorkspacePolicy) bool {
	if g.Spec.RequeueOnFailure {
		return true
	}
	return p != nil && (p.Spec.RequeueOnFailure == nil || *p.Spec.RequeueOnFailure)
}

// DefaultMinRuntimeBeforeEviction is a policy's minRuntimeBeforeEviction
// when unset, and the minimum runtime of GPRs of workspaces without a
// policy.
const DefaultMinRuntimeBeforeEviction = 5 * time.Minute

// MinRuntimeBeforeEviction is how long a GPR of the policy's workspace
// runs before it may be evicted. A zero ("0d0h0m") means zero: evictable
// at once; only an unset (or unreadable) value takes the default.
func MinRuntimeBeforeEviction(p *v1alpha1.WorkspacePolicy) time.Duration {
	if p == nil || p.Spec.MinRuntimeBeforeEviction == "" {
		return DefaultMinRuntimeBeforeEviction
	}
	d, err := duration.Parse(p.Spec.MinRuntimeBeforeEviction)
	switch {
	case errors.Is(err, duration.ErrZero):
		return 0
	case err != nil:
		return DefaultMinRuntimeBeforeEviction
	}
	return d
}

// EvictableAt is when a provisioned GPR leaves its minimum-runtime
// protection (its start plus its policy's MinRuntimeBeforeEviction);
// false for a GPR that has not started.
func EvictableAt(g *v1alpha1.GPUProvisionRequest, p *v1alpha1.WorkspacePolicy) (time.Time, bool) {
	if g.Status.StartTimestamp == nil {
		return time.Time{}, false
	}
	return g.Status.StartTimestamp.Add(MinRuntimeBeforeEviction(p)), true
}

// PolicyHeld reports whether a queued GPR is held by its workspace's
// policy: it is not planned until admitted again.
func PolicyHeld(g *v1alpha1.GPUProvisionRequest) bool {
	return IsQueued(g) && g.Status.Reason == v1alpha1.ReasonPolicy
}

// HoldForPolicy keeps a queued GPR in the queue, not planned, because its
// workspace's policy does not allow it now; message says which limit.
func HoldForPolicy(g *v1alpha1.GPUProvisionRequest, message string) {
	Hold(g, v1alpha1.ReasonPolicy, message)
	meta.SetStatusCondition(&g.Status.Conditions, metav1.Condition{
		Type: v1alpha1.GPRPolicyAllowed, Status: metav1.ConditionFalse, Reason: string(v1alpha1.ReasonPolicy),
		Message: message, ObservedGeneration: g.Generation,
	})
}

// AdmitWithinPolicy admits again a GPR held by its policy that the policy
// now allows (loosened, or the GPR changed, or a GPR of its workspace
// finished): it is Queued and planned like any other, keeping its age.
func AdmitWithinPolicy(g *v1alpha1.GPUProvisionRequest) {
	Admit(g)
	meta.SetStatusCondition(&g.Status.Conditions, metav1.Condition{
		Type: v1alpha1.GPRPolicyAllowed, Status: metav1.ConditionTrue, Reason: "WithinPolicy",
		Message: "the workspace's policy allows it", ObservedGeneration: g.Generation,
	})
}

// PolicyRanks is, for each queued or provisioned GPR, how many GPRs of its
// workspace count before it against maxGPRs: provisioned GPRs first (a
// policy never touches them), then queued ones oldest first (ties by
// name). A queued GPR whose rank reaches maxGPRs is over the limit.
func PolicyRanks(gprs []*v1alpha1.GPUProvisionRequest) map[string]int {
	byWS := map[string][]*v1alpha1.GPUProvisionRequest{}
	for _, g := range gprs {
		if IsQueued(g) || IsProvisioned(g) {
			byWS[g.Spec.Workspace] = append(byWS[g.Spec.Workspace], g)
		}
	}
	ranks := make(map[string]int, len(gprs))
	for _, gs := range byWS {
		slices.SortFunc(gs, func(a, b *v1alpha1.GPUProvisionRequest) int {
			if pa, pb := IsProvisioned(a), IsProvisioned(b); pa != pb {
				if pa {
					return -1
				}
				return 1
			}
			if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
				return c
			}
			return cmp.Compare(a.Name, b.Name)
		})
		for i, g := range gs {
			ranks[g.Name] = i
		}
	}
	return ranks
}

// CountQueuedOrProvisioned counts a workspace's queued and provisioned
// GPRs, as maxGPRs does.
func CountQueuedOrProvisioned(gprs []v1alpha1.GPUProvisionRequest, workspace string) int {
	n := 0
	for i := range gprs {
		g := &gprs[i]
		if g.Spec.Workspace == workspace && (IsQueued(g) || IsProvisioned(g)) {
			n++
		}
	}
	return n
}

// ShapeList writes allowed shapes for messages.
func ShapeList(shapes []string) string { return strings.Join(shapes, ", ") }

// CanEvict reports whether a queued GPR may evict lower-priority GPRs:
// enableEviction, in a workspace whose policy allows eviction (nil: no
// policy, allowed).
func CanEvict(g *v1alpha1.GPUProvisionRequest, policy *v1alpha1.WorkspacePolicy) bool {
	return g.Spec.EnableEviction && EvictionAllowed(policy)
}

// Policies are the WorkspacePolicies by workspace: a policy is named after
// its workspace.
type Policies map[string]*v1alpha1.WorkspacePolicy

// PolicyIndex indexes policies by workspace; the index points into
// policies.
func PolicyIndex(policies []v1alpha1.WorkspacePolicy) Policies {
	out := make(Policies, len(policies))
	for i := range policies {
		out[policies[i].Name] = &policies[i]
	}
	return out
}

// Of is workspace ws's policy, nil when it has none.
func (p Policies) Of(ws string) *v1alpha1.WorkspacePolicy { return p[ws] }
