package clusters_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/controller/workspace"
	"github.com/gpuspace/gpuspace/internal/clusters/provision"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/server"
	"github.com/gpuspace/gpuspace/internal/server/servertest"
	"github.com/gpuspace/gpuspace/manifests"
)

// hub is the control plane gpuspace runs in (cluster worker-1); tests
// start worker control planes of their own.
var hub *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &hub) }

const ns = auth.DefaultNamespace

func ensureNamespace(t *testing.T, ctx context.Context, c client.Client, name string) {
	t.Helper()
	err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// eventually polls cond every 100 ms for up to d.
func eventually(t *testing.T, ctx context.Context, d time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, d, true, func(context.Context) (bool, error) { return cond() })
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func clusterReady(ctx context.Context, name string) (*metav1.Condition, *v1alpha1.Cluster, error) {
	var c v1alpha1.Cluster
	if err := hub.Client.Get(ctx, client.ObjectKey{Name: name}, &c); err != nil {
		return nil, nil, err
	}
	return meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ClusterReady), &c, nil
}

// TestRegisterRefusesAndCreatesNothing: an unreachable cluster and a
// credential short of rights are refused with what failed, and nothing is
// created on the hub.
func TestRegisterRefusesAndCreatesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ensureNamespace(t, ctx, hub.Client, ns)

	unreachable := []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`)
	_, err := provision.Register(ctx, hub.Client, provision.RegisterOptions{Name: "gone", Kubeconfig: unreachable, Namespace: ns})
	if err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Fatalf("register of an unreachable cluster: %v, want cannot reach", err)
	}

	// A ServiceAccount of the hub itself with no rights.
	if err := hub.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "nobody", Namespace: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	weak := saKubeconfig(t, ctx, hub, ns, "nobody")
	_, err = provision.Register(ctx, hub.Client, provision.RegisterOptions{Name: "weak", Kubeconfig: weak, Namespace: ns})
	if err == nil || !strings.Contains(err.Error(), "patch nodes") || !strings.Contains(err.Error(), "create serviceaccounts/token") {
		t.Fatalf("register with a weak credential: %v, want the missing rights named", err)
	}
	// The hub's own cluster under another name: every node name is taken.
	if _, err := hub.AddGPUNode(ctx, testenv.GPUNode{Name: "dup-node", Product: "Tesla-T4", MemoryMiB: 15360, GPUs: 1}); err != nil {
		t.Fatal(err)
	}
	admin, err := os.ReadFile(hub.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	_, err = provision.Register(ctx, hub.Client, provision.RegisterOptions{Name: "mirror", Kubeconfig: admin, Namespace: ns})
	if err == nil || !strings.Contains(err.Error(), "dup-node") {
		t.Fatalf("register of a cluster with the hub's node names: %v, want them named", err)
	}
	for _, name := range []string{"gone", "weak", "mirror"} {
		if err := hub.Client.Get(ctx, client.ObjectKey{Name: name}, &v1alpha1.Cluster{}); !apierrors.IsNotFound(err) {
			t.Errorf("Cluster %s after a refused register: %v", name, err)
		}
		if err := hub.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: provision.SecretName(name)}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
			t.Errorf("Secret of %s after a refused register: %v", name, err)
		}
	}
	if _, err := provision.Register(ctx, hub.Client, provision.RegisterOptions{Name: v1alpha1.DefaultCluster, Kubeconfig: weak, Namespace: ns}); err == nil {
		t.Error("registering the hub's own cluster name succeeded")
	}
}

// saKubeconfig is a kubeconfig of a ServiceAccount's token on env.
func saKubeconfig(t *testing.T, ctx context.Context, env *testenv.Env, namespace, sa string) []byte {
	t.Helper()
	tr, err := env.Kube.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, sa, &authTokenRequest, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q, certificate-authority-data: %q}}]
users: [{name: u, user: {token: %q}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`, env.Config.Host, b64(env.CAData), tr.Status.Token)
}

