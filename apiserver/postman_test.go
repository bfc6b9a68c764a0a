package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/internal/dev/reference"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
)

// The public EGS Postman collection (kubeslice-ent/egs-installation,
// egs-apis), verbatim, in the reference material beside the clone (see
// internal/dev/reference).
const collectionFile = "egs/EGS_Core_APIs.postman_collection.json"

type pmItem struct {
	Name    string   `json:"name"`
	Item    []pmItem `json:"item"`
	Request struct {
		Method string `json:"method"`
		URL    struct {
			Raw string `json:"raw"`
		} `json:"url"`
		Body struct {
			Raw string `json:"raw"`
		} `json:"body"`
	} `json:"request"`
	Response []struct {
		Name string `json:"name"`
		Code int    `json:"code"`
		Body string `json:"body"`
	} `json:"response"`
}

func loadCollection(t testing.TB) map[string]pmItem {
	t.Helper()
	b, err := os.ReadFile(reference.Path(t, collectionFile))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Item []pmItem `json:"item"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	out := map[string]pmItem{}
	var walk func([]pmItem)
	walk = func(items []pmItem) {
		for _, it := range items {
			if len(it.Item) > 0 {
				walk(it.Item)
				continue
			}
			out[it.Name] = it
		}
	}
	walk(c.Item)
	return out
}

// shapeDiff lists where got lacks what the example has: every key of an
// example object must be in got with a value of the same JSON type (an
// example null accepts anything), recursively; arrays compare first
// elements.
func shapeDiff(example, got any, path string) []string {
	switch ex := example.(type) {
	case nil:
		return nil
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want an object, got %T", path, got)}
		}
		var out []string
		for k, v := range ex {
			gv, ok := g[k]
			if !ok {
				out = append(out, fmt.Sprintf("%s.%s: missing", path, k))
				continue
			}
			out = append(out, shapeDiff(v, gv, path+"."+k)...)
		}
		sort.Strings(out)
		return out
	case []any:
		g, ok := got.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want an array, got %T", path, got)}
		}
		if len(ex) > 0 && len(g) > 0 {
			return shapeDiff(ex[0], g[0], path+"[0]")
		}
		return nil
	default:
		if fmt.Sprintf("%T", ex) != fmt.Sprintf("%T", got) {
			return []string{fmt.Sprintf("%s: want %T, got %T (%v)", path, ex, got, got)}
		}
		return nil
	}
}

// TestPostmanCollection sends every request of the EGS Postman collection,
// with its example bodies, in the collection's order and without pauses,
// and checks each documented answer: status code and the shape of the
// example body. Two documented 500s answer 409 here on
// purpose (reference README: state conflicts are 409 in gpuspace).
func TestPostmanCollection(t *testing.T) {
	items := loadCollection(t)
	ts := newTestServer(t)
	ctx := context.Background()

	// The collection's GPR requests name workspace "pink", instance type
	// n1-highcpu-2, Tesla-T4 with 15 GB, cluster worker-1.
	const ws = "pink"
	addNode(t, testenv.GPUNode{Name: "gke-t4-" + suffix(), InstanceType: "n1-highcpu-2", Product: "Tesla-T4", MemoryMiB: 15360, GPUs: 1, ProviderID: "gce://p/us-east1-b/n1", Region: "us-east1"})
	t.Cleanup(func() {
		ts.do(http.MethodDelete, "/api/v1/slice-workspace", ts.owner, map[string]string{"workspaceName": ws})
		_ = env.Kube.CoreV1().Namespaces().Delete(ctx, "namespace-3", metav1.DeleteOptions{})
	})

	vars := map[string]string{"host": ts.http.URL, "apiKey": ts.ownKey, "authToken": ts.owner, "workspaceName": ws}
	var gprID, provisionedID string

	type step struct {
		request, example string
		// change edits the request: body (parsed JSON) and URL.
		change func(body map[string]any, url string) string
		// code overrides the example's status code (the 409 improvements).
		code  int
		after func(r result)
	}
	expired := ts.createKey(auth.KeyRequest{Name: "expiring", Role: auth.RoleOwner, ValidUntil: time.Now().Add(time.Second)})
	damaged := ts.createKey(auth.KeyRequest{Name: "damaged", Role: auth.RoleOwner})
	damageKey(t, ts.ns, damaged)
	waitFor(t, "key to expire", func() bool {
		return ts.do(http.MethodPost, "/api/v1/auth", "", map[string]string{"apiKey": expired}).code == http.StatusUnauthorized
	})

	setBody := func(k string, v any) func(map[string]any, string) string {
		return func(b map[string]any, u string) string { b[k] = v; return u }
	}
	steps := []step{
		{request: "Authentication", example: "Success"},
		{request: "Authentication", example: "Incorrect Key", change: setBody("apiKey", "ff37ed55-1e76-4117-8eb4-f3f1ee688a7c")},
		{request: "Authentication", example: "ApiKey Expired", change: setBody("apiKey", expired)},
		{request: "Authentication", example: "ApiKey Secret Malformed", change: setBody("apiKey", damaged)},
		// The workspace controller's part takes a moment, as in a real
		// system; the requests go on meanwhile (no pauses), so the
		// kube-config below comes while the workspace is not ready yet.
		{request: "Create Workspace", example: "Success", after: func(result) { readyWorkspaceAfter(t, ws, time.Second) }},
		{request: "Create Workspace", example: "Already Exists"},
		{request: "Create Workspace", example: "Bad Request", change: func(b map[string]any, u string) string { delete(b, "clusters"); return u }},
		{request: "List Workspaces", example: "Success"},
		{request: "Generate KubeConfig for Workspace", example: "Success"},
		{request: "List Inventory", example: "Success"},
		{request: "List Inventory by Slice Name", example: "Not Found", change: func(_ map[string]any, u string) string {
			return strings.Replace(u, "sliceName="+ws, "sliceName=evening-x", 1)
		}},
		{request: "Create GPR", example: "Success", after: func(r result) { gprID = r.data()["gprId"].(string); vars["gprId"] = gprID }},
		{request: "Create GPR", example: "Bad Request", change: setBody("exitDuration", "")},
		{request: "Get GPR", example: "Success"},
		{request: "Get GPR", example: "Not Found", change: func(_ map[string]any, u string) string { return u + "-x" }},
		{request: "List GPRs by Slice", example: "Success"},
		{request: "List GPRs by Slice", example: "Not Found", change: func(_ map[string]any, u string) string {
			return strings.Replace(u, "sliceName="+ws, "sliceName=evening-x", 1)
		}},
		{request: "Update GPR", example: "Unable to Early Release", code: http.StatusConflict},
		{request: "Update GPR", example: "Update Priority", change: func(b map[string]any, u string) string { delete(b, "earlyRelease"); delete(b, "gprName"); return u }},
		{request: "Update GPR", example: "Update GPR Name", change: func(b map[string]any, u string) string { delete(b, "earlyRelease"); delete(b, "priority"); return u }},
		{request: "Delete GPR", example: "Success"},
		// A second GPR, provisioned: it can be early-released, not deleted.
		{request: "Create GPR", example: "Success", after: func(r result) {
			provisionedID = r.data()["gprId"].(string)
			vars["gprId"] = provisionedID
			nodes, _ := env.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			provision(t, provisionedID, firstGPUNode(nodes.Items))
		}},
		{request: "List Inventory by Slice Name", example: "Success"},
		{request: "Delete GPR", example: "Cannot Delete", code: http.StatusConflict},
		{request: "Update GPR", example: "Successful Early Release"},
		{request: "Delete Workspace", example: "Success"},
	}
	for i, st := range steps {
		it, ok := items[st.request]
		if !ok {
			t.Fatalf("no request %q in the collection", st.request)
		}
		var ex *struct {
			Name string `json:"name"`
			Code int    `json:"code"`
			Body string `json:"body"`
		}
		for j := range it.Response {
			if it.Response[j].Name == st.example {
				ex = &it.Response[j]
			}
		}
		if ex == nil {
			t.Fatalf("no example %q of %q", st.example, st.request)
		}
		url := substitute(it.Request.URL.Raw, vars)
		var body any
		if raw := substitute(it.Request.Body.Raw, vars); raw != "" {
			var m map[string]any
			if err := json.Unmarshal([]byte(raw), &m); err != nil {
				t.Fatalf("%s: body: %v", st.request, err)
			}
			body = m
		}
		if st.change != nil {
			m, _ := body.(map[string]any)
			url = st.change(m, url)
		}
		path := strings.TrimPrefix(url, ts.http.URL)
		token := ts.owner
		if st.request == "Authentication" {
			token = ""
		}
		r := ts.do(it.Request.Method, path, token, body)
		want := ex.Code
		if st.code != 0 {
			want = st.code
		}
		name := fmt.Sprintf("%d %s / %s", i, st.request, st.example)
		if r.code != want {
			t.Errorf("%s: %s %s: status %d, want %d: %s", name, it.Request.Method, path, r.code, want, r.raw)
			continue
		}
		var exBody any
		if err := json.Unmarshal([]byte(ex.Body), &exBody); err != nil {
			t.Fatalf("%s: example body: %v", name, err)
		}
		exMap := exBody.(map[string]any)
		// Error examples: EGS's own status strings ("UNKNOWN") are not the
		// shape; statusCode, status, message, data, error{...} are.
		for _, d := range shapeDiff(exMap, r.body, "") {
			t.Errorf("%s: answer lacks the example's shape: %s", name, d)
		}
		if got := r.body["statusCode"]; got != float64(want) {
			t.Errorf("%s: statusCode %v, want %d", name, got, want)
		}
		if want >= 400 && r.errKey() == "" {
			t.Errorf("%s: error without errorKey: %s", name, r.raw)
		}
		if st.after != nil {
			st.after(r)
		}
	}
}

func firstGPUNode(nodes []corev1.Node) string {
	for _, n := range nodes {
		if strings.HasPrefix(n.Name, "gke-t4-") {
			return n.Name
		}
	}
	return ""
}

func substitute(s string, vars map[string]string) string {
	for k, v := range vars {
		s = strings.ReplaceAll(s, "{{"+k+"}}", v)
	}
	return s
}

// damageKey breaks an API key's record (unknown role), as a hand-edited or
// half-migrated Secret would be.
func damageKey(t *testing.T, ns, key string) {
	t.Helper()
	id := strings.SplitN(strings.TrimPrefix(key, "gps_"), "_", 2)[0]
	ctx := context.Background()
	sec, err := env.Kube.CoreV1().Secrets(ns).Get(ctx, auth.SecretPrefix+id, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sec.Data["role"] = []byte("Admiral")
	if _, err := env.Kube.CoreV1().Secrets(ns).Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}
