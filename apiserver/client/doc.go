// Package client is a Go client for gpuspace's /api/v1 REST API, generated
// by oapi-codegen from the OpenAPI document the server itself serves (in
// its OpenAPI 3.0 form, which oapi-codegen reads). It is the proof that the
// document is complete enough to drive the API, and a ready client for Go
// programs:
//
//	c, _ := client.NewClientWithResponses("http://127.0.0.1:8080",
//		client.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
//			r.Header.Set("Authorization", "Bearer "+token)
//			return nil
//		}))
//	resp, _ := c.ListWorkspacesWithResponse(ctx)
//
// Regenerate with `make generate` after changing an operation; `make
// verify` fails while openapi.json or client.gen.go are stale.
package client

//go:generate go run ../../cmd/gpuspace openapi --openapi-version 3.0 -o openapi.json
//go:generate go tool oapi-codegen -config oapi-codegen.yaml openapi.json