// TestTwoClusters: a second real control plane registered with the least-
// privilege credential becomes Ready; the inventory shows both clusters; a
// GPR for cluster 2 binds a node there and nowhere else; stopping cluster
// 2's kube-apiserver makes it NotReady without releasing anything or
// placing anything new there; when it is back, the queued GPR is placed.
func TestTwoClusters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	ensureNamespace(t, ctx, hub.Client, ns)

	t0 := time.Now()
	worker, err := testenv.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = worker.Stop() })
	t.Logf("second control plane up in %s", time.Since(t0).Round(time.Millisecond))

	if _, err := hub.AddGPUNode(ctx, testenv.GPUNode{Name: "hub-h100-0", Product: "NVIDIA-H100-80GB-HBM3", MemoryMiB: 81559, GPUs: 8, InstanceType: "p5.48xlarge"}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := worker.AddGPUNode(ctx, testenv.GPUNode{Name: fmt.Sprintf("w2-a100-%d", i), Cluster: "worker-2",
			Product: "NVIDIA-A100-SXM4-40GB", MemoryMiB: 40960, GPUs: 8, InstanceType: "a2-highgpu-8g"}); err != nil {
			t.Fatal(err)
		}
	}
	kc, err := provision.Credential(ctx, worker.Config, 3600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provision.Register(ctx, hub.Client, provision.RegisterOptions{Name: "worker-2", Kubeconfig: kc, Namespace: ns}); err != nil {
		t.Fatalf("register worker-2 with the least-privilege credential: %v", err)
	}
	url := servertest.Start(t, hub.Config, server.Options{Namespace: ns, ClusterHeartbeat: 300 * time.Millisecond})

	// Register → Ready, with version and capacity.
	t1 := time.Now()
	eventually(t, ctx, 30*time.Second, "worker-2 Ready with capacity", func() (bool, error) {
		cond, c, err := clusterReady(ctx, "worker-2")
		if err != nil || cond == nil || cond.Status != metav1.ConditionTrue {
			return false, nil
		}
		return c.Status.Version != "" && len(c.Status.Capacity) == 1 && c.Status.Capacity[0].Shape == "A100" && c.Status.Capacity[0].GPUs == 16 && c.Status.Nodes == 2, nil
	})
	t.Logf("worker-2 Ready %s after the server started", time.Since(t1).Round(time.Millisecond))

	// The inventory shows both clusters.
	key, _, err := auth.CreateKey(ctx, hub.Client, ns, auth.KeyRequest{Name: "mc", Role: auth.RoleOwner}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	token, err := servertest.Login(ctx, url, key)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, 10*time.Second, "inventory of both clusters", func() (bool, error) {
		var inv struct {
			Data struct {
				Items []struct{ GPUNodeName, ClusterName, GPUShape string }
			}
		}
		if err := getJSON(ctx, url+"/api/v1/inventory/list", token, &inv); err != nil {
			return false, err
		}
		got := map[string]string{}
		for _, n := range inv.Data.Items {
			got[n.GPUNodeName] = n.ClusterName
		}
		return got["hub-h100-0"] == "worker-1" && got["w2-a100-0"] == "worker-2" && got["w2-a100-1"] == "worker-2", nil
	})

	// A workspace on both clusters; a GPR for cluster 2 binds there only.
	ws := &v1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: "mc-team"}, Spec: v1alpha1.WorkspaceSpec{
		Username: "mc", Clusters: []string{"worker-1", "worker-2"}, Namespaces: []v1alpha1.WorkspaceNamespace{{Namespace: "mc-team"}},
	}}
	if err := hub.Client.Create(ctx, ws); err != nil {
		t.Fatal(err)
	}
	// A workspace holds one provisioned GPR at a time: the second GPR is
	// another workspace's.
	ws2 := ws.DeepCopy()
	ws2.Name, ws2.ResourceVersion, ws2.Spec.Namespaces = "mc-team2", "", []v1alpha1.WorkspaceNamespace{{Namespace: "mc-team2"}}
	if err := hub.Client.Create(ctx, ws2); err != nil {
		t.Fatal(err)
	}
	// The workspace's namespace, ServiceAccount and RoleBinding in
	// worker-2 too, made with the least-privilege credential.
	eventually(t, ctx, 30*time.Second, "workspace objects in worker-2", func() (bool, error) {
		var n corev1.Namespace
		if err := worker.Client.Get(ctx, client.ObjectKey{Name: "mc-team"}, &n); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		var sa corev1.ServiceAccount
		var rb rbacv1.RoleBinding
		return n.Labels[v1alpha1.LabelWorkspace] == "mc-team" &&
			worker.Client.Get(ctx, client.ObjectKey{Namespace: "mc-team", Name: workspace.ServiceAccountName}, &sa) == nil &&
			worker.Client.Get(ctx, client.ObjectKey{Namespace: "mc-team", Name: workspace.RoleBindingName}, &rb) == nil, nil
	})
	// Its kubeconfig for worker-2 reaches worker-2 and works in the
	// workspace's namespace there only. (The workspace-user ClusterRole is
	// installed on a worker with manifests/rbac.)
	if err := workspace.EnsureClusterRole(ctx, worker.Client, worker.Client); err != nil {
		t.Fatal(err)
	}
	checkWorkspaceKubeconfig(t, ctx, url, token, "mc-team", "worker-2", worker.Config.Host, "default")
	first := newGPR("gpr-mc-first", "worker-2")
	if err := hub.Client.Create(ctx, first); err != nil {
		t.Fatal(err)
	}
	var bound string
	eventually(t, ctx, 30*time.Second, "first GPR provisioned on worker-2", func() (bool, error) {
		var g v1alpha1.GPUProvisionRequest
		if err := hub.Client.Get(ctx, client.ObjectKeyFromObject(first), &g); err != nil {
			return false, err
		}
		if !domain.IsProvisioned(&g) || len(g.Status.Nodes) != 1 {
			return false, nil
		}
		bound = g.Status.Nodes[0]
		return true, nil
	})
	if !strings.HasPrefix(bound, "w2-") {
		t.Fatalf("GPR for worker-2 got node %s", bound)
	}
	eventually(t, ctx, 15*time.Second, "node bound in worker-2", func() (bool, error) {
		var n corev1.Node
		if err := worker.Client.Get(ctx, client.ObjectKey{Name: bound}, &n); err != nil {
			return false, err
		}
		return n.Labels[v1alpha1.LabelWorkspace] == "mc-team" && n.Labels[v1alpha1.LabelGPR] == first.Name &&
			slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == v1alpha1.TaintWorkspace }), nil
	})
	var hn corev1.Node
	if err := hub.Client.Get(ctx, client.ObjectKey{Name: "hub-h100-0"}, &hn); err != nil {
		t.Fatal(err)
	}
	if hn.Labels[v1alpha1.LabelWorkspace] != "" {
		t.Errorf("hub node bound to %q", hn.Labels[v1alpha1.LabelWorkspace])
	}
	var other corev1.NodeList
	if err := worker.Client.List(ctx, &other); err != nil {
		t.Fatal(err)
	}
	for _, n := range other.Items {
		if n.Name != bound && n.Labels[v1alpha1.LabelWorkspace] != "" {
			t.Errorf("worker-2 node %s bound too", n.Name)
		}
	}

	// Partition: cluster 2's kube-apiserver stops.
	if err := worker.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	t2 := time.Now()
	eventually(t, ctx, 30*time.Second, "worker-2 NotReady", func() (bool, error) {
		cond, _, err := clusterReady(ctx, "worker-2")
		return err == nil && cond != nil && cond.Status == metav1.ConditionFalse && cond.Reason == v1alpha1.ClusterReasonUnreachable, nil
	})
	t.Logf("worker-2 NotReady %s after its kube-apiserver stopped", time.Since(t2).Round(time.Millisecond))
	var evs corev1.EventList
	eventually(t, ctx, 10*time.Second, "ClusterNotReady event", func() (bool, error) {
		if err := hub.Client.List(ctx, &evs); err != nil {
			return false, err
		}
		return slices.ContainsFunc(evs.Items, func(e corev1.Event) bool {
			return e.Reason == "ClusterNotReady" && e.InvolvedObject.Name == "worker-2"
		}), nil
	})
	second := newGPR("gpr-mc-second", "worker-2")
	second.Spec.Workspace = ws2.Name
	if err := hub.Client.Create(ctx, second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // several plan passes and heartbeats
	var g1, g2 v1alpha1.GPUProvisionRequest
	if err := hub.Client.Get(ctx, client.ObjectKeyFromObject(first), &g1); err != nil {
		t.Fatal(err)
	}
	if !domain.IsProvisioned(&g1) || !slices.Equal(g1.Status.Nodes, []string{bound}) {
		t.Fatalf("first GPR during the partition: %s on %v, want provisioned on %s", g1.Status.ProvisioningStatus, g1.Status.Nodes, bound)
	}
	if err := hub.Client.Get(ctx, client.ObjectKeyFromObject(second), &g2); err != nil {
		t.Fatal(err)
	}
	if domain.IsProvisioned(&g2) || !domain.IsQueued(&g2) {
		t.Fatalf("second GPR during the partition: %q on %v, want queued", g2.Status.ProvisioningStatus, g2.Status.Nodes)
	}

	// Back: Ready again, the queued GPR is placed on the other node, the
	// first keeps its own.
	t3 := time.Now()
	if err := worker.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, 30*time.Second, "worker-2 Ready again", func() (bool, error) {
		cond, _, err := clusterReady(ctx, "worker-2")
		return err == nil && cond != nil && cond.Status == metav1.ConditionTrue, nil
	})
	eventually(t, ctx, 30*time.Second, "second GPR provisioned after the partition", func() (bool, error) {
		if err := hub.Client.Get(ctx, client.ObjectKeyFromObject(second), &g2); err != nil {
			return false, err
		}
		return domain.IsProvisioned(&g2), nil
	})
	t.Logf("second GPR placed %s after worker-2's kube-apiserver started again", time.Since(t3).Round(time.Millisecond))
	if slices.Contains(g2.Status.Nodes, bound) || !strings.HasPrefix(g2.Status.Nodes[0], "w2-") {
		t.Fatalf("second GPR on %v; first holds %s", g2.Status.Nodes, bound)
	}
	if err := hub.Client.Get(ctx, client.ObjectKeyFromObject(first), &g1); err != nil {
		t.Fatal(err)
	}
	if !domain.IsProvisioned(&g1) || !slices.Equal(g1.Status.Nodes, []string{bound}) {
		t.Fatalf("first GPR after the partition: %s on %v", g1.Status.ProvisioningStatus, g1.Status.Nodes)
	}

	// A revoked credential: Ready=False, reason Unauthorized; nothing is
	// released.
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "gpuspace-hub"}}
	if err := worker.Client.Get(ctx, client.ObjectKeyFromObject(crb), crb); err != nil {
		t.Fatal(err)
	}
	if err := worker.Client.Delete(ctx, crb); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, 30*time.Second, "worker-2 Unauthorized", func() (bool, error) {
		cond, _, err := clusterReady(ctx, "worker-2")
		return err == nil && cond != nil && cond.Status == metav1.ConditionFalse && cond.Reason == v1alpha1.ClusterReasonUnauthorized, nil
	})
	if err := hub.Client.Get(ctx, client.ObjectKeyFromObject(first), &g1); err != nil {
		t.Fatal(err)
	}
	if !domain.IsProvisioned(&g1) || !slices.Equal(g1.Status.Nodes, []string{bound}) {
		t.Fatalf("first GPR with the credential revoked: %s on %v", g1.Status.ProvisioningStatus, g1.Status.Nodes)
	}
	crb.ResourceVersion, crb.UID = "", ""
	if err := worker.Client.Create(ctx, crb); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, 30*time.Second, "worker-2 Ready with the credential back", func() (bool, error) {
		cond, _, err := clusterReady(ctx, "worker-2")
		return err == nil && cond != nil && cond.Status == metav1.ConditionTrue, nil
	})

	// Unregister is refused while GPRs are provisioned there.
	if err := provision.Unregister(ctx, hub.Client, ns, "worker-2", false); err == nil || !strings.Contains(err.Error(), first.Name) {
		t.Fatalf("unregister with provisioned GPRs: %v", err)
	}
}

