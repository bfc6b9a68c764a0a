// Package manifests embeds the generated CRDs, so binaries and tests install
// exactly the YAML that `kubectl apply -k` would.
package manifests

import "embed"

// CRDs holds crds/gpuspace.io_*.yaml, one CustomResourceDefinition per file.
//
//go:embed crds/gpuspace.io_*.yaml
var CRDs embed.FS
