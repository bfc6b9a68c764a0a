// Package index holds the informer-cache field indexes gpuspace's
// controllers and REST API look objects up by. The two share one cache in
// `gpuspace serve`, and a cache takes each index once, so each is defined
// here and nowhere else.
package index

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// GPRWorkspace indexes GPUProvisionRequests by spec.workspace: a
// workspace's GPRs without listing every GPR in the cluster.
const GPRWorkspace = "spec.workspace"

// AddGPRWorkspace registers GPRWorkspace with i, before its cache starts.
func AddGPRWorkspace(ctx context.Context, i client.FieldIndexer) error {
	err := i.IndexField(ctx, &v1alpha1.GPUProvisionRequest{}, GPRWorkspace, func(o client.Object) []string {
		return []string{o.(*v1alpha1.GPUProvisionRequest).Spec.Workspace}
	})
	if err != nil {
		return fmt.Errorf("index GPRs by workspace: %w", err)
	}
	return nil
}
