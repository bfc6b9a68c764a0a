package schema

import (
	"github.com/danielgtaylor/huma/v2"

	"github.com/gpuspace/gpuspace/apiserver/envelope"
)

// LenientDurationPattern is an EGS duration (NdNhNm) or a Go duration of
// hours, minutes and seconds ("1h", "10m", "1h0m0s"), as the EGS SDK's
// template examples write them.
// The pattern also matches "": a required field adds minLength:"1".
const LenientDurationPattern = `^([0-9]{1,4}d[0-9]{1,5}h[0-9]{1,6}m|([0-9]{1,6}h)?([0-9]{1,6}m)?([0-9]{1,6}s)?)$`

func init() {
	envelope.DescribePattern(LenientDurationPattern, "NdNhNm (e.g. 0d2h30m) or hours and minutes (e.g. 2h30m, 10m)")
}

// LenientDuration is an EGS duration or a Go duration of whole minutes
// (duration.ParseLenient); the API stores it as NdNhNm. Add minLength:"1"
// where it is required.
type LenientDuration string

// Schema implements huma.SchemaProvider.
func (LenientDuration) Schema(huma.Registry) *huma.Schema {
	return str(LenientDurationPattern, durationMax)
}
