// Package deviceplugin is the root of gpuspace's NVML device plugin. The
// plugin itself lives in sub-packages:
//
//   - nvml: the small NVML interface the plugin needs, its go-nvml adapter
//     and the mock servers used where there is no GPU;
//   - health: GPU health from NVML events and re-probes;
//   - utilization: GPU use from NVML, idle detection, the node's idle
//     signal (internal/util/idlesignal) and the Prometheus gauges;
//   - plugin: the kubelet device plugin API (v1beta1) servers for whole GPUs
//     and GPU memory, and their registration with the kubelet;
//   - labels: the node labels the inventory and the planner read;
//   - app: flags, environment and wiring for cmd/gpuspace-device-plugin.
package deviceplugin
