package console_test

import (
	"context"
	"testing"

	"github.com/gpuspace/gpuspace/apiserver/client"
	"github.com/gpuspace/gpuspace/internal/server/servertest"
)

// putPolicyAndTemplate gives ws a policy (5 GPRs at once, H100 only) and makes a
// GPR template, through the API as an Owner.
func putPolicyAndTemplate(t *testing.T, ctx context.Context, base, ownerKey, ws, sfx string) {
	t.Helper()
	ar, err := servertest.Client(t, base, "").AuthenticateWithResponse(ctx, client.AuthRequest{ApiKey: ownerKey})
	if err != nil || ar.JSON200 == nil {
		t.Fatalf("auth: %v", err)
	}
	owner := servertest.Client(t, base, ar.JSON200.Data.Token)
	maxGPRs, shapes, prio := int32(5), []string{"H100"}, client.WorkspacePolicyBodyPriorityRange("medium")
	if r, err := owner.PutWorkspacePolicyWithResponse(ctx, ws, client.WorkspacePolicyBody{MaxGPRs: &maxGPRs, GpuShapes: &shapes, PriorityRange: &prio}); err != nil || r.StatusCode() != 200 {
		t.Fatalf("put policy: %v %s", err, r.Body)
	}
	shape := "H100"
	if r, err := owner.CreateGPRTemplateWithResponse(ctx, client.GPRTemplateRequest{Name: "tmpl-" + sfx, GpuShape: &shape, NumberOfGPUs: 8, ExitDuration: "0d1h0m"}); err != nil || r.StatusCode() != 200 {
		t.Fatalf("create template: %v %s", err, r.Body)
	}
}
