package cli

import (
	"github.com/spf13/cobra"

	"github.com/gpuspace/gpuspace/internal/usercli"
)

// operatorGroup is the --help heading of the commands that run gpuspace
// (they need a kubeconfig of the hub, or run the system).
const operatorGroup = "operator"

// groupCommands puts the operator commands under their heading and adds
// the user commands (internal/usercli) under theirs, so `gpuspace --help`
// reads as two manuals: one for using gpuspace, one for running it.
func groupCommands(root *cobra.Command) {
	root.AddGroup(usercli.Group(), &cobra.Group{ID: operatorGroup, Title: "Running gpuspace (operators; these use a kubeconfig of the hub):"})
	for _, c := range root.Commands() {
		switch {
		case c.Name() == "version":
			c.GroupID = usercli.GroupID
		case c.GroupID == "":
			c.GroupID = operatorGroup
		}
	}
	root.AddCommand(usercli.Commands()...)
	root.SetHelpCommandGroupID(usercli.GroupID)
	root.SetCompletionCommandGroupID(usercli.GroupID)
}
