package manifests_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/gpuspace/gpuspace/internal/testenv"
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

// TestBaseAppliesToRealAPIServer applies manifests/base for real and the
// overlays as server-side dry runs: every object must be accepted by
// kube-apiserver 1.37's validation, RBAC escalation checks included.
func TestBaseAppliesToRealAPIServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
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

	for _, overlay := range []string{"kind", "production"} {
		t.Run(overlay, func(t *testing.T) {
			objs := build(t, filepath.Join("overlays", overlay))
			if len(objs) != len(base) {
				t.Errorf("overlay %s has %d objects, base %d", overlay, len(objs), len(base))
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
					if overlay == "production" && (strings.HasSuffix(img, ":latest") || !strings.Contains(filepath.Base(img), ":")) {
						t.Errorf("%s/%s image %s: production must pin a version", o.GetKind(), o.GetName(), img)
					}
				}
			}
			apply(ctx, t, objs, true)
		})
	}
}
