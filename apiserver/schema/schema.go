// Package schema holds the string types of the API's requests that share a
// pattern: a DNS-1123 label (workspace and GPR names), an EGS duration
// (NdNhNm) and a GPR id, each required or optional. Each type gives huma
// its JSON schema (huma.SchemaProvider), so the pattern is written once
// here instead of in a struct tag on every field; a field's own tags (doc,
// minLength, ...) still apply on top. The schemas are inline, as the
// struct tags were: the OpenAPI document is the same.
package schema

import (
	"github.com/danielgtaylor/huma/v2"

	"github.com/gpuspace/gpuspace/apiserver/envelope"
)

// Patterns, as the CRDs have them.
const (
	// DNSLabelPattern is a DNS-1123 label.
	DNSLabelPattern = `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// OptionalDNSLabelPattern is empty or a DNS-1123 label.
	OptionalDNSLabelPattern = `^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$`
	// DurationPattern is an EGS duration, NdNhNm.
	DurationPattern = `^[0-9]{1,4}d[0-9]{1,5}h[0-9]{1,6}m$`
	// OptionalDurationPattern is empty or an EGS duration.
	OptionalDurationPattern = `^([0-9]{1,4}d[0-9]{1,5}h[0-9]{1,6}m)?$`
)

// Length limits.
const (
	dnsLabelMax = 63
	durationMax = 20
)

func init() {
	// Validation failures of these patterns say what is expected in words.
	envelope.DescribePattern(DNSLabelPattern, "a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit")
	envelope.DescribePattern(OptionalDNSLabelPattern, "empty or a DNS-1123 label")
	envelope.DescribePattern(DurationPattern, "NdNhNm, e.g. 0d2h30m (at most 4 digits of days, 5 of hours, 6 of minutes)")
	envelope.DescribePattern(OptionalDurationPattern, "empty or NdNhNm, e.g. 0d0h30m")
}

func str(pattern string, maxLen int) *huma.Schema {
	return &huma.Schema{Type: huma.TypeString, MaxLength: &maxLen, Pattern: pattern}
}

// DNSLabel is a DNS-1123 label: a workspace or GPR name. Add
// minLength:"1" where it is required in a body (the pattern refuses ""
// already; the tag documents it).
type DNSLabel string

// Schema implements huma.SchemaProvider.
func (DNSLabel) Schema(huma.Registry) *huma.Schema { return str(DNSLabelPattern, dnsLabelMax) }

// OptionalDNSLabel is empty or a DNS-1123 label.
type OptionalDNSLabel string

// Schema implements huma.SchemaProvider.
func (OptionalDNSLabel) Schema(huma.Registry) *huma.Schema {
	return str(OptionalDNSLabelPattern, dnsLabelMax)
}

// GPRID is the id of a GPR (its object name, a DNS-1123 label; the API
// makes gpr-xxxxxxxx-xxxx, kubectl users may pick any).
type GPRID string

// Schema implements huma.SchemaProvider.
func (GPRID) Schema(huma.Registry) *huma.Schema { return str(DNSLabelPattern, dnsLabelMax) }

// Duration is an EGS duration, NdNhNm (e.g. 0d2h30m).
type Duration string

// Schema implements huma.SchemaProvider.
func (Duration) Schema(huma.Registry) *huma.Schema { return str(DurationPattern, durationMax) }

// OptionalDuration is empty or an EGS duration.
type OptionalDuration string

// Schema implements huma.SchemaProvider.
func (OptionalDuration) Schema(huma.Registry) *huma.Schema {
	return str(OptionalDurationPattern, durationMax)
}
