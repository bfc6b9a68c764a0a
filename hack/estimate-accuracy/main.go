// Command estimate-accuracy replays a synthetic GPR trace through
// gpuspace's planner on a simulated clock and prints how well each
// wait-time estimator predicted the actual starts (internal/dev/tracesim;
// docs/benchmarks.md).
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/gpuspace/gpuspace/internal/dev/tracesim"
)

func main() {
	var c tracesim.Config
	flag.Uint64Var(&c.Seed, "seed", 1, "trace seed: the same seed gives the same trace")
	flag.IntVar(&c.GPRs, "gprs", 10000, "GPRs in the trace")
	flag.IntVar(&c.Nodes, "nodes", 400, "nodes in the pool, 8 GPUs each")
	flag.IntVar(&c.Workspaces, "workspaces", 0, "workspaces submitting (0: one per node, at least 40)")
	flag.Float64Var(&c.Load, "load", 0.95, "offered load (node-hours held per node-hour)")
	flag.Parse()
	t0 := time.Now()
	res := tracesim.Replay(tracesim.Generate(c))
	res.Print(os.Stdout)
	fmt.Printf("replayed in %s\n", time.Since(t0).Round(time.Millisecond))
}
