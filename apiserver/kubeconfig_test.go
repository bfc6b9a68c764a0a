package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
)

// TestKubeconfigRBAC gets a workspace kubeconfig from the API in each of
// its three wire forms and uses it against the real apiserver: pods can be
// created in each workspace namespace (one context per namespace), and
// other namespaces and cluster-scoped writes are Forbidden.
func TestKubeconfigRBAC(t *testing.T) {
	ts := newTestServer(t)
	ctx := context.Background()
	sfx := suffix()
	ws := "kc-" + sfx
	nsA, nsB, other := "kc-a-"+sfx, "kc-b-"+sfx, "kc-other-"+sfx
	createWorkspace(t, ts, ws, nsA, nsB)
	t.Cleanup(func() {
		ts.do(http.MethodDelete, "/api/v1/slice-workspace", ts.owner, map[string]string{"workspaceName": ws})
		for _, ns := range []string{nsA, nsB, other} {
			_ = env.Kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
		}
	})

	// Asked before the workspace controller has made the ServiceAccount
	// (EGS clients ask right after create), kube-config waits for it.
	readyWorkspaceAfter(t, ws, 300*time.Millisecond)
	r := ts.do(http.MethodPost, "/api/v1/slice-workspace/kube-config", ts.owner, map[string]string{"workspaceName": ws})
	if r.code != http.StatusOK {
		t.Fatalf("kubeconfig while the workspace gets ready: %d %s, want 200", r.code, r.raw)
	}
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: other}})

	forms := map[string]func() result{
		"GET with a JSON body (spec)": func() result {
			return ts.do(http.MethodGet, "/api/v1/slice-workspace/kube-config", ts.owner, map[string]string{"workspaceName": ws, "clusterName": "worker-1"})
		},
		"GET with query parameters": func() result {
			return ts.do(http.MethodGet, "/api/v1/slice-workspace/kube-config?"+url.Values{"workspaceName": {ws}, "clusterName": {"worker-1"}}.Encode(), ts.owner, nil)
		},
		"POST (Postman collection)": func() result {
			return ts.do(http.MethodPost, "/api/v1/slice-workspace/kube-config", ts.owner, map[string]string{"workspaceName": ws})
		},
	}
	for form, get := range forms {
		t.Run(form, func(t *testing.T) {
			r := get()
			if r.code != http.StatusOK {
				t.Fatalf("%d %s", r.code, r.raw)
			}
			raw := r.data()["kubeConfig"].(string)
			cfg, err := clientcmd.Load([]byte(raw))
			if err != nil {
				t.Fatalf("kubeconfig does not load: %v\n%s", err, raw)
			}
			var contexts []string
			for name := range cfg.Contexts {
				contexts = append(contexts, name)
			}
			sort.Strings(contexts)
			want := []string{ws + "/" + nsA + "@worker-1", ws + "/" + nsB + "@worker-1"}
			if len(contexts) != 2 || contexts[0] != want[0] || contexts[1] != want[1] {
				t.Fatalf("contexts %v, want %v", contexts, want)
			}
			for _, ns := range []string{nsA, nsB} {
				cs := clientFor(t, raw, ws+"/"+ns+"@worker-1")
				pod := testPod()
				if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
					t.Errorf("create a pod in workspace namespace %s: %v", ns, err)
				}
				if _, err := cs.CoreV1().Pods(other).Create(ctx, testPod(), metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
					t.Errorf("create a pod in namespace %s outside the workspace: %v, want Forbidden", other, err)
				}
				if _, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
					t.Errorf("list pods in default: %v, want Forbidden", err)
				}
				_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kc-evil-" + sfx}}, metav1.CreateOptions{})
				if !apierrors.IsForbidden(err) {
					t.Errorf("create a namespace: %v, want Forbidden", err)
				}
				if err := cs.CoreV1().Nodes().Delete(ctx, "any", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
					t.Errorf("delete a node: %v, want Forbidden", err)
				}
			}
		})
	}

	// A workspace on two clusters needs clusterName, as EGS says.
	addNode(t, testenv.GPUNode{Name: "kc-w2-" + sfx, Cluster: "worker-2", Product: "Tesla-T4", MemoryMiB: 15360, GPUs: 1})
	waitFor(t, "cluster worker-2 known", func() bool {
		c, _ := ts.srv.knownClusters(ctx)
		return len(c) == 2
	})
	two := "kc2-" + sfx
	r = ts.do(http.MethodPost, "/api/v1/slice-workspace", ts.owner, map[string]any{
		"workspaceName": two, "clusters": []string{"worker-1", "worker-2"}, "namespaces": []string{two}, "username": "u"})
	if r.code != http.StatusOK {
		t.Fatalf("create two-cluster workspace: %d %s", r.code, r.raw)
	}
	t.Cleanup(func() {
		ts.do(http.MethodDelete, "/api/v1/slice-workspace", ts.owner, map[string]string{"workspaceName": two})
	})
	r = ts.do(http.MethodGet, "/api/v1/slice-workspace/kube-config", ts.owner, map[string]string{"workspaceName": two})
	if r.code != http.StatusBadRequest || r.body["status"] != "UPSTREAM_REQUEST_ERROR" || r.errMsg() != "Worker name is required as a query parameter" {
		t.Errorf("kubeconfig without clusterName for two clusters: %d %s, want EGS's 400", r.code, r.raw)
	}
}

