package domain

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/util/gpushape"
)

// Prices are what the operator charges per GPU-hour, in USD, by GPU shape
// (normalised: H100 and NVIDIA-H100-80GB-HBM3 are one shape). No prices:
// no cost is reported (status.cost stays empty, never "0").
type Prices map[string]float64

// ParsePrice reads SHAPE=USD_PER_GPU_HOUR, e.g. "H100=2.49".
func ParsePrice(s string) (shape string, usd float64, err error) {
	k, v, ok := strings.Cut(s, "=")
	shape = gpushape.Normalize(strings.TrimSpace(k))
	if !ok || shape == "" {
		return "", 0, fmt.Errorf("GPU price %q: want SHAPE=USD_PER_GPU_HOUR, e.g. H100=2.49", s)
	}
	usd, err = strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || usd < 0 || math.IsInf(usd, 0) || math.IsNaN(usd) {
		return "", 0, fmt.Errorf("GPU price %q: the price must be a number of USD per GPU-hour, at least 0", s)
	}
	return shape, usd, nil
}

// ParsePrices reads SHAPE=USD entries (flags, a ConfigMap's data) into
// Prices; nil when there are none.
func ParsePrices(entries []string) (Prices, error) {
	var p Prices
	for _, e := range entries {
		shape, usd, err := ParsePrice(e)
		if err != nil {
			return nil, err
		}
		if p == nil {
			p = Prices{}
		}
		p[shape] = usd
	}
	return p, nil
}

// Of is the price of a GPU shape (as a user or a node writes it).
func (p Prices) Of(shape string) (float64, bool) {
	usd, ok := p[gpushape.Normalize(shape)]
	return usd, ok
}

// String lists the prices, shapes sorted (SHAPE=USD,...).
func (p Prices) String() string {
	parts := make([]string, 0, len(p))
	for _, k := range slices.Sorted(maps.Keys(p)) {
		parts = append(parts, k+"="+strconv.FormatFloat(p[k], 'f', -1, 64))
	}
	return strings.Join(parts, ",")
}

// HoldDuration is how long a GPR has held its nodes at now: from its start to its
// completion, or to now while provisioned. Zero for a GPR that never
// started.
func HoldDuration(g *v1alpha1.GPUProvisionRequest, now time.Time) time.Duration {
	if g.Status.StartTimestamp == nil || len(g.Status.Nodes) == 0 {
		return 0
	}
	end := now
	switch {
	case g.Status.CompletionTimestamp != nil:
		end = g.Status.CompletionTimestamp.Time
	case !IsProvisioned(g):
		return 0 // requeued or failed: it holds nothing now
	}
	return max(end.Sub(g.Status.StartTimestamp.Time), 0)
}

// Usage is one node's share of a GPR's use: its cluster and GPU shape, and
// the GPU-seconds the GPR held on it.
type Usage struct {
	Node, Cluster, Shape string
	GPUSeconds           float64
}

// GPRUsage is what a GPR has used at now, per node it holds: its GPUs per
// node × the time held. A node's cluster and shape are its facts (nodes,
// by name) where it is still known, else the GPR's.
func GPRUsage(g *v1alpha1.GPUProvisionRequest, nodes map[string]GPUNode, now time.Time) []Usage {
	held := HoldDuration(g, now)
	if held <= 0 {
		return nil
	}
	secs := float64(g.Spec.NumberOfGPUs) * held.Seconds()
	out := make([]Usage, 0, len(g.Status.Nodes))
	for _, name := range g.Status.Nodes {
		u := Usage{Node: name, Cluster: g.Spec.ClusterName, Shape: gpushape.Normalize(g.Spec.GPUShape), GPUSeconds: secs}
		if n, ok := nodes[name]; ok {
			u.Cluster = n.Cluster
			if n.Shape != "" {
				u.Shape = gpushape.Normalize(n.Shape)
			}
		}
		out = append(out, u)
	}
	return out
}

// Cost is what a GPR cost at now, in USD: what its earlier runs cost
// (status.earlierCost, kept when it was requeued) plus GPU-hours × the
// price of each node's shape for the current or last run. ok is false
// when a shape it used has no price (or there are no prices), or it never
// ran: the cost is unknown, not zero.
func Cost(g *v1alpha1.GPUProvisionRequest, prices Prices, nodes map[string]GPUNode, now time.Time) (usd float64, ok bool) {
	if len(prices) == 0 {
		return 0, false
	}
	if earlier, err := strconv.ParseFloat(g.Status.EarlierCost, 64); err == nil {
		usd, ok = earlier, true
	}
	for _, u := range GPRUsage(g, nodes, now) {
		price, priced := prices.Of(u.Shape)
		if !priced {
			return 0, false
		}
		usd += u.GPUSeconds / 3600 * price
		ok = true
	}
	return usd, ok
}

// FormatCost writes a cost as status.cost has it: USD with two decimals
// ("12.50").
func FormatCost(usd float64) string { return strconv.FormatFloat(usd, 'f', 2, 64) }

// CostString is a GPR's status.cost at now: "" when unknown.
func CostString(g *v1alpha1.GPUProvisionRequest, prices Prices, nodes map[string]GPUNode, now time.Time) string {
	usd, ok := Cost(g, prices, nodes, now)
	if !ok {
		return ""
	}
	return FormatCost(usd)
}
