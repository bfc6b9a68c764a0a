package v1alpha1

// GPR projections: how a worker cluster's gpuspace-scheduler learns of the
// hub's GPRs without a credential for the hub. The hub writes, into each
// registered worker, a small GPUProvisionRequest for every GPR of that
// cluster that is queued or provisioned (controller/projection): same name,
// only the fields the scheduler plugin reads (workspace, priority, phase,
// nodes, start, estimated start), and deletes it when the GPR finishes or
// is deleted. The hub never projects into its own cluster, where the real
// GPRs are. In a worker, such an object is a read-only copy, not a request:
// nothing there acts on it but the scheduler plugin, and the hub overwrites
// or deletes any change made to it.
const (
	// LabelProjectedFrom on a GPR in a worker cluster names the hub's
	// cluster (its --cluster-name) that projected it there. Objects
	// without it are never touched by the projection.
	LabelProjectedFrom = "gpuspace.io/projected-from"
	// AnnotationProjectedCreated on a projected GPR is the hub GPR's
	// creation time (RFC 3339): the age the queue orders by, which the
	// projection's own creationTimestamp (when it was projected) is not.
	AnnotationProjectedCreated = "gpuspace.io/created"
)
