package apiserver

import (
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// templateBody is a create_gpr_template body as the EGS SDK sends it.
func templateBody(name string) map[string]any {
	return map[string]any{
		"name": name, "clusterName": "worker-1", "numberOfGPUs": 1, "numberOfGPUNodes": 1,
		"memoryPerGpu": 15, "gpuShape": "T4", "instanceType": "", "exitDuration": "0d1h0m",
		"priority": 150, "enforceIdleTimeOut": false, "enableEviction": false, "requeueOnFailure": true,
	}
}

// bindingBody is a create_gpr_template_binding body as the EGS SDK sends it.
func bindingBody(ws, template string) map[string]any {
	return map[string]any{
		"workspaceName": ws, "enableAutoGPR": true,
		"clusters": []map[string]any{{"clusterName": "worker-1", "defaultTemplateName": template, "templates": []string{}}},
	}
}

func mustOK(t testing.TB, r result) result {
	t.Helper()
	if r.code != http.StatusOK {
		t.Fatalf("%d %s", r.code, r.raw)
	}
	return r
}

func keysOf(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

// TestGPRTemplatesAndBindings drives every template and binding operation
// with the EGS SDK's bodies and checks the answers have exactly the fields
// the SDK's strict parsers take.
func TestGPRTemplatesAndBindings(t *testing.T) {
	ts := newTestServer(t)
	sfx := suffix()
	ws := "tpl-" + sfx
	createWorkspace(t, ts, ws, ws+"-ns")
	tmpl := "t4-" + sfx
	t.Cleanup(func() {
		ts.do(http.MethodDelete, "/api/v1/gpr-template-binding", ts.owner, map[string]any{"gprTemplateBindingName": ws})
		ts.do(http.MethodDelete, "/api/v1/gpr-template", ts.owner, map[string]any{"gprTemplateName": tmpl})
		ts.do(http.MethodDelete, "/api/v1/gpr-template", ts.owner, map[string]any{"gprTemplateName": tmpl + "-short"})
		ts.do(http.MethodDelete, "/api/v1/slice-workspace", ts.owner, map[string]string{"workspaceName": ws})
	})

	// Templates.
	r := mustOK(t, ts.do(http.MethodPost, "/api/v1/gpr-template", ts.owner, templateBody(tmpl)))
	if got := r.data(); len(got) != 1 || got["gprTemplateName"] != tmpl {
		t.Errorf("create answers %v, want {gprTemplateName: %s} alone (CreateGprTemplateResponse takes nothing else)", got, tmpl)
	}
	if r := ts.do(http.MethodPost, "/api/v1/gpr-template", ts.owner, templateBody(tmpl)); r.code != http.StatusConflict {
		t.Errorf("second create: %d, want 409: %s", r.code, r.raw)
	}
	short := templateBody(tmpl + "-short")
	short["exitDuration"], short["enforceIdleTimeOut"], short["idleTimeOutDuration"] = "1h", true, "10m" // the SDK docs' form
	mustOK(t, ts.do(http.MethodPost, "/api/v1/gpr-template", ts.owner, short))
	got := mustOK(t, ts.do(http.MethodGet, "/api/v1/gpr-template?gprTemplateName="+tmpl+"-short", ts.owner, nil)).data()
	if got["exitDuration"] != "1h0m0s" || got["idleTimeOutDuration"] != "0h10m0s" {
		t.Errorf("durations read back %v / %v, want 1h0m0s / 0h10m0s", got["exitDuration"], got["idleTimeOutDuration"])
	}
	for name, body := range map[string]map[string]any{
		"zero duration":             {"exitDuration": "0d0h0m"},
		"seconds":                   {"exitDuration": "90s"},
		"idle enforced without one": {"enforceIdleTimeOut": true},
		"no GPUs":                   {"numberOfGPUs": 0},
	} {
		b := templateBody("bad-" + sfx)
		maps.Copy(b, body)
		if r := ts.do(http.MethodPost, "/api/v1/gpr-template", ts.owner, b); r.code != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d, want 422: %s", name, r.code, r.raw)
		}
	}
	got = mustOK(t, ts.do(http.MethodGet, "/api/v1/gpr-template?gprTemplateName="+tmpl, ts.owner, nil)).data()
	for k, want := range map[string]any{"name": tmpl, "clusterName": "worker-1", "numberOfGPUs": 1.0, "numberOfGPUNodes": 1.0,
		"memoryPerGpu": 15.0, "gpuShape": "T4", "exitDuration": "1h0m0s", "priority": 150.0, "requeueOnFailure": true, "enforceIdleTimeOut": false} {
		if got[k] != want {
			t.Errorf("get: %s = %v, want %v", k, got[k], want)
		}
	}
	if r := ts.do(http.MethodGet, "/api/v1/gpr-template?gprTemplateName=nope-"+sfx, ts.owner, nil); r.code != http.StatusNotFound {
		t.Errorf("get missing: %d, want 404", r.code)
	}
	up := templateBody(tmpl)
	up["priority"] = 180
	mustOK(t, ts.do(http.MethodPut, "/api/v1/gpr-template", ts.owner, up))
	var names []string
	for _, it := range mustOK(t, ts.do(http.MethodGet, "/api/v1/gpr-template/list", ts.owner, nil)).data()["items"].([]any) {
		item := it.(map[string]any)
		names = append(names, item["name"].(string))
		if item["name"] == tmpl && item["priority"] != 180.0 {
			t.Errorf("after update, priority %v, want 180", item["priority"])
		}
	}
	if !slices.Contains(names, tmpl) {
		t.Errorf("list %v lacks %s", names, tmpl)
	}

	// Bindings.
	if r := ts.do(http.MethodPost, "/api/v1/gpr-template-binding", ts.owner, bindingBody("nows-"+sfx, tmpl)); r.code != http.StatusNotFound {
		t.Errorf("binding of a missing workspace: %d, want 404: %s", r.code, r.raw)
	}
	bad := bindingBody(ws, "nope-"+sfx)
	if r := ts.do(http.MethodPost, "/api/v1/gpr-template-binding", ts.owner, bad); r.code != http.StatusUnprocessableEntity || !strings.Contains(r.errMsg()+r.raw, "nope-"+sfx) {
		t.Errorf("binding a missing template: %d, want 422 naming it: %s", r.code, r.raw)
	}
	bad = bindingBody(ws, tmpl)
	bad["clusters"].([]map[string]any)[0]["clusterName"] = "worker-9"
	if r := ts.do(http.MethodPost, "/api/v1/gpr-template-binding", ts.owner, bad); r.code != http.StatusUnprocessableEntity {
		t.Errorf("binding on a cluster not the workspace's: %d, want 422: %s", r.code, r.raw)
	}
	r = mustOK(t, ts.do(http.MethodPost, "/api/v1/gpr-template-binding", ts.owner, bindingBody(ws, tmpl)))
	checkBinding(t, "create", r.data(), ws, tmpl, true)
	got = mustOK(t, ts.do(http.MethodGet, "/api/v1/gpr-template-binding?gprTemplateBindingName="+ws, ts.owner, nil)).data()
	checkBinding(t, "get", got, ws, tmpl, false)
	list := mustOK(t, ts.do(http.MethodGet, "/api/v1/gpr-template-binding/list", ts.owner, nil)).data()["templateBindings"].([]any)
	found := false
	for _, b := range list {
		if b := b.(map[string]any); b["name"] == ws {
			found = true
			checkBinding(t, "list", b, ws, tmpl, false)
		}
	}
	if !found {
		t.Errorf("binding list lacks %s: %v", ws, list)
	}
	upb := bindingBody(ws, tmpl)
	upb["enableAutoGPR"] = false
	upb["clusters"].([]map[string]any)[0]["templates"] = []string{tmpl, tmpl + "-short"}
	r = mustOK(t, ts.do(http.MethodPut, "/api/v1/gpr-template-binding", ts.owner, upb))
	checkBinding(t, "update", r.data(), ws, tmpl, true)
	if r.data()["enableAutoGPR"] != false {
		t.Errorf("update: enableAutoGPR %v, want false", r.data()["enableAutoGPR"])
	}

	// A template in use: updates must keep it valid for the workspace, and
	// it cannot be deleted.
	moved := templateBody(tmpl)
	moved["clusterName"] = "worker-9"
	if r := ts.do(http.MethodPut, "/api/v1/gpr-template", ts.owner, moved); r.code != http.StatusUnprocessableEntity || !strings.Contains(r.raw, ws) {
		t.Errorf("moving a bound template to another cluster: %d, want 422 naming workspace %s: %s", r.code, ws, r.raw)
	}
	r = ts.do(http.MethodDelete, "/api/v1/gpr-template", ts.owner, map[string]any{"gprTemplateName": tmpl})
	if r.code != http.StatusConflict || !strings.Contains(r.errMsg(), `"`+ws+`"`) {
		t.Errorf("delete of a bound template: %d %q, want 409 naming binding %s", r.code, r.errMsg(), ws)
	}
	mustOK(t, ts.do(http.MethodDelete, "/api/v1/gpr-template-binding", ts.owner, map[string]any{"gprTemplateBindingName": ws}))
	if r := ts.do(http.MethodGet, "/api/v1/gpr-template-binding?gprTemplateBindingName="+ws, ts.owner, nil); r.code != http.StatusNotFound {
		t.Errorf("get deleted binding: %d, want 404", r.code)
	}
	mustOK(t, ts.do(http.MethodDelete, "/api/v1/gpr-template", ts.owner, map[string]any{"gprTemplateName": tmpl}))
	if r := ts.do(http.MethodDelete, "/api/v1/gpr-template", ts.owner, map[string]any{"gprTemplateName": tmpl}); r.code != http.StatusNotFound {
		t.Errorf("delete again: %d, want 404", r.code)
	}
}

// checkBinding checks a binding answer has exactly the fields the SDK's
// parsers take (create and update add namespace; get and list do not) and
// its one cluster names tmpl as its Ready default.
func checkBinding(t *testing.T, what string, b map[string]any, ws, tmpl string, written bool) {
	t.Helper()
	want := []string{"clusters", "enableAutoGPR", "name"}
	if written {
		want = []string{"clusters", "enableAutoGPR", "name", "namespace"}
	}
	if got := keysOf(b); !slices.Equal(got, want) {
		t.Errorf("%s: fields %v, want %v", what, got, want)
	}
	if b["name"] != ws {
		t.Errorf("%s: name %v, want %s", what, b["name"], ws)
	}
	cl, _ := b["clusters"].([]any)
	if len(cl) != 1 {
		t.Fatalf("%s: clusters %v, want one", what, b["clusters"])
	}
	c := cl[0].(map[string]any)
	if got := keysOf(c); !slices.Equal(got, []string{"clusterName", "defaultTemplateName", "defaultTemplateStatus", "templateStatus", "templates"}) {
		t.Errorf("%s: cluster fields %v", what, got)
	}
	if c["defaultTemplateName"] != tmpl || c["defaultTemplateStatus"] != "Ready" {
		t.Errorf("%s: default %v (%v), want %s (Ready)", what, c["defaultTemplateName"], c["defaultTemplateStatus"], tmpl)
	}
	if ts, _ := c["templates"].([]any); !slices.Contains(ts, any(tmpl)) {
		t.Errorf("%s: templates %v lack the default %s", what, c["templates"], tmpl)
	}
}
