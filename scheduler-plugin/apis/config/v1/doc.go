// Package v1 holds the versioned arguments of the gpuspace scheduler
// plugins, as they appear under pluginConfig[].args of a
// KubeSchedulerConfiguration (kubescheduler.config.k8s.io/v1), with their
// defaults and validation.
//
// The types are not registered in the kube-scheduler's scheme: the scheduler
// hands out-of-tree args to the plugin as raw JSON, and Decode* turns them
// into these types strictly (unknown fields are errors), applies defaults and
// validates them, so that a typo in the configuration stops the scheduler at
// start instead of silently using defaults.
package v1
