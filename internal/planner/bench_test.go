package planner

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkPlan measures a full plan over an inventory of six GPU kinds in
// two clusters, a third of the nodes held by provisioned GPRs, with one
// workspace per five queued GPRs. Run with
//
//	go test ./internal/planner -run '^$' -bench BenchmarkPlan -benchmem
func BenchmarkPlan(b *testing.B) {
	for _, queued := range []int{1000, 5000, 10000} {
		for _, nodes := range []int{1000, 5000} {
			b.Run(fmt.Sprintf("queued=%d/nodes=%d", queued, nodes), func(b *testing.B) {
				in := randomInput(rand.New(rand.NewPCG(1, 2)), nodes, queued, queued/5)
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					Compute(in)
				}
			})
		}
	}
}
