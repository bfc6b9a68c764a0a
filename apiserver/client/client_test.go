package client_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	crzap "sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/apiserver/client"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
	"github.com/gpuspace/gpuspace/internal/server"
	"github.com/gpuspace/gpuspace/internal/server/servertest"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	// The controllers log through controller-runtime; without a logger it
	// prints a warning with a stack trace into the test output.
	ctrllog.SetLogger(crzap.New(crzap.WriteTo(io.Discard)))
	testenv.Main(m, &env)
}

func suffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// body is a generated response's status and raw body, for failure
// messages; r may be a nil pointer when the request itself failed.
func body(r any) string {
	v := reflect.ValueOf(r)
	if !v.IsValid() || v.IsNil() {
		return "<no response>"
	}
	resp := v.Elem()
	code := 0
	if h, ok := resp.FieldByName("HTTPResponse").Interface().(*http.Response); ok && h != nil {
		code = h.StatusCode
	}
	return fmt.Sprintf("%d %s", code, resp.FieldByName("Body").Bytes())
}

// TestGeneratedClientFlow drives workspace → GPR → release against the
// real control plane and controllers using nothing but the client that
// oapi-codegen generated from the served OpenAPI document: if the document
// leaves out a field, a parameter or an error shape a client needs, this
// test cannot be written or fails.
func TestGeneratedClientFlow(t *testing.T) {
	ctx := context.Background()
	sfx := suffix()
	keyNS, cluster, ws, ns, node := "gs-client-"+sfx, "oapi-"+sfx, "oapi-"+sfx, "oapi-ns-"+sfx, "oapi-h100-"+sfx

	url := servertest.Start(t, env.Config, server.Options{Namespace: keyNS})
	// The first Owner key comes from `gpuspace apikey create`, i.e. this
	// call; everything after it goes through the generated client.
	ownerKey, _, err := auth.CreateKey(ctx, env.Client, keyNS, auth.KeyRequest{Name: "owner", Role: auth.RoleOwner}, time.Now())
	if err != nil {
		t.Fatalf("create owner key: %v", err)
	}
	if _, err := env.AddGPUNode(ctx, testenv.GPUNode{Name: node, Cluster: cluster, InstanceType: "p5.48xlarge",
		Product: "NVIDIA-H100-80GB-HBM3", MemoryMiB: 81559, GPUs: 8}); err != nil {
		t.Fatalf("add node: %v", err)
	}
	t.Cleanup(func() { _ = env.Kube.CoreV1().Nodes().Delete(ctx, node, metav1.DeleteOptions{}) })

	anon := servertest.Client(t, url, "")
	if r, err := anon.HealthcheckWithResponse(ctx); err != nil || r.StatusCode() != http.StatusOK {
		t.Fatalf("healthcheck: %v %s", err, body(r))
	}
	if r, err := anon.ListWorkspacesWithResponse(ctx); err != nil || r.JSON401 == nil || r.JSON401.Error.ErrorKey == "" {
		t.Errorf("list without a token: want a 401 envelope with an errorKey, got %v %s", err, body(r))
	}
	owner := servertest.Client(t, url, login(t, url, ownerKey))

	inventoryNode := func(c *client.ClientWithResponses) *client.InventoryNode {
		r, err := c.ListInventoryWithResponse(ctx)
		if err != nil || r.JSON200 == nil || r.JSON200.Data.Items == nil {
			t.Fatalf("inventory: %v %s", err, body(r))
		}
		for _, n := range *r.JSON200.Data.Items {
			if n.GpuNodeName == node {
				return &n
			}
		}
		return nil
	}
	servertest.WaitFor(t, "the node in the inventory", 30*time.Second, func() bool { return inventoryNode(owner) != nil })
	if n := inventoryNode(owner); n.GpuShape != "H100" || n.GpuCount != 8 || n.ClusterName != cluster || n.GpuNodeState != client.NODEAVAILABLE {
		t.Errorf("inventory node %+v: want an available 8 x H100 in %s", *n, cluster)
	}

	// Workspace, and an Editor key limited to it.
	cr, err := owner.CreateWorkspaceWithResponse(ctx, client.CreateWorkspaceBody{
		WorkspaceName: ws, Username: "alice", Clusters: &[]string{cluster}, Namespaces: &[]string{ns}})
	if err != nil || cr.JSON200 == nil {
		t.Fatalf("create workspace: %v %s", err, body(cr))
	}
	t.Cleanup(func() { _ = env.Kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}) })
	servertest.WaitFor(t, "workspace Normal", 30*time.Second, func() bool {
		r, err := owner.GetWorkspaceWithResponse(ctx, ws)
		return err == nil && r.JSON200 != nil && r.JSON200.Data.Status.SliceHealthStatus == client.Normal
	})
	kr, err := owner.CreateAPIKeyWithResponse(ctx, client.APIKeyRequest{Name: "ci", Role: client.APIKeyRequestRoleEditor, WorkspaceName: &ws})
	if err != nil || kr.JSON200 == nil {
		t.Fatalf("create editor key: %v %s", err, body(kr))
	}
	if kr.JSON200.Data.WorkspaceName != ws || !strings.HasPrefix(kr.JSON200.Data.ApiKey, "gps_") {
		t.Errorf("editor key record %+v", kr.JSON200.Data)
	}
	editor := servertest.Client(t, url, login(t, url, kr.JSON200.Data.ApiKey))

	shape, exit, gpus, prio := "H100", "0d2h0m", int32(8), int32(250)
	req := client.GPRRequest{GprName: "train", SliceName: ws, ClusterName: &cluster, NumberOfGPUs: gpus,
		GpuShape: &shape, ExitDuration: exit, Priority: &prio}

	wr, err := editor.EstimateGPRWaitTimeWithResponse(ctx, req)
	if err != nil || wr.JSON200 == nil || !wr.JSON200.Data.Satisfiable || wr.JSON200.Data.EstimatedWaitTime != "0h0m0s" {
		t.Errorf("wait time on a free node: %v %s", err, body(wr))
	}

	// Errors are typed too: a priority out of range is a 422 envelope
	// naming the field.
	bad := req
	badPrio := int32(500)
	bad.Priority = &badPrio
	if r, err := editor.CreateGPRWithResponse(ctx, bad); err != nil || r.JSON422 == nil ||
		r.JSON422.Error.ErrorKey != "VALIDATION_ERROR" || !strings.Contains(r.JSON422.Error.Message, "priority") {
		t.Errorf("priority 500: want a 422 VALIDATION_ERROR naming priority, got %v %s", err, body(r))
	}

	gr, err := editor.CreateGPRWithResponse(ctx, req)
	if err != nil || gr.JSON200 == nil || gr.JSON200.Data.GprId == "" {
		t.Fatalf("create GPR: %v %s", err, body(gr))
	}
	id := gr.JSON200.Data.GprId
	get := func() client.GPR {
		r, err := editor.GetGPRWithResponse(ctx, &client.GetGPRParams{GprId: id})
		if err != nil || r.JSON200 == nil {
			t.Fatalf("get GPR %s: %v %s", id, err, body(r))
		}
		return r.JSON200.Data
	}
	servertest.WaitFor(t, "GPR Provisioned", 30*time.Second, func() bool { return get().Status.ProvisioningStatus == client.GPRStatusProvisioningStatusProvisioned })
	g := get()
	if g.Status.Nodes == nil || !slices.Equal(*g.Status.Nodes, []string{node}) || g.ExitDuration != "2h0m0s" || g.Priority != prio {
		t.Errorf("provisioned GPR %+v: want node %s, exitDuration 2h0m0s, priority %d", g, node, prio)
	}
	if n := inventoryNode(owner); n.GpuNodeState != client.NODERESERVED || n.GprId != id {
		t.Errorf("inventory node while held: %+v, want reserved by %s", *n, id)
	}
	if r, err := editor.DeleteGPRWithResponse(ctx, client.GPRID{GprId: id}); err != nil || r.JSON409 == nil ||
		r.JSON409.Error.Message != "Cannot delete GPR in Provisioned state" {
		t.Errorf("delete a provisioned GPR: want the EGS 409, got %v %s", err, body(r))
	}

	// Early release: the node goes back to the pool.
	release := true
	if r, err := editor.UpdateGPRWithResponse(ctx, client.GPRUpdate{GprId: id, EarlyRelease: &release}); err != nil || r.StatusCode() != http.StatusOK {
		t.Fatalf("early release: %v %s", err, body(r))
	}
	servertest.WaitFor(t, "GPR Complete", 30*time.Second, func() bool { return get().Status.ProvisioningStatus == client.GPRStatusProvisioningStatusComplete })
	servertest.WaitFor(t, "node available again", 30*time.Second, func() bool { return inventoryNode(owner).GpuNodeState == client.NODEAVAILABLE })
	lr, err := editor.ListGPRsWithResponse(ctx, &client.ListGPRsParams{SliceName: &ws})
	if err != nil || lr.JSON200 == nil || lr.JSON200.Data.Items == nil || len(*lr.JSON200.Data.Items) != 1 ||
		(*lr.JSON200.Data.Items)[0].GprId != id || !(*lr.JSON200.Data.Items)[0].EarlyRelease {
		t.Errorf("GPR list: want the one released GPR, got %v %s", err, body(lr))
	}

	// An Editor may not delete the workspace; the Owner may.
	if r, err := editor.DeleteWorkspaceWithResponse(ctx, client.WorkspaceNameBody{WorkspaceName: ws}); err != nil || r.JSON403 == nil {
		t.Errorf("editor deletes the workspace: want 403, got %v %s", err, body(r))
	}
	if r, err := owner.DeleteWorkspaceWithResponse(ctx, client.WorkspaceNameBody{WorkspaceName: ws}); err != nil || r.StatusCode() != http.StatusOK {
		t.Fatalf("owner deletes the workspace: %v %s", err, body(r))
	}
	servertest.WaitFor(t, "workspace gone", 30*time.Second, func() bool {
		r, err := owner.GetWorkspaceWithResponse(ctx, ws)
		return err == nil && r.JSON404 != nil
	})
}

func login(t *testing.T, url, key string) string {
	t.Helper()
	tok, err := servertest.Login(context.Background(), url, key)
	if err != nil {
		t.Fatalf("auth: %v", err)
	}
	return tok
}

// TestServedDocumentIsTheGeneratorInput: the client is generated from
// openapi.json in this directory; the running server must serve the same
// document (its OpenAPI 3.0 form), or the client was generated from
// something else than what users get.
func TestServedDocumentIsTheGeneratorInput(t *testing.T) {
	url := servertest.Start(t, env.Config, server.Options{Namespace: "gs-client-doc-" + suffix()})
	res, err := http.Get(url + "/openapi-3.0.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /openapi-3.0.json: %d", res.StatusCode)
	}
	var served, generated map[string]any
	if err := json.NewDecoder(res.Body).Decode(&served); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &generated); err != nil {
		t.Fatal(err)
	}
	// The version is the build's; everything else must match.
	for _, doc := range []map[string]any{served, generated} {
		delete(doc["info"].(map[string]any), "version")
	}
	if d := cmp.Diff(generated, served); d != "" {
		t.Errorf("served document differs from apiserver/client/openapi.json (run make generate) (-file +served):\n%s", d)
	}
}
