package manifests_test

import (
	"context"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartv2util "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/engine"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	"helm.sh/helm/v4/pkg/strvals"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

const chartDir = "chart/gpuspace"

// helmLabels and helmAnnotations are what the chart adds to what kustomize
// builds: Helm's usual labels, and the policy that keeps CRDs on uninstall.
var (
	helmLabels      = []string{"app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "helm.sh/chart"}
	helmAnnotations = []string{"helm.sh/resource-policy"}
)

// renderChart renders the chart as `helm template gpuspace chart/gpuspace
// -f FILE... --set SET...` does: values files merged in order, then each
// --set, coalesced with values.yaml and checked against values.schema.json,
// every template rendered. It returns the objects and NOTES.txt.
func renderChart(t *testing.T, files, sets []string) ([]*unstructured.Unstructured, string, error) {
	t.Helper()
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	vals := map[string]any{}
	for _, f := range files {
		v, err := common.ReadValuesFile(filepath.Join(chartDir, f))
		if err != nil {
			t.Fatalf("values file %s: %v", f, err)
		}
		vals = mergeValues(vals, v)
	}
	for _, s := range sets {
		if err := strvals.ParseInto(s, vals); err != nil {
			t.Fatalf("--set %s: %v", s, err)
		}
	}
	return renderValues(t, chrt, vals)
}

func renderValues(t *testing.T, chrt *chart.Chart, vals map[string]any) ([]*unstructured.Unstructured, string, error) {
	t.Helper()
	opts := common.ReleaseOptions{Name: "gpuspace", Namespace: "default", Revision: 1, IsInstall: true}
	rv, err := util.ToRenderValues(chrt, vals, opts, common.DefaultCapabilities)
	if err != nil {
		return nil, "", err
	}
	out, err := engine.Render(chrt, rv)
	if err != nil {
		return nil, "", err
	}
	var objs []*unstructured.Unstructured
	var notes string
	for _, name := range slices.Sorted(maps.Keys(out)) {
		switch {
		case strings.HasSuffix(name, "NOTES.txt"):
			notes = out[name]
			continue
		case strings.HasPrefix(filepath.Base(name), "_"):
			continue
		}
		docs := releaseutil.SplitManifests(out[name])
		for _, k := range slices.Sorted(maps.Keys(docs)) {
			var m map[string]any
			if err := yaml.Unmarshal([]byte(docs[k]), &m); err != nil {
				t.Fatalf("%s: %v\n%s", name, err, docs[k])
			}
			if len(m) == 0 {
				continue
			}
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
	return objs, notes, nil
}

// mergeValues merges src into dst as helm merges -f files: maps key by
// key, anything else replaced.
func mergeValues(dst, src map[string]any) map[string]any {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				dst[k] = mergeValues(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
	return dst
}

// withoutHelm removes what the chart adds to every object (helmLabels,
// helmAnnotations), after checking it is there: the rest must be what
// kustomize builds.
func withoutHelm(t *testing.T, objs map[string]map[string]any) {
	t.Helper()
	for k, o := range objs {
		meta := o["metadata"].(map[string]any)
		labels, _ := meta["labels"].(map[string]any)
		for _, l := range helmLabels {
			if _, ok := labels[l]; !ok {
				t.Errorf("chart's %s lacks label %s", k, l)
			}
			delete(labels, l)
		}
		annotations, _ := meta["annotations"].(map[string]any)
		if o["kind"] == "CustomResourceDefinition" && annotations["helm.sh/resource-policy"] != "keep" {
			t.Errorf("chart's %s is not kept on uninstall (helm.sh/resource-policy: keep)", k)
		}
		for _, a := range helmAnnotations {
			delete(annotations, a)
		}
		if annotations != nil && len(annotations) == 0 {
			delete(meta, "annotations")
		}
	}
}

// chartCases are the chart's values for each kustomize base and overlay:
// rendering them must give the same objects.
var chartCases = []struct {
	name      string
	kustomize string
	files     []string
	sets      []string
}{
	{name: "single cluster", kustomize: "base"},
	{name: "hub", kustomize: "hub", sets: []string{"worker.enabled=false"}},
	{name: "worker", kustomize: "worker", sets: []string{"hub.enabled=false"}},
	{name: "kind", kustomize: "overlays/kind", sets: []string{
		"image.registry=gpuspace,image.tag=dev,image.pullPolicy=IfNotPresent", "worker.devicePlugin.nvml=mock:dgxh100"}},
	{name: "production", kustomize: "overlays/production", files: []string{"values-production.yaml"}},
	{name: "production hub", kustomize: "overlays/production-hub", files: []string{"values-production.yaml"}, sets: []string{"worker.enabled=false"}},
	{name: "production worker", kustomize: "overlays/production-worker", files: []string{"values-production.yaml"}, sets: []string{"hub.enabled=false"}},
}

// TestChartMatchesKustomize: the Helm chart, rendered with helm's own
// library for hub values, worker values and both (and the kind and
// production equivalents), gives the objects the corresponding kustomize
// build gives, field for field (RBAC rules, args, images, the scheduler's
// hashed ConfigMap name), but for Helm's labels. So the chart and the
// kustomize bases cannot drift apart: change one, and this fails until the
// other follows (the chart's copies of manifests: `make generate`).
func TestChartMatchesKustomize(t *testing.T) {
	for _, tc := range chartCases {
		t.Run(tc.name, func(t *testing.T) {
			objs, _, err := renderChart(t, tc.files, tc.sets)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			got := byID(t, objs)
			withoutHelm(t, got)
			want := byID(t, build(t, tc.kustomize))
			for _, k := range slices.Sorted(maps.Keys(want)) {
				if _, ok := got[k]; !ok {
					t.Errorf("chart lacks %s of kustomize build %s", k, tc.kustomize)
					continue
				}
				if diff := cmp.Diff(want[k], got[k]); diff != "" {
					t.Errorf("%s: chart differs from kustomize build %s (-kustomize +chart; run make generate if a manifest changed):\n%s", k, tc.kustomize, diff)
				}
			}
			for _, k := range slices.Sorted(maps.Keys(got)) {
				if _, ok := want[k]; !ok {
					t.Errorf("chart has %s, kustomize build %s has not", k, tc.kustomize)
				}
			}
		})
	}
}

// TestChartAppliesToRealAPIServer server-side-applies (dry run) every
// rendering of the chart to a kube-apiserver on which manifests/base is
// applied, as the kustomize overlays are: Helm's labels and annotations
// must be valid too.
func TestChartAppliesToRealAPIServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	apply(ctx, t, build(t, "base"), false)
	for _, tc := range chartCases {
		t.Run(tc.name, func(t *testing.T) {
			objs, _, err := renderChart(t, tc.files, tc.sets)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			apply(ctx, t, objs, true)
		})
	}
}

// TestChartValues: values the chart refuses, and what it tells the user.
func TestChartValues(t *testing.T) {
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	// The constraint helm install checks against the cluster's version.
	if !chartv2util.IsCompatibleRange(chrt.Metadata.KubeVersion, "v1.37.1") {
		t.Errorf("kubeVersion %q refuses Kubernetes 1.37.1", chrt.Metadata.KubeVersion)
	}
	for _, tc := range []struct {
		set, want string
	}{
		// A misspelt key is refused by values.schema.json, not ignored.
		{"hub.enable=false", "additional properties 'enable' not allowed"},
		{"hub.enabled=false,worker.enabled=false", "nothing to install"},
		{"clusterName=Worker_1", "clusterName"},
	} {
		_, _, err := renderChart(t, nil, []string{tc.set})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--set %s: error %v, want one saying %q", tc.set, err, tc.want)
		}
	}

	// A worker's notes say how to register it under its name.
	_, notes, err := renderChart(t, nil, []string{"hub.enabled=false", "clusterName=gpu-east"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "gpuspace cluster register gpu-east --kubeconfig gpu-east.kubeconfig"; !strings.Contains(notes, want) {
		t.Errorf("worker notes:\n%s\nwant them to say %q", notes, want)
	}
	// The hub's cluster name reaches gpuspace serve.
	objs, _, err := renderChart(t, nil, []string{"clusterName=gpu-west"})
	if err != nil {
		t.Fatal(err)
	}
	hub := byID(t, objs)["Deployment gpuspace-system/gpuspace"]
	containers, _, _ := unstructured.NestedSlice(hub, "spec", "template", "spec", "containers")
	var env []any
	if len(containers) > 0 {
		env, _, _ = unstructured.NestedSlice(containers[0].(map[string]any), "env")
	}
	if !slices.ContainsFunc(env, func(e any) bool {
		m := e.(map[string]any)
		return m["name"] == "GPUSPACE_CLUSTER_NAME" && m["value"] == "gpu-west"
	}) {
		t.Errorf("gpuspace env %v, want GPUSPACE_CLUSTER_NAME=gpu-west", env)
	}
	testChartOIDC(t)
}

// TestChartLint: `helm lint` of the chart (helm v4's linter: Chart.yaml,
// values against values.schema.json, every template rendered and parsed,
// for the hub and for a worker) reports nothing, not even an INFO.
func TestChartLint(t *testing.T) {
	kube, err := common.ParseKubeVersion("v1.37.1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		vals map[string]any
	}{
		{"hub", nil},
		{"worker", map[string]any{"hub": map[string]any{"enabled": false}, "clusterName": "gpu-east"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := lint.RunAll(chartDir, tc.vals, "gpuspace-system", lint.WithKubeVersion(kube))
			for _, m := range res.Messages {
				t.Errorf("helm lint: %s", m)
			}
			if res.HighestSeverity > support.InfoSev {
				t.Errorf("helm lint: highest severity %d", res.HighestSeverity)
			}
		})
	}
}
