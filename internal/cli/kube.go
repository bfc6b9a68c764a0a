package cli

import (
	"fmt"

	"github.com/go-logr/logr"
	"go.uber.org/zap"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/gpuspace/gpuspace/internal/util/logging"
)

// restConfig loads a client configuration the way kubectl does: an explicit
// --kubeconfig, else $KUBECONFIG or ~/.kube/config, else the in-cluster
// service account.
func restConfig(kubeconfig string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		if inCluster, icErr := rest.InClusterConfig(); icErr == nil {
			return inCluster, nil
		}
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	return cfg, nil
}

// newLogger builds the process logger and routes klog and controller-runtime
// through it.
func newLogger(format, level string) (*zap.Logger, logr.Logger, error) {
	zl, lr, err := logging.New(logging.Options{Format: format, Level: level})
	if err != nil {
		return nil, logr.Logger{}, err
	}
	ctrl.SetLogger(lr)
	return zl, lr, nil
}
