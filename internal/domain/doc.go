// Package domain is the one interpreter of a GPU provision request (GPR)
// and of a GPU node, the way kueue's pkg/workload is for a Workload. Every
// rule about either lives here and nowhere else; the GPR controller, the
// REST API, MCP, the scheduler plugin and admission call it.
//
// What it holds:
//
//   - gpr.go: the phase of a GPR (an empty status is Queued), its effective
//     priority (0 is DefaultPriority), its node count, its exitDuration and
//     end time, and resource-version ordering of cached copies.
//   - node.go: a node's GPU facts (GPU count, memory, shape, instance type,
//     cluster with the configured default cluster, health) and the holder
//     of each node, from GPR status (two claimants are reported, never
//     silently resolved).
//   - plan.go: the planner's input built from GPRs and nodes, the same for
//     the controller and the API's wait-time preview.
//   - estimate.go: the wait of a queued GPR now, and when a moved estimate
//     is worth a write (the tolerance).
//   - idle.go: idle release: whether it applies to a GPR (enforceIdleTimeOut,
//     its EGS default, a workspace policy), its timeout, and when a GPR is
//     due from its nodes' published idle signal (internal/util/idlesignal).
//   - transition.go: every change of a GPR's lifecycle as one named
//     function (Start, Release with a reason, Fail, Requeue), with
//     internalState derived from phase and reason.
//
// The package is pure: no client, no clock of its own. Callers pass now.
package domain
