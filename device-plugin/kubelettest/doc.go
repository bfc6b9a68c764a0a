// Package kubelettest holds the test that runs the device plugin against
// the kubelet's real device manager (k8s.io/kubernetes/pkg/kubelet/cm/
// devicemanager) in-process. It is its own package so that only this test
// binary pays for compiling the kubelet.
//
// The device manager's socket directory is fixed at
// /var/lib/kubelet/device-plugins, so the test re-runs itself under
// `unshare -m --propagation private` with a tmpfs there; the host's
// /var/lib is never touched. Where unshare is not permitted (not root, no
// CAP_SYS_ADMIN) the test is skipped and says why.
package kubelettest
