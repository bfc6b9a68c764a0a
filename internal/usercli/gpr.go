package usercli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpuspace/gpuspace/apiserver/client"
)

func newGPRCommand(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:     "gpr",
		Aliases: []string{"gprs"},
		Short:   "Ask for GPU nodes (GPU provision requests), follow them in the queue, release them",
		Long: `A GPU provision request (GPR) asks for nodes of a GPU shape for a workspace,
for a duration. It waits in the queue (by priority, then age) until the nodes
are free, then holds them (Provisioned) until its duration ends or you
release it; the workspace's GPU pods run on them.`,
	}
	c.AddCommand(newGPRCreateCommand(g), newGPREstimateCommand(g), newGPRListCommand(g), newGPRGetCommand(g),
		newGPRReleaseCommand(g), newGPRDeleteCommand(g), newGPRWaitCommand(g))
	return c
}

func newGPRCreateCommand(g *globals) *cobra.Command {
	f := &gprFlags{}
	var wait bool
	c := withOutput(g, &cobra.Command{
		Use:   "create -w WORKSPACE --gpus N --duration D [flags]",
		Short: "Create a GPR; with --wait, follow it until it is Provisioned",
		Example: `  gpuspace gpr create -w team-a --name train --shape H100 --gpus 8 --nodes 2 --duration 4h
  gpuspace gpr create -w team-a --from-template h100-day --priority 150 --wait`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			s, err := g.connect(ctx)
			if err != nil {
				return err
			}
			req, err := f.request(ctx, cmd, s)
			if err != nil {
				return err
			}
			r, err := s.api.CreateGPRWithResponse(ctx, req)
			if err := check(r, err, fieldFlags); err != nil {
				return err
			}
			id := r.JSON200.Data.GprId
			if wait {
				printf(cmd.ErrOrStderr(), "Created %s.\n", id)
				return waitFor(ctx, cmd.OutOrStdout(), s, id, g.now)
			}
			gpr, err := getGPR(ctx, s, id)
			if err != nil {
				return err
			}
			return g.printGPRs(ctx, cmd.OutOrStdout(), s, []client.GPR{*gpr}, false)
		},
	})
	f.add(c.Flags())
	c.Flags().BoolVar(&wait, "wait", false, "Follow the GPR until it is Provisioned (as gpr wait)")
	return c
}

func newGPREstimateCommand(g *globals) *cobra.Command {
	f := &gprFlags{}
	c := withOutput(g, &cobra.Command{
		Use:   "estimate -w WORKSPACE --gpus N --duration D [flags]",
		Short: "When a GPR with these flags would start if created now (creates nothing)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			s, err := g.connect(ctx)
			if err != nil {
				return err
			}
			req, err := f.request(ctx, cmd, s)
			if err != nil {
				return err
			}
			r, err := s.api.EstimateGPRWaitTimeWithResponse(ctx, req)
			if err := check(r, err, fieldFlags); err != nil {
				return err
			}
			w := r.JSON200.Data
			return render(cmd.OutOrStdout(), g.output, w, func() *table {
				t := &table{header: []string{"SATISFIABLE", "LIKELY START", "LATEST START", "REASON"}}
				now := g.now()
				t.add(fmt.Sprint(w.Satisfiable), when(w.EstimatedStartTime, now), when(w.LatestStartTime, now), dash(w.Reason))
				return t
			})
		},
	})
	f.add(c.Flags())
	return c
}

