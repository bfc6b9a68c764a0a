package apiserver

import (
	"context"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/apiserver/envelope"
	"github.com/gpuspace/gpuspace/internal/admission"
	"github.com/gpuspace/gpuspace/internal/snapshot"
)

// GPRTopology is where a GPR's nodes must or should sit: gpuspace's
// optional extension of the EGS GPR and template shapes (absent: anywhere,
// but in one NVLink clique where the nodes have cliques).
type GPRTopology struct {
	_ struct{} `additionalProperties:"true"`

	Required  string `json:"required,omitempty" maxLength:"316" doc:"A topology level (node label, e.g. cloud.google.com/gce-topology-block): all nodes, or each slice, in one domain of it; the GPR waits until one has room"`
	Preferred string `json:"preferred,omitempty" maxLength:"316" doc:"A topology level: the nodes in as few domains of it as possible"`
	SliceSize int32  `json:"sliceSize,omitempty" minimum:"0" maximum:"1024" doc:"With required: nodes in slices of this many, each slice in one domain; must divide numberOfGPUNodes"`
}

func init() {
	for _, f := range []string{"required", "preferred", "sliceSize"} {
		requestFields["spec.topology."+f] = "topology." + f
	}
	requestFields["spec.topology"] = "topology"
}

// spec is the GPR spec's topology for a request's (nil: none).
func (t *GPRTopology) spec() *v1alpha1.GPRTopology {
	if t == nil {
		return nil
	}
	return &v1alpha1.GPRTopology{Required: t.Required, Preferred: t.Preferred, SliceSize: t.SliceSize}
}

// topologyOut is the API's shape of a spec's topology.
func topologyOut(t *v1alpha1.GPRTopology) *GPRTopology {
	if t == nil {
		return nil
	}
	return &GPRTopology{Required: t.Required, Preferred: t.Preferred, SliceSize: t.SliceSize}
}

// validateTopologyLevel adds to errs admission's check that the level g
// names is one the cluster's topologies (or the built-in ones) have.
func (s *Server) validateTopologyLevel(ctx context.Context, g *v1alpha1.GPUProvisionRequest, errs field.ErrorList) (field.ErrorList, error) {
	if g.Spec.Topology == nil {
		return errs, nil
	}
	ts, err := snapshot.Reader{Client: s.cache}.Topologies(ctx)
	if err != nil {
		return nil, s.kubeErr(err, "topologies")
	}
	return append(errs, admission.ValidateTopologyLevel(g, ts)...), nil
}

// PolicyTopology is a policy's topology level for large GPRs.
type PolicyTopology struct {
	_ struct{} `additionalProperties:"true"`

	MinNodes int32  `json:"minNodes" minimum:"2" maximum:"1024" doc:"GPRs of this many nodes or more must name a topology"`
	Level    string `json:"level" minLength:"1" maxLength:"316" doc:"The level they get, as required, when they name none"`
}

func (t *PolicyTopology) spec() *v1alpha1.PolicyTopology {
	if t == nil {
		return nil
	}
	return &v1alpha1.PolicyTopology{MinNodes: t.MinNodes, Level: t.Level}
}

func policyTopologyOut(t *v1alpha1.PolicyTopology) *PolicyTopology {
	if t == nil {
		return nil
	}
	return &PolicyTopology{MinNodes: t.MinNodes, Level: t.Level}
}

// checkPolicyTopology adds to bad a policy level no topology has.
func (s *Server) checkPolicyTopology(ctx context.Context, t *PolicyTopology, bad []envelope.FieldError) ([]envelope.FieldError, error) {
	if t == nil {
		return bad, nil
	}
	ts, err := snapshot.Reader{Client: s.cache}.Topologies(ctx)
	if err != nil {
		return nil, s.kubeErr(err, "topologies")
	}
	g := &v1alpha1.GPUProvisionRequest{Spec: v1alpha1.GPUProvisionRequestSpec{Topology: &v1alpha1.GPRTopology{Required: t.Level}}}
	for _, e := range admission.ValidateTopologyLevel(g, ts) {
		bad = append(bad, envelope.FieldError{Field: "topology.level", Value: t.Level, Reason: e.Detail})
	}
	return bad, nil
}
