// Package benchkit holds what gpuspace's load benchmarks share: their
// sizes from the environment, a bounded fan-out of creates, and latency
// percentiles. Benchmarks report figures with testing.B.ReportMetric;
// nothing here asserts a time.
package benchkit

import (
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/watch"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// EnvInt reads a benchmark setting from the environment: def when unset,
// not a number, or not positive.
func EnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// Parallel runs f(0..n-1) on 16 goroutines and returns the first error.
// Sixteen keep a benchmark's client busy without a goroutine per object.
func Parallel(n int, f func(int) error) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	next := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// Percentile is the p-th percentile (nearest rank) of ds; zero for none.
func Percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[max(min(len(s)-1, (len(s)*p+99)/100-1), 0)]
}

// MS is d in milliseconds, for ReportMetric.
func MS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Sustained is the rate of events at times ts over the middle 80 % of
// them (from the 10th to the 90th percentile), per second: the steady
// rate without the ramps at either end. Zero for fewer than ten.
func Sustained(ts []time.Time) float64 {
	if len(ts) < 10 {
		return 0
	}
	s := slices.Clone(ts)
	slices.SortFunc(s, func(a, b time.Time) int { return a.Compare(b) })
	lo, hi := len(s)/10, len(s)*9/10
	if d := s[hi].Sub(s[lo]).Seconds(); d > 0 {
		return float64(hi-lo) / d
	}
	return 0
}

// EachGPR calls f with every GPR a watch reports, its event type and when
// the event arrived, until the watch ends; then it stops the watch.
func EachGPR(w watch.Interface, f func(g *v1alpha1.GPUProvisionRequest, typ watch.EventType, at time.Time)) {
	defer w.Stop()
	for ev := range w.ResultChan() {
		if g, ok := ev.Object.(*v1alpha1.GPUProvisionRequest); ok {
			f(g, ev.Type, time.Now())
		}
	}
}
