// Package manifests embeds the manifests binaries need at run time, so they
// use exactly the YAML that `kubectl apply -k` would.
package manifests

import "embed"

// CRDs holds crds/gpuspace.io_*.yaml, one CustomResourceDefinition per file.
//
//go:embed crds/gpuspace.io_*.yaml
var CRDs embed.FS

// SchedulerConfig is gpuspace-scheduler's KubeSchedulerConfiguration.
//
//go:embed scheduler/config.yaml
var SchedulerConfig []byte

// WorkerCredential is the hub's least-privilege credential in a worker
// cluster (worker/credential.yaml).
//
//go:embed worker/credential.yaml
var WorkerCredential []byte
