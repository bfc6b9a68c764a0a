package planner

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkPlan measures a full plan over an inventory of six GPU kinds in
// two clusters, a third of the nodes held by provisioned GPRs, with one
// workspace per five queued GPRs. Besides ns/op it reports cpu-ns/op, the
// process CPU time per plan (garbage collection included), which is the
// steadier figure on a shared machine. Run with
//
//	go test ./internal/planner -run '^$' -bench BenchmarkPlan -benchmem
func BenchmarkPlan(b *testing.B) {
	for _, queued := range []int{1000, 5000, 10000} {
		for _, nodes := range []int{1000, 5000} {
			b.Run(fmt.Sprintf("queued=%d/nodes=%d", queued, nodes), func(b *testing.B) {
				in := randomInput(rand.New(rand.NewPCG(1, 2)), nodes, queued, queued/5)
				b.ReportAllocs()
				cpu := processCPU()
				for b.Loop() {
					Compute(in)
				}
				// CPU time per plan, which unlike ns/op does not grow when
				// other processes compete for the machine's cores.
				if used := processCPU() - cpu; used > 0 {
					b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
				}
			})
		}
	}
}
