package snapshot

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// Topologies lists the Topology objects, indexed before the built-in
// topologies. Where the Topology CRD is not installed, the built-in ones
// alone apply.
func (r Reader) Topologies(ctx context.Context) (domain.Topologies, error) {
	var list v1alpha1.TopologyList
	if err := r.Client.List(ctx, &list, r.ListOptions...); err != nil {
		if meta.IsNoMatchError(err) {
			return domain.TopologyIndex(nil), nil
		}
		return domain.Topologies{}, fmt.Errorf("list topologies: %w", err)
	}
	return domain.TopologyIndex(list.Items), nil
}
