package v1alpha1

// The idle signal: how a GPU node tells the control plane that its GPUs are
// not being used, for idle release of GPRs (enforceIdleTimeOut,
// idleTimeOutDuration).
//
// The device plugin measures each GPU from NVML every utilization interval
// (a GPU is idle when its utilisation is under the idle threshold and it
// runs no compute process; a GPU it cannot read is never idle). The node is
// idle since the moment the last of its GPUs became idle. The plugin
// publishes that on the Node as an annotation, written only when it changes
// (busy → idle, idle → busy), never once per sample; the simulated nodes of
// internal/dev/nodesim publish the same annotation from the GPU pods running on
// them. internal/util/idlesignal reads it (idlesignal.Read) and writes it.
const (
	// AnnotationGPUsIdleSince on a Node is the RFC 3339 time (UTC, whole
	// seconds) since which all of the node's GPUs have been idle, or the
	// empty string while at least one of them is busy or cannot be read.
	// A node without the annotation does not publish idleness (no device
	// plugin, or one too old): it is never released for being idle.
	AnnotationGPUsIdleSince = "gpuspace.io/gpus-idle-since"

	// AnnotationGPUUtilization on a Node is the mean utilisation of its
	// GPUs in whole percent ("37"), for display, not for idle decisions. It
	// is written with every idle/busy transition and otherwise at most once
	// per device-plugin --utilization-publish-interval (default 5m), and
	// only when it moved by 10 points or more: a coarse, possibly minutes
	// old figure. "" when no GPU's utilisation could be read.
	AnnotationGPUUtilization = "gpuspace.io/gpu-utilization"

	// DefaultIdleThresholdPercent is the device plugin's default
	// --idle-threshold: a GPU whose utilisation (NVML utilization.gpu) is
	// under this many percent, with no compute process, is idle.
	DefaultIdleThresholdPercent = 5
)
