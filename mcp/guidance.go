package mcp

// instructions is what the server tells an agent when it connects: the
// order in which the tools are used, and the two rules that most often
// trip a caller up.
const instructions = `gpuspace lends GPU nodes to workspaces. A workspace is a user and their Kubernetes namespaces; a GPU provision request (GPR) asks for numberOfGPUNodes nodes with numberOfGPUs GPUs each, for exitDuration, at a priority of 1-300.

Typical session: inventory_list (what GPUs exist, which are free) -> workspaces_list or workspaces_create -> gprs_waittime (when would it start?) -> gprs_create -> gprs_get until status.provisioningStatus is Provisioned -> workspaces_kubeconfig to run pods on the nodes -> gprs_update with earlyRelease: true when done.

Rules: one GPR per workspace is provisioned at a time, the others queue by priority; a queued GPR is cancelled with gprs_delete, a provisioned one is ended with gprs_update earlyRelease: true. Durations are NdNhNm (0d1h30m), memory is in GB. Errors carry a stable errorKey (VALIDATION_ERROR, NOT_FOUND, CONFLICT, FORBIDDEN, UNAUTHENTICATED) and a message naming what to fix; a VALIDATION_ERROR naming a WorkspacePolicy is a limit of the workspace (policies_get shows them all): change the request to fit it.

Idle release: a provisioned GPR with an idleTimeOutDuration (enforceIdleTimeOut defaults to true when one is given, and a workspace policy may enforce it) is released with reason Idle once all of its GPUs have been idle that long, and the workspace's pods on its nodes are deleted. gprs_get shows status.gpuUtilization, status.timeSinceNoUtilization and status.idleReleaseAt; inventory_list shows them per node (a node with idleSignal false is never idle-released). To keep nodes through a pause, keep the GPUs busy or create the GPR without idleTimeOutDuration.`
