package schema

import (
	"github.com/danielgtaylor/huma/v2"

	"github.com/gpuspace/gpuspace/apiserver/envelope"
)

// PolicyDurationPattern is a WorkspacePolicy's maxExitDurationPerGPR, as
// EGS's CRD has it (weeks, W, or months, M: 30 days; e.g. 1W), or empty.
const PolicyDurationPattern = `^(([0-9]+)([MW]))?$`

func init() {
	envelope.DescribePattern(PolicyDurationPattern, "a number of weeks or months, e.g. 1W or 2M (a month is 30 days)")
}

// PolicyDuration is an optional maxExitDurationPerGPR (empty: the default,
// 1W).
type PolicyDuration string

// Schema implements huma.SchemaProvider.
func (PolicyDuration) Schema(huma.Registry) *huma.Schema {
	return str(PolicyDurationPattern, durationMax)
}
