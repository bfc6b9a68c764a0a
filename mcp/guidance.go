package mcp

// instructions is what the server tells an agent when it connects: the
// order in which the tools are used, and the two rules that most often
// trip a caller up.
const instructions = `gpuspace lends GPU nodes to workspaces. A workspace is a user and their Kubernetes namespaces; a GPU provision request (GPR) asks for numberOfGPUNodes nodes with numberOfGPUs GPUs each, for exitDuration, at a priority of 1-300.

Typical session: inventory_list (what GPUs exist, which are free) -> workspaces_list or workspaces_create -> gprs_waittime (when would it start?) -> gprs_create -> gprs_get until status.provisioningStatus is Provisioned -> workspaces_kubeconfig to run pods on the nodes -> gprs_update with earlyRelease: true when done.

Rules: one GPR per workspace is provisioned at a time, the others queue by priority; a queued GPR is cancelled with gprs_delete, a provisioned one is ended with gprs_update earlyRelease: true. Durations are NdNhNm (0d1h30m), memory is in GB. Errors carry a stable errorKey (VALIDATION_ERROR, NOT_FOUND, CONFLICT, FORBIDDEN, UNAUTHENTICATED) and a message naming what to fix.`

// guidance adds, per tool, what an agent needs beyond the operation's own
// description: which tool to call before or after, and what cannot be
// undone. Operation descriptions stay the single definition of what an
// operation does; a test checks every key here names a tool.
var guidance = map[string]string{
	"gprs_create": "Before creating, read inventory_list for the shapes, instance types and memory sizes that exist, and call gprs_waittime with the same arguments to learn when it would start. " +
		"Not idempotent: every call queues another GPR. The answer's data.gprId is the id every other gprs_ tool takes; the GPR starts Queued, poll gprs_get until Provisioned.",
	"gprs_waittime":         "Takes exactly the arguments of gprs_create. satisfiable: false with a reason means no node could ever match: change the request rather than wait.",
	"gprs_update":           "Pass gprId and only what changes. earlyRelease: true ends a Provisioned GPR now and frees its nodes for others; it cannot be undone.",
	"gprs_delete":           "Only for a GPR that is still Queued (or failed with Error). A Provisioned GPR answers 409 CONFLICT: end it with gprs_update earlyRelease: true instead.",
	"gprs_get":              "While Queued, estimatedStartTime and estimatedWaitTime say when it is expected to start; status.nodes lists the nodes once Provisioned.",
	"workspaces_delete":     "Cannot be undone: the workspace's GPRs are released and removed. Confirm with the user first.",
	"workspaces_kubeconfig": "The answer holds a credential (a ServiceAccount token): hand it to the user or write it to a file, do not echo it into chat logs.",
	"apikeys_create":        "The answer holds the new API key, shown this once: hand it to the user, do not echo it into chat logs.",
	"apikeys_delete":        "Every token issued for the key stops working at once; deleting the key this session uses ends the session's access.",
}
