package manifests_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/gpuspace/gpuspace/internal/dev/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// build runs kustomize on dir, as `kubectl apply -k dir` would.
func build(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var objs []*unstructured.Unstructured
	for _, r := range res.Resources() {
		m, err := r.Map()
		if err != nil {
			t.Fatalf("%s: %v", r.CurId(), err)
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
	return objs
}

// apply server-side-applies objs in dependency order (namespaces and CRDs
// first) and returns the first error per object.
func apply(ctx context.Context, t *testing.T, objs []*unstructured.Unstructured, dryRun bool) {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	rank := func(o *unstructured.Unstructured) int {
		switch o.GetKind() {
		case "Namespace", "CustomResourceDefinition":
			return 0
		case "ServiceAccount", "ClusterRole", "Role":
			return 1
		default:
			return 2
		}
	}
	for pass := 0; pass <= 2; pass++ {
		for _, o := range objs {
			if rank(o) != pass {
				continue
			}
			gvk := o.GroupVersionKind()
			mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				t.Errorf("%s %s: no such API on kube-apiserver 1.37: %v", gvk, o.GetName(), err)
				continue
			}
			var ri dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
			if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
				ri = dyn.Resource(mapping.Resource).Namespace(o.GetNamespace())
			}
			opts := metav1.ApplyOptions{FieldManager: "gpuspace-manifests-test", Force: true}
			if dryRun {
				opts.DryRun = []string{metav1.DryRunAll}
			}
			if _, err := ri.Apply(ctx, o.GetName(), o, opts); err != nil {
				t.Errorf("apply %s %s/%s: %v", gvk.Kind, o.GetNamespace(), o.GetName(), err)
			}
		}
		mapper.Reset() // CRDs applied in pass 0 become mappable
	}
}

func kinds(objs []*unstructured.Unstructured) map[string]int {
	m := map[string]int{}
	for _, o := range objs {
		m[o.GetKind()]++
	}
	return m
}

// id names an object as kustomize and kubectl do: kind, namespace, name.
func id(o *unstructured.Unstructured) string {
	return o.GetKind() + " " + o.GetNamespace() + "/" + o.GetName()
}

// byID indexes objs by id, as plain JSON values (kustomize yields int64s,
// YAML decoding float64s: JSON compares them as the apiserver would).
func byID(t *testing.T, objs []*unstructured.Unstructured) map[string]map[string]any {
	t.Helper()
	m := map[string]map[string]any{}
	for _, o := range objs {
		b, err := json.Marshal(o.Object)
		if err != nil {
			t.Fatalf("%s: %v", id(o), err)
		}
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		if _, dup := m[id(o)]; dup {
			t.Errorf("%s twice", id(o))
		}
		m[id(o)] = v
	}
	return m
}

// The hub's least-privilege credential in a worker (worker/credential.yaml,
// less its Namespace): in manifests/worker only, never in the hub's own
// cluster, where the hub uses its own ServiceAccount.
var credential = []string{
	"ServiceAccount gpuspace-system/gpuspace-hub", "Secret gpuspace-system/gpuspace-hub-token",
	"ClusterRole /gpuspace-hub", "ClusterRoleBinding /gpuspace-hub",
}

