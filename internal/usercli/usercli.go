// Package usercli is the ML user's side of the gpuspace command: log in to
// a gpuspace server, list workspaces and get their kubeconfigs, create,
// follow and release GPU provision requests, and read the queue. It speaks
// only the REST API (/api/v1), through the generated client
// (apiserver/client), so it works against any gpuspace, local or remote,
// and never needs a kubeconfig of the hub.
package usercli

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// GroupID is the cobra command group of the user commands in --help.
const GroupID = "user"

// Group is the --help heading of the user commands.
func Group() *cobra.Group {
	return &cobra.Group{ID: GroupID, Title: "Using gpuspace (any server, through its REST API):"}
}

// globals are the flags every user command has.
type globals struct {
	context string
	server  string
	output  string
	now     func() time.Time
}

func (o *globals) addFlags(fs *pflag.FlagSet, withOutput bool) {
	fs.StringVar(&o.context, "context", "", "Context of the config file to use (default: its current context)")
	fs.StringVar(&o.server, "server", "", "gpuspace server URL, over the context's (also $GPUSPACE_SERVER; the key then comes from $GPUSPACE_API_KEY or the context)")
	if withOutput {
		fs.StringVarP(&o.output, "output", "o", outTable, "Output format: table, json or yaml")
	}
}

// Commands returns the user commands, in GroupID.
func Commands() []*cobra.Command {
	g := &globals{now: time.Now}
	cmds := []*cobra.Command{
		newLoginCommand(g), newLogoutCommand(g), newConfigCommand(),
		newWorkspaceCommand(g), newGPRCommand(g), newQueueCommand(g),
	}
	for _, c := range cmds {
		c.GroupID = GroupID
	}
	return cmds
}

// withOutput adds the global flags with -o to c and checks -o before it runs.
func withOutput(g *globals, c *cobra.Command) *cobra.Command {
	g.addFlags(c.Flags(), true)
	pre := c.PreRunE
	c.PreRunE = func(cmd *cobra.Command, args []string) error {
		if err := validOutput(g.output); err != nil {
			return err
		}
		if pre != nil {
			return pre(cmd, args)
		}
		return nil
	}
	return c
}

func printf(w io.Writer, format string, a ...any) { _, _ = fmt.Fprintf(w, format, a...) }
