package v1alpha1

// Labels, taints and annotations gpuspace writes and reads. They are the
// contract between the controllers (which write them), the scheduler plugin
// and admission policy (which enforce them) and the device plugin (which
// publishes GPU facts on nodes).
const (
	// LabelWorkspace on a Node names the workspace the node is bound to; on
	// a Namespace, the workspace the namespace belongs to.
	LabelWorkspace = "gpuspace.io/workspace"
	// LabelGPR on a Node names the GPUProvisionRequest holding the node.
	LabelGPR = "gpuspace.io/gpr"
	// TaintWorkspace is the key of the NoSchedule taint on a bound node;
	// its value is the workspace name.
	TaintWorkspace = "gpuspace.io/workspace"

	// LabelGPUShape is the normalised GPU model of a node ("H100", "T4").
	LabelGPUShape = "gpuspace.io/gpu.shape"
	// LabelCluster names the cluster a node belongs to, as GPRs' clusterName
	// refers to it. Nodes without it belong to the default cluster.
	LabelCluster = "gpuspace.io/cluster"

	// LabelGPUProduct, LabelGPUMemory (MiB per GPU) and LabelGPUCount are
	// NVIDIA GPU Feature Discovery's node labels, which gpuspace reads and,
	// where feature discovery does not run, its device plugin writes.
	LabelGPUProduct = "nvidia.com/gpu.product"
	LabelGPUMemory  = "nvidia.com/gpu.memory"
	LabelGPUCount   = "nvidia.com/gpu.count"

	// LabelInstanceType is the well-known Kubernetes instance type label.
	LabelInstanceType = "node.kubernetes.io/instance-type"

	// ResourceGPU is the extended resource of whole GPUs.
	ResourceGPU = "nvidia.com/gpu"
	// ResourceGPUMemory is the extended resource of GPU memory in GiB.
	ResourceGPUMemory = "gpuspace.io/gpu-memory"

	// FinalizerWorkspace guards a workspace until its GPRs are released and
	// its RBAC removed.
	FinalizerWorkspace = "gpuspace.io/workspace"

	// DefaultCluster is the cluster name of a single-cluster installation.
	DefaultCluster = "worker-1"
)
