// Package faultsuite is gpuspace's fault-injection suite (issue 22, item
// 6): real parts under faults, and a watcher that checks gpuspace's
// promises over the whole run.
//
// The parts are a real etcd and kube-apiserver (internal/dev/controlplane),
// two `gpuspace serve` replicas with leader election, as separate
// processes of bin/gpuspace, simulated GPU nodes (internal/dev/nodesim) and
// the admission policy of manifests/admission, as every installation runs it.
// The replicas reach the apiserver through a fault proxy
// (internal/dev/faultproxy) that fails a share of their writes, delays
// responses and cuts their watches; on top of that the suite kills the
// leader, kube-apiserver and etcd with SIGKILL and restarts them. Meanwhile
// a load creates, updates, releases and deletes GPRs of several workspaces
// and runs their GPU pods on the nodes bound to them, and places GPU pods
// of other workspaces on free nodes.
//
// The invariants, checked on every state the watcher sees:
//
//   - exclusive-nodes: no node is in the status of two Provisioned GPRs;
//   - stray-pods: no GPU pod of another workspace runs on a bound node more
//     than 5 s after the binding (or after the pod appeared, if later); a
//     pod whose deletion was requested (Terminating) no longer counts;
//   - due-complete: every due GPR (exitDuration elapsed, early release
//     asked) is Complete within 2 s of its due time;
//   - no-gpr-lost: no GPR disappears or fails unless the load deleted it;
//   - estimates-converge: within 30 s after the faults stop, every queued
//     GPR's stored estimates, likely and latest, are within
//     domain.EstimateTolerance of the plan's.
//
// Time without a leader (one holding the Lease whose GPR controller has
// finished a pass) or without an apiserver (kill to ready) is not
// counted against the deadlines. The tests are in the _test files; the
// short form runs in `go test`, the long form with -faults.long (see
// docs/testing.md).
package faultsuite
