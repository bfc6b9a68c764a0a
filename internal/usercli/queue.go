package usercli

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpuspace/gpuspace/apiserver/client"
)

func newQueueCommand(g *globals) *cobra.Command {
	var shape, cluster string
	var width int
	var watch bool
	c := withOutput(g, &cobra.Command{
		Use:   "queue [--shape H100] [--cluster C]",
		Short: "Show the timeline of a GPU shape's nodes: who holds each until when, and who is next",
		Long: `Print the plan for the nodes of one GPU shape (all shapes without --shape):
one row per node, time running right from now. A capital letter is a
Provisioned GPR holding the node, a small letter a queued GPR the plan
reserves it for (its likely start onwards). The legend below names each
letter's GPR with its place in the queue and both estimates (GPRs of
workspaces you may not read show no id or name).`,
		Example: `  gpuspace queue --shape H100
  gpuspace queue --shape H100 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			s, err := g.connect(ctx)
			if err != nil {
				return err
			}
			show := func() error {
				r, err := s.api.GetPlanWithResponse(ctx)
				if err := check(r, err, nil); err != nil {
					return err
				}
				tl := filterTimeline(r.JSON200.Data, shape, cluster)
				if g.output != outTable {
					return render(cmd.OutOrStdout(), g.output, tl, nil)
				}
				return drawTimeline(cmd.OutOrStdout(), tl, g.now(), width)
			}
			if !watch {
				return show()
			}
			return watchEvents(ctx, cmd.OutOrStdout(), s, show)
		},
	})
	c.Flags().StringVar(&shape, "shape", "", "GPU shape, e.g. H100 (as the inventory names it)")
	c.Flags().StringVar(&cluster, "cluster", "", "Only this cluster's nodes")
	c.Flags().IntVar(&width, "width", 60, "Columns of the time axis")
	c.Flags().BoolVar(&watch, "watch", false, "Draw it again on every change (until interrupted)")
	return c
}

// filterTimeline keeps the nodes of the shape and cluster and the GPRs on
// them (queued GPRs with no nodes reserved yet stay if their shape is
// unknown to the plan, so a wait can be explained).
func filterTimeline(tl client.Timeline, shape, cluster string) client.Timeline {
	var nodes []client.PlanNode
	keep := map[string]bool{}
	for _, n := range deref(tl.Nodes) {
		if (shape == "" || strings.EqualFold(n.GpuShape, shape)) && (cluster == "" || n.ClusterName == cluster) {
			nodes = append(nodes, n)
			keep[n.Name] = true
		}
	}
	var gprs []client.PlanGPR
	for _, x := range deref(tl.Gprs) {
		on := slices.ContainsFunc(deref(x.Nodes), func(n string) bool { return keep[n] })
		if on || (len(deref(x.Nodes)) == 0 && shape == "" && cluster == "") {
			gprs = append(gprs, x)
		}
	}
	return client.Timeline{Now: tl.Now, Nodes: &nodes, Gprs: &gprs}
}

// drawTimeline prints one row per node and a legend of the GPRs.
func drawTimeline(w io.Writer, tl client.Timeline, now time.Time, width int) error {
	if width < 10 {
		width = 10
	}
	if t := parseTime(tl.Now); !t.IsZero() {
		now = t
	}
	gprs := deref(tl.Gprs)
	end := now.Add(time.Hour)
	for _, x := range gprs {
		if t := parseTime(x.End); t.After(end) {
			end = t
		}
	}
	span := end.Sub(now)
	col := func(t time.Time) int {
		c := int(float64(width) * float64(t.Sub(now)) / float64(span))
		return max(0, min(width, c))
	}
	letters := map[int]byte{}
	pos, n := map[int]int{}, 0
	for i, x := range gprs {
		letters[i] = letterOf(i, x.ProvisioningStatus == client.PlanGPRProvisioningStatusProvisioned)
		if x.ProvisioningStatus == client.PlanGPRProvisioningStatusQueued {
			n++
			pos[i] = n
		}
	}
	nameW := 4
	for _, nd := range deref(tl.Nodes) {
		nameW = max(nameW, len(nd.Name))
	}
	printf(w, "%-*s  now%s%s\n", nameW, "NODE", strings.Repeat(" ", max(1, width-3-len(short(span))-1)), "+"+short(span.Round(time.Minute)))
	for _, nd := range deref(tl.Nodes) {
		row := []byte(strings.Repeat(".", width))
		if !nd.Healthy {
			row = []byte(strings.Repeat("x", width))
		}
		for i, x := range gprs {
			if !slices.Contains(deref(x.Nodes), nd.Name) {
				continue
			}
			from, to := col(parseTime(x.Start)), col(parseTime(x.End))
			if parseTime(x.Start).IsZero() {
				continue
			}
			for c := from; c < to && c < width; c++ {
				row[c] = letters[i]
			}
		}
		printf(w, "%-*s  |%s| %d x %s\n", nameW, nd.Name, row, nd.GpuCount, nd.GpuShape)
	}
	if len(gprs) == 0 {
		printf(w, "\nNo GPR holds or waits for these nodes.\n")
		return nil
	}
	printf(w, "\n")
	t := &table{header: []string{"", "ID", "NAME", "WORKSPACE", "STATUS", "POSITION", "START", "LATEST START", "END"}}
	for i, x := range gprs {
		p := "-"
		if pos[i] > 0 {
			p = fmt.Sprint(pos[i])
		}
		status := string(x.ProvisioningStatus)
		if x.Reason != "" {
			status += " (" + x.Reason + ")"
		}
		t.add(string(letters[i]), dash(x.GprId), dash(x.GprName), dash(x.SliceName), status, p, when(x.Start, now), when(x.LatestStart, now), when(x.End, now))
	}
	return t.write(w)
}

// letterOf names the i-th GPR on the timeline: capitals for provisioned,
// small letters for queued; ? past z.
func letterOf(i int, provisioned bool) byte {
	if i >= 26 {
		return '?'
	}
	if provisioned {
		return byte('A' + i)
	}
	return byte('a' + i)
}

func deref[T any](p *[]T) []T {
	if p == nil {
		return nil
	}
	return *p
}
