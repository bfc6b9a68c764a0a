package state

import (
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	gpuspacev1alpha1 "github.com/gpuspace/gpuspace/api/v1alpha1"
)

// BenchmarkGPRIndexBulkDelete deletes every GPR of an index of n, as a
// `kubectl delete gpr --all` reaches the plugin's informer: one op is the
// whole bulk delete, and ns/GPR is what each delete costs. Linear means
// ns/GPR stays flat from 1k to 10k GPRs (at 100k, maps out of cache cost
// a few times more per touch). The GPRs are queued, spread over
// workspaces (ws) or all in one; each is deleted oldest first, the head of
// its workspace's queue, the order that costs the summary most.
//
//	go test ./scheduler-plugin/internal/state/ -run '^$' -bench BulkDelete -benchtime 3x
func BenchmarkGPRIndexBulkDelete(b *testing.B) {
	for _, workspaces := range []int{100, 1} {
		for _, n := range []int{1_000, 10_000, 100_000} {
			b.Run(fmt.Sprintf("workspaces=%d/gprs=%d", workspaces, n), func(b *testing.B) {
				gprs := make([]GPR, n)
				for i := range gprs {
					gprs[i] = gpr(fmt.Sprintf("gpr-%06d", i), "ws-"+strconv.Itoa(i%workspaces), 100,
						gpuspacev1alpha1.GPRQueued, strconv.Itoa(i+1), time.Duration(n-i)*time.Second)
				}
				for b.Loop() {
					b.StopTimer()
					x := NewGPRIndex()
					for _, g := range gprs {
						x.Upsert(g)
					}
					runtime.GC() // the setup's garbage is not the deletes' cost
					b.StartTimer()
					for i, g := range gprs {
						x.Delete(g.Name, strconv.Itoa(n+i+1))
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/GPR")
			})
		}
	}
}
