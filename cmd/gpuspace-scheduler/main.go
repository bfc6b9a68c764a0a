// Command gpuspace-scheduler is kube-scheduler with gpuspace's plugins,
// WorkspaceBinding and GPRPriority, registered. It takes kube-scheduler's
// flags; a KubeSchedulerConfiguration (manifests/scheduler) enables the
// plugins in the default-scheduler profile. Logging is kube-scheduler's own
// (component-base), so --logging-format=json works as it does there.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register" // --logging-format=json
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"

	"github.com/gpuspace/gpuspace/scheduler-plugin/gprpriority"
	"github.com/gpuspace/gpuspace/scheduler-plugin/workspacebinding"
)

func main() {
	cmd := app.NewSchedulerCommand(
		app.WithPlugin(workspacebinding.Name, workspacebinding.New),
		app.WithPlugin(gprpriority.Name, gprpriority.New),
	)
	os.Exit(cli.Run(cmd))
}