func newGPRListCommand(g *globals) *cobra.Command {
	var ws string
	var watch bool
	c := withOutput(g, &cobra.Command{
		Use:   "list [-w WORKSPACE] [--watch]",
		Short: "List GPRs with their place in the queue and both estimates",
		Long: `List the GPRs you may read. A queued GPR shows its POSITION in the queue
(1 starts next; the order is priority, then age) and two estimates: LIKELY
START, from how long the GPRs ahead of it usually hold their nodes, and
LATEST START, if every GPR ahead holds its nodes for its whole duration and
no higher-priority GPR arrives. --watch prints the list again on every
change.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			s, err := g.connect(ctx)
			if err != nil {
				return err
			}
			show := func() error {
				gprs, err := listGPRs(ctx, s, ws)
				if err != nil {
					return err
				}
				return g.printGPRs(ctx, cmd.OutOrStdout(), s, gprs, true)
			}
			if !watch {
				return show()
			}
			return watchEvents(ctx, cmd.OutOrStdout(), s, show)
		},
	})
	c.Flags().StringVarP(&ws, "workspace", "w", "", "Only this workspace's GPRs")
	c.Flags().BoolVar(&watch, "watch", false, "Print the list again on every change (until interrupted)")
	return c
}

func newGPRGetCommand(g *globals) *cobra.Command {
	return withOutput(g, &cobra.Command{
		Use: "get GPR_ID", Short: "Show a GPR", Args: cobra.ExactArgs(1),
		ValidArgsFunction: g.completeGPRs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, err := g.connect(ctx)
			if err != nil {
				return err
			}
			gpr, err := getGPR(ctx, s, args[0])
			if err != nil {
				return err
			}
			return g.printGPRs(ctx, cmd.OutOrStdout(), s, []client.GPR{*gpr}, false)
		},
	})
}

func newGPRReleaseCommand(g *globals) *cobra.Command {
	return newGPRChangeCommand(g, "release", "Release a Provisioned GPR's nodes now (early release)",
		"Releasing %s.\n", "gpuspace gpr delete %s (a queued GPR is deleted, not released)",
		func(ctx context.Context, s *session, id string) (any, error) {
			yes := true
			return s.api.UpdateGPRWithResponse(ctx, client.GPRUpdate{GprId: id, EarlyRelease: &yes})
		})
}

func newGPRDeleteCommand(g *globals) *cobra.Command {
	return newGPRChangeCommand(g, "delete", "Delete a Queued (or failed) GPR",
		"Deleted %s.\n", "gpuspace gpr release %s (a Provisioned GPR is released, not deleted)",
		func(ctx context.Context, s *session, id string) (any, error) {
			return s.api.DeleteGPRWithResponse(ctx, client.GPRID{GprId: id})
		})
}

// newGPRChangeCommand is a command that changes one GPR by one API call.
// A 409 means the GPR is in the other state, so the error names the other
// command (onConflict, formatted with the id) as the fix.
func newGPRChangeCommand(g *globals, verb, short, done, onConflict string,
	call func(ctx context.Context, s *session, id string) (any, error)) *cobra.Command {
	c := &cobra.Command{
		Use: verb + " GPR_ID", Short: short, Args: cobra.ExactArgs(1),
		ValidArgsFunction: g.completeGPRs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, err := g.connect(ctx)
			if err != nil {
				return err
			}
			r, err := call(ctx, s, args[0])
			if err := check(r, err, fieldFlags); err != nil {
				if e, ok := asAPIError(err); ok && e.Status == 409 {
					e.Flag = fmt.Sprintf(onConflict, args[0])
				}
				return err
			}
			printf(cmd.OutOrStdout(), done, args[0])
			return nil
		},
	}
	g.addFlags(c.Flags(), false)
	return c
}

func newGPRWaitCommand(g *globals) *cobra.Command {
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "wait GPR_ID",
		Short: "Follow a GPR until it is Provisioned; non-zero exit when it fails or ends first",
		Long: `Follow the GPR on the server's event stream. On a terminal one live line
shows its position in the queue, likely start and latest start; otherwise
a line is printed on each change. Exits 0 once it is Provisioned, 1 when it
fails (Error), is released or deleted first (--timeout: after that long).`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: g.completeGPRs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			s, err := g.connect(ctx)
			if err != nil {
				return err
			}
			err = waitFor(ctx, cmd.OutOrStdout(), s, args[0], g.now)
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("%s is not Provisioned after --timeout %v: %w", args[0], timeout, errNotProvisioned)
			}
			return err
		},
	}
	g.addFlags(c.Flags(), false)
	c.Flags().DurationVar(&timeout, "timeout", 0, "Give up after this long (exit 1); 0 waits as long as it takes")
	return c
}

func getGPR(ctx context.Context, s *session, id string) (*client.GPR, error) {
	r, err := s.api.GetGPRWithResponse(ctx, &client.GetGPRParams{GprId: id})
	if err := check(r, err, fieldFlags); err != nil {
		return nil, err
	}
	return &r.JSON200.Data, nil
}

func listGPRs(ctx context.Context, s *session, ws string) ([]client.GPR, error) {
	p := &client.ListGPRsParams{}
	if ws != "" {
		p.SliceName = &ws
	}
	r, err := s.api.ListGPRsWithResponse(ctx, p)
	if err := check(r, err, map[string]string{"sliceName": "--workspace"}); err != nil {
		return nil, err
	}
	if r.JSON200.Data.Items == nil {
		return nil, nil
	}
	return *r.JSON200.Data.Items, nil
}

// gprRow is a GPR as the CLI prints it: the API's GPR and its place in the
// queue (0 when not queued).
type gprRow struct {
	client.GPR
	Position int `json:"position,omitempty"`
}

// printGPRs prints GPRs with their queue positions (from the plan).
func (g *globals) printGPRs(ctx context.Context, w io.Writer, s *session, gprs []client.GPR, list bool) error {
	pos, err := positions(ctx, s)
	if err != nil {
		return err
	}
	rows := make([]gprRow, len(gprs))
	for i, x := range gprs {
		rows[i] = gprRow{GPR: x, Position: pos[x.GprId]}
	}
	var v any = rows
	if !list && len(rows) == 1 {
		v = rows[0]
	}
	now := g.now()
	return render(w, g.output, v, func() *table {
		t := &table{header: []string{"ID", "NAME", "WORKSPACE", "STATUS", "GPUS", "SHAPE", "PRIORITY", "POSITION", "LIKELY START", "LATEST START", "NODES"}}
		for _, r := range rows {
			p, likely, latest := "-", "-", "-"
			switch r.Status.ProvisioningStatus {
			case client.GPRStatusProvisioningStatusQueued:
				if r.Position > 0 {
					p = fmt.Sprint(r.Position)
				}
				likely, latest = when(r.EstimatedStartTime, now), when(r.LatestStartTime, now)
			case client.GPRStatusProvisioningStatusProvisioned:
				likely = "started " + when(r.Status.StartTimestamp, now)
			}
			status := string(r.Status.ProvisioningStatus)
			if r.Status.FailureReason != "" && r.Status.ProvisioningStatus != client.GPRStatusProvisioningStatusProvisioned {
				status += " (" + r.Status.FailureReason + ")"
			}
			t.add(r.GprId, r.GprName, r.SliceName, status, fmt.Sprintf("%dx%d", r.NumberOfGPUNodes, r.NumberOfGPUs),
				dash(r.GpuShape), fmt.Sprint(r.Priority), p, likely, latest, join(r.Status.Nodes))
		}
		return t
	})
}

// positions is each queued GPR's place in the queue, 1 first: the plan
// lists queued GPRs in queue order.
func positions(ctx context.Context, s *session) (map[string]int, error) {
	r, err := s.api.GetPlanWithResponse(ctx)
	if err := check(r, err, nil); err != nil {
		return nil, err
	}
	pos := map[string]int{}
	if r.JSON200.Data.Gprs == nil {
		return pos, nil
	}
	n := 0
	for _, x := range *r.JSON200.Data.Gprs {
		if x.ProvisioningStatus != client.PlanGPRProvisioningStatusQueued {
			continue
		}
		n++
		if x.GprId != "" {
			pos[x.GprId] = n
		}
	}
	return pos, nil
}

func (g *globals) completeGPRs(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	s, err := g.connect(cmd.Context())
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	gprs, err := listGPRs(cmd.Context(), s, "")
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var ids []string
	for _, x := range gprs {
		ids = append(ids, x.GprId+"\t"+x.GprName+" ("+x.SliceName+", "+string(x.Status.ProvisioningStatus)+")")
	}
	return ids, cobra.ShellCompDirectiveNoFileComp
}
