// Package egssdk holds the test that drives gpuspace with the public EGS
// Python SDK (kubeslice-ent/egs-sdk, unchanged, read from the reference
// material beside the clone, see internal/dev/reference): `gpuspace
// serve`'s control plane (server.Run) on a real kube-apiserver, and
// testdata/sdk_flow.py calling every function of the SDK's egs package
// through python3. It has no code of its own.
package egssdk