// TestKubeconfigNotReady: a workspace that does not become usable within
// the wait gets 409 WORKSPACE_NOT_READY saying what is missing and why,
// instead of a useless kubeconfig.
func TestKubeconfigNotReady(t *testing.T) {
	const wait = 500 * time.Millisecond
	ts := newTestServer(t, WithKubeconfigReadyWait(wait))
	ws := "kcnr-" + suffix()
	createWorkspace(t, ts, ws, ws)
	t.Cleanup(func() {
		ts.do(http.MethodDelete, "/api/v1/slice-workspace", ts.owner, map[string]string{"workspaceName": ws})
	})
	start := time.Now()
	r := ts.do(http.MethodGet, "/api/v1/slice-workspace/kube-config?workspaceName="+ws, ts.owner, nil)
	if took := time.Since(start); took < wait {
		t.Errorf("answered after %s, before the %s wait", took, wait)
	}
	want := fmt.Sprintf("workspace %q is not ready after 500ms: no ServiceAccount yet; the workspace controller has not reported on it yet", ws)
	if r.code != http.StatusConflict || r.errKey() != "WORKSPACE_NOT_READY" || !strings.HasPrefix(r.errMsg(), want) {
		t.Fatalf("kubeconfig of a workspace never ready: %d %s, want 409 WORKSPACE_NOT_READY %q...", r.code, r.raw, want)
	}

	// The controller's own reason, when it has one.
	if err := setWorkspaceReady(context.Background(), ws); err != nil {
		t.Fatal(err)
	}
	setWorkspaceCondition(t, ws, metav1.ConditionFalse, "namespace kcnr is being deleted")
	if err := env.Kube.CoreV1().ServiceAccounts(ws).Delete(context.Background(), workspaceSA, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	r = ts.do(http.MethodPost, "/api/v1/slice-workspace/kube-config", ts.owner, map[string]string{"workspaceName": ws})
	want = fmt.Sprintf("workspace %q is not ready after 500ms: no ServiceAccount %s in namespace %s; the workspace controller reports: namespace kcnr is being deleted", ws, workspaceSA, ws)
	if r.code != http.StatusConflict || !strings.HasPrefix(r.errMsg(), want) {
		t.Errorf("kubeconfig with the ServiceAccount gone: %d %s, want 409 %q...", r.code, r.raw, want)
	}
}

// setWorkspaceCondition sets ws's Ready condition, as the controller
// reports a problem.
func setWorkspaceCondition(t *testing.T, name string, status metav1.ConditionStatus, msg string) {
	t.Helper()
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var ws v1alpha1.Workspace
		if err := env.Client.Get(ctx, types.NamespacedName{Name: name}, &ws); err != nil {
			return err
		}
		meta.SetStatusCondition(&ws.Status.Conditions, metav1.Condition{Type: v1alpha1.WorkspaceReady, Status: status, Reason: "NotReady", Message: msg})
		return env.Client.Status().Update(ctx, &ws)
	})
	if err != nil {
		t.Fatalf("workspace %s condition: %v", name, err)
	}
}

func clientFor(t *testing.T, kubeconfig, context string) kubernetes.Interface {
	t.Helper()
	cc, err := clientcmd.NewClientConfigFromBytes([]byte(kubeconfig))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := cc.RawConfig()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := clientcmd.NewNonInteractiveClientConfig(raw, context, &clientcmd.ConfigOverrides{}, nil).ClientConfig()
	if err != nil {
		t.Fatalf("context %s: %v", context, err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func testPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "kc-"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}},
	}
}
