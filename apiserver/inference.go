package apiserver

import (
	"context"
	"net/http"

	"github.com/gpuspace/gpuspace/apiserver/envelope"
)

// KeyInferenceNotServed is the error key of every inference endpoint
// operation: EGS serves models (/api/v1/inference-endpoint), gpuspace
// does not.
const KeyInferenceNotServed = "INFERENCE_ENDPOINTS_NOT_SERVED"

// inferenceNotServedMessage is the message of KeyInferenceNotServed: what
// to do instead.
const inferenceNotServedMessage = "gpuspace does not serve inference endpoints (model serving is not part of gpuspace): " +
	"ask for GPUs with POST /api/v1/gpr and run the model server in the workspace's namespaces with the workspace kubeconfig"

// inferenceQueryInput is what the EGS inference endpoint reads send; it is
// accepted and ignored.
type inferenceQueryInput struct {
	Workspace string `query:"workspace" doc:"Ignored: gpuspace serves no inference endpoints"`
	Endpoint  string `query:"endpoint" doc:"Ignored"`
	Cluster   string `query:"cluster" doc:"Ignored"`
}

// inferenceBodyInput is what the EGS inference endpoint writes send,
// accepted unread, whatever it is.
type inferenceBodyInput struct {
	RawBody []byte
}

// registerInference registers EGS's inference endpoint paths, which the
// EGS Python SDK calls (egs.create_inference_endpoint, ...): each answers
// 501 with KeyInferenceNotServed in the envelope, so an SDK user gets a
// clear answer instead of a 404. They are not MCP tools.
func (s *Server) registerInference() {
	const tag = "Inference endpoints (not served)"
	const desc = "gpuspace does not serve inference endpoints: this answers 501 with error key " + KeyInferenceNotServed +
		". Ask for GPUs with POST /api/v1/gpr and deploy the model server in the workspace's namespaces with the workspace kubeconfig."
	notServed := func() error {
		return envelope.New(http.StatusNotImplemented, KeyInferenceNotServed, inferenceNotServedMessage)
	}
	query := func(context.Context, *inferenceQueryInput) (*envelope.Output[envelope.Empty], error) {
		return nil, notServed()
	}
	body := func(context.Context, *inferenceBodyInput) (*envelope.Output[envelope.Empty], error) {
		return nil, notServed()
	}
	errs := []int{http.StatusNotImplemented}
	register(s, opSpec{
		id: "listInferenceEndpoints", method: http.MethodGet, path: "/api/v1/inference-endpoint/list", tag: tag,
		summary: "List inference endpoints (not served: 501)", description: desc,
		roles: rolesReaders, scope: scopeNone, readOnly: true, idempotent: true, errors: errs,
	}, query)
	register(s, opSpec{
		id: "describeInferenceEndpoint", method: http.MethodGet, path: "/api/v1/inference-endpoint", tag: tag,
		summary: "Describe an inference endpoint (not served: 501)", description: desc,
		roles: rolesReaders, scope: scopeNone, readOnly: true, idempotent: true, errors: errs,
	}, query)
	register(s, opSpec{
		id: "createInferenceEndpoint", method: http.MethodPost, path: "/api/v1/inference-endpoint", tag: tag,
		summary: "Create an inference endpoint (not served: 501)", description: desc,
		roles: rolesEditors, scope: scopeNone, errors: errs,
	}, body)
	register(s, opSpec{
		id: "deleteInferenceEndpoint", method: http.MethodDelete, path: "/api/v1/inference-endpoint", tag: tag,
		summary: "Delete an inference endpoint (not served: 501)", description: desc,
		roles: rolesEditors, scope: scopeNone, destructive: true, errors: errs,
	}, body)
}