// TestBasesCompose: the single-cluster base is exactly the hub plus the
// worker less the hub credential, object for object; the hub has no
// scheduler or device plugin, the worker no control plane and only the CRDs
// its scheduler reads.
func TestBasesCompose(t *testing.T) {
	hub, worker, base := byID(t, build(t, "hub")), byID(t, build(t, "worker")), byID(t, build(t, "base"))
	want := map[string]map[string]any{}
	for k, v := range worker {
		if !slices.Contains(credential, k) {
			want[k] = v
		}
	}
	for k, v := range hub {
		if w, ok := want[k]; ok {
			if diff := cmp.Diff(v, w); diff != "" {
				t.Errorf("%s differs between hub and worker (-hub +worker):\n%s", k, diff)
			}
		}
		want[k] = v
	}
	if diff := cmp.Diff(want, base); diff != "" {
		t.Errorf("base is not hub + worker - credential (-hub+worker +base):\n%s", diff)
	}
	for _, k := range credential {
		if _, ok := worker[k]; !ok {
			t.Errorf("worker lacks %s (worker/credential.yaml)", k)
		}
	}
	for _, k := range []string{"Deployment gpuspace-system/gpuspace-scheduler", "DaemonSet gpuspace-device-plugin/gpuspace-device-plugin",
		"ValidatingAdmissionPolicy /gpuspace-workspace-node-binding", "ValidatingAdmissionPolicy /gpuspace-device-plugin-own-node"} {
		if _, ok := hub[k]; ok {
			t.Errorf("hub has %s, a worker part", k)
		}
		if _, ok := worker[k]; !ok {
			t.Errorf("worker lacks %s", k)
		}
	}
	for _, k := range []string{"Deployment gpuspace-system/gpuspace", "ClusterRole /gpuspace", "Role gpuspace-system/gpuspace"} {
		if _, ok := worker[k]; ok {
			t.Errorf("worker has %s, a hub part", k)
		}
		if _, ok := hub[k]; !ok {
			t.Errorf("hub lacks %s", k)
		}
	}
	var workerCRDs []string
	for k := range worker {
		if name, ok := strings.CutPrefix(k, "CustomResourceDefinition /"); ok {
			workerCRDs = append(workerCRDs, name)
		}
	}
	slices.Sort(workerCRDs)
	if want := []string{"gpuprovisionrequests.gpuspace.io"}; !slices.Equal(workerCRDs, want) {
		t.Errorf("worker CRDs %v, want %v (what gpuspace-scheduler reads)", workerCRDs, want)
	}
	ns := worker["Namespace /gpuspace-system"]
	if got, _, _ := unstructured.NestedString(ns, "metadata", "labels", "pod-security.kubernetes.io/enforce"); got != "restricted" {
		t.Errorf("worker's gpuspace-system Pod Security level %q, want restricted as on the hub", got)
	}
}

// TestBaseAppliesToRealAPIServer applies manifests/base for real and the
// hub, worker and overlays as server-side dry runs: every object must be
// accepted by kube-apiserver 1.37's validation, RBAC escalation checks
// included.
func TestBaseAppliesToRealAPIServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	base := build(t, "base")
	got := kinds(base)
	// What a working installation cannot do without.
	for kind, min := range map[string]int{
		"CustomResourceDefinition": 2, "Namespace": 1, "Deployment": 2, "DaemonSet": 1,
		"ServiceAccount": 3, "ClusterRole": 3, "ClusterRoleBinding": 3,
		"ValidatingAdmissionPolicy": 1, "ValidatingAdmissionPolicyBinding": 1,
	} {
		if got[kind] < min {
			t.Errorf("base has %d %s, want at least %d (kinds: %v)", got[kind], kind, min, got)
		}
	}
	apply(ctx, t, base, false)

	for _, dir := range []string{"hub", "worker"} {
		t.Run(dir, func(t *testing.T) { apply(ctx, t, build(t, dir), true) })
	}
	for overlay, of := range map[string]string{"kind": "base", "production": "base", "production-hub": "hub", "production-worker": "worker"} {
		t.Run(overlay, func(t *testing.T) {
			objs := build(t, filepath.Join("overlays", overlay))
			if n := len(build(t, of)); len(objs) != n {
				t.Errorf("overlay %s has %d objects, %s %d", overlay, len(objs), of, n)
			}
			for _, o := range objs {
				if o.GetKind() != "Deployment" && o.GetKind() != "DaemonSet" {
					continue
				}
				// NoCopy: kustomize yields plain ints, which DeepCopyJSON rejects.
				field, _, _ := unstructured.NestedFieldNoCopy(o.Object, "spec", "template", "spec", "containers")
				containers, _ := field.([]any)
				for _, c := range containers {
					img := c.(map[string]any)["image"].(string)
					if overlay == "kind" && filepath.Dir(img) != "gpuspace" {
						t.Errorf("%s/%s image %s: kind overlay must use locally loaded gpuspace/* images", o.GetKind(), o.GetName(), img)
					}
					if strings.HasPrefix(overlay, "production") && (strings.HasSuffix(img, ":latest") || !strings.Contains(filepath.Base(img), ":")) {
						t.Errorf("%s/%s image %s: production must pin a version", o.GetKind(), o.GetName(), img)
					}
				}
			}
			apply(ctx, t, objs, true)
		})
	}
}