func newGPR(name, cluster string) *v1alpha1.GPUProvisionRequest {
	return &v1alpha1.GPUProvisionRequest{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.GPUProvisionRequestSpec{
		GPRName: name, Workspace: "mc-team", ClusterName: cluster, NumberOfGPUs: 8, NumberOfGPUNodes: 1,
		GPUShape: "A100", ExitDuration: "0d1h0m", Priority: 101,
	}}
}

func getJSON(ctx context.Context, url, token string, out any) error {
	return doJSON(ctx, http.MethodGet, url, token, "", out)
}

func postJSON(ctx context.Context, url, token, body string, out any) error {
	return doJSON(ctx, http.MethodPost, url, token, body, out)
}

func doJSON(ctx context.Context, method, url, token, body string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %d %s", method, url, res.StatusCode, b)
	}
	return json.Unmarshal(b, out)
}

var authTokenRequest = authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// TestCredentialManifestGrantsWorkerRights: manifests/worker/credential.yaml
// grants exactly provision.WorkerRights, no more.
func TestCredentialManifestGrantsWorkerRights(t *testing.T) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifests.WorkerCredential), 4096)
	var granted []string
	for {
		var role rbacv1.ClusterRole
		if err := dec.Decode(&role); err != nil {
			if err == io.EOF {
				break
			}
			t.Fatal(err)
		}
		if role.Kind != "ClusterRole" {
			continue
		}
		for _, r := range role.Rules {
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					resource, sub, _ := strings.Cut(res, "/")
					for _, v := range r.Verbs {
						names := r.ResourceNames
						if len(names) == 0 {
							names = []string{""}
						}
						for _, n := range names {
							granted = append(granted, provision.Right{Group: g, Resource: resource, Subresource: sub, Verb: v, Name: n}.String())
						}
					}
				}
			}
		}
	}
	var want []string
	for _, r := range provision.WorkerRights {
		want = append(want, r.String())
	}
	slices.Sort(granted)
	slices.Sort(want)
	if !slices.Equal(granted, want) {
		t.Errorf("credential.yaml grants\n  %v\nWorkerRights are\n  %v", granted, want)
	}
}

// checkWorkspaceKubeconfig gets workspace ws's kubeconfig for cluster
// from the REST API at url: it must name the server host, work in the
// workspace's namespace (named after it) and be Forbidden in others.
func checkWorkspaceKubeconfig(t *testing.T, ctx context.Context, url, token, ws, cluster, host string, others ...string) {
	t.Helper()
	var kcOut struct {
		Data struct {
			KubeConfig string `json:"kubeConfig"`
		} `json:"data"`
	}
	body := fmt.Sprintf(`{"workspaceName":%q,"clusterName":%q}`, ws, cluster)
	if err := postJSON(ctx, url+"/api/v1/slice-workspace/kube-config", token, body, &kcOut); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig([]byte(kcOut.Data.KubeConfig))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != host {
		t.Errorf("%s kubeconfig server %s, want %s", cluster, cfg.Host, host)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kube.CoreV1().Pods(ws).List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("workspace kubeconfig in its namespace on %s: %v", cluster, err)
	}
	for _, other := range others {
		if _, err := kube.CoreV1().Pods(other).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("workspace kubeconfig in namespace %s on %s: %v, want Forbidden", other, cluster, err)
		}
	}
}
