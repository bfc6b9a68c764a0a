"""Drives gpuspace with the public EGS Python SDK, unchanged, and checks what
the SDK returns. Run by TestEGSPythonSDK (egssdk_test.go) with PYTHONPATH on
the SDK in the reference material (../shared/reference/egs-sdk beside the
clone, see internal/dev/reference); the test passes the system under test
in the environment:

  EGS_ENDPOINT     the API, e.g. http://127.0.0.1:8080
  EGS_API_KEY      an Owner API key
  SDK_CLUSTER      a cluster whose GPU nodes no one else uses
  SDK_NODES        those nodes, comma-separated (1 GPU each)
  SDK_INSTANCE_TYPE, SDK_GPU_SHAPE, SDK_MEMORY_GB  what the nodes are
  SDK_SUFFIX       makes names unique to this run
  SDK_OUT          a directory for what the Go test checks afterwards

Steps run in the order they are defined, share `state`, and print one line
each; then the @teardown steps run (also after a failure, to free the
nodes), which check the SDK's release and delete functions too. To cover
more SDK functions, add @step functions where the comment "more SDK
functions" says, above main().
"""

import base64
import datetime
import http.client
import json
import os
import re
import ssl
import sys
import time
import traceback
import urllib.parse

import egs
from egs.exceptions import (
    ApiKeyNotFound,
    GpuAlreadyProvisioned,
    GpuAlreadyReleased,
    UnhandledException,
)
from egs.internal.inference_endpoint.create_inference_endpoint_data import GpuSpec, ModelSpec

ENDPOINT = os.environ["EGS_ENDPOINT"]
API_KEY = os.environ["EGS_API_KEY"]
CLUSTER = os.environ["SDK_CLUSTER"]
NODES = os.environ["SDK_NODES"].split(",")
INSTANCE_TYPE = os.environ["SDK_INSTANCE_TYPE"]
GPU_SHAPE = os.environ["SDK_GPU_SHAPE"]
MEMORY_GB = int(os.environ["SDK_MEMORY_GB"])
SUFFIX = os.environ["SDK_SUFFIX"]
OUT = os.environ["SDK_OUT"]

WORKSPACE = "sdk-" + SUFFIX
NAMESPACE = "sdk-ns-" + SUFFIX

state = {}
steps = []
teardowns = []


def step(fn):
    steps.append(fn)
    return fn


def teardown(fn):
    teardowns.append(fn)
    return fn


def check(cond, what, got=None):
    if not cond:
        raise AssertionError(what + ("" if got is None else ": got " + str(got)))


def raises(exc_type, fn, *args, **kwargs):
    """Calls fn and returns the exception of exc_type it must raise."""
    try:
        fn(*args, **kwargs)
    except exc_type as e:
        return e
    raise AssertionError("%s did not raise %s" % (fn.__name__, exc_type.__name__))


def wait_until(what, cond, timeout=60):
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError("timed out after %ds waiting for %s" % (timeout, what))
        time.sleep(0.2)


def gpr_kwargs(name, priority=150):
    return dict(
        request_name=name,
        workspace_name=WORKSPACE,
        node_count=1,
        gpu_per_node_count=1,
        memory_per_gpu=MEMORY_GB,
        exit_duration="0d1h0m",
        priority=priority,
        idle_timeout_duration="0d0h30m",
        enforce_idle_timeout=False,
    )


def kube_get(kubeconfig, path):
    """GETs path from the kube-apiserver as the kubeconfig's user (its first
    cluster and user; the standard library has no YAML parser, and
    the API writes these fields one per line)."""

    def field(name):
        m = re.search(r"^\s+%s: (\S+)$" % name, kubeconfig, re.M)
        check(m is not None, "kubeconfig has " + name, kubeconfig)
        return m.group(1)

    server = urllib.parse.urlsplit(field("server"))
    ca = base64.b64decode(field("certificate-authority-data")).decode()
    conn = http.client.HTTPSConnection(server.hostname, server.port, context=ssl.create_default_context(cadata=ca))
    conn.request("GET", path, headers={"Authorization": "Bearer " + field("token")})
    return conn.getresponse().status


def status(gpr_id):
    return egs.gpu_request_status(gpr_id).status.provisioning_status


# --- authentication -------------------------------------------------------


@step
def authenticate():
    s = egs.authenticate(ENDPOINT, API_KEY, sdk_default=True)
    check(s is not None and s.client is not None, "authenticate returns a session")
    check(egs.get_global_session() is s, "sdk_default=True makes it the default session")


# --- inventory and workspaces ----------------------------------------------


@step
def inventory():
    inv = egs.inventory()
    mine = {n.gpu_node_name: n for n in inv.managed_nodes if n.gpu_node_name in NODES}
    check(sorted(mine) == sorted(NODES), "inventory lists the test's nodes", sorted(mine))
    for n in mine.values():
        check(n.cluster_name == CLUSTER, "node cluster", n.cluster_name)
        check(n.instance_type == INSTANCE_TYPE, "node instance type", n.instance_type)
        check(n.gpu_count == 1, "node GPU count", n.gpu_count)
        check(n.memory == MEMORY_GB, "node memory per GPU (GB)", n.memory)
    check(inv.unmanaged_nodes == [], "no unmanaged nodes", inv.unmanaged_nodes)


@step
def create_workspace():
    name = egs.create_workspace(WORKSPACE, [CLUSTER], [NAMESPACE], "sdk-user", "sdk@example.com")
    check(name == WORKSPACE, "create_workspace returns the name", name)


@step
def kubeconfig_right_after_create():
    # What the SDK's examples do: create, then the kubeconfig at once.
    kc = egs.get_workspace_kubeconfig(WORKSPACE, CLUSTER)
    check(isinstance(kc, str) and "kind: Config" in kc, "a kubeconfig", kc)
    context = "%s/%s@%s" % (WORKSPACE, NAMESPACE, CLUSTER)
    check(context in kc, "a context for the namespace " + context, kc)
    with open(os.path.join(OUT, "kubeconfig"), "w") as f:
        f.write(kc)
    # It works: the workspace's namespace, and nothing else.
    code = kube_get(kc, "/api/v1/namespaces/%s/pods" % NAMESPACE)
    check(code == 200, "the kubeconfig lists pods in " + NAMESPACE, code)
    code = kube_get(kc, "/api/v1/namespaces/default/pods")
    check(code == 403, "the kubeconfig may not list pods in default", code)


@step
def list_workspaces():
    ws = {w.name: w for w in egs.list_workspaces().workspaces}
    check(WORKSPACE in ws, "list_workspaces has the workspace", sorted(ws))
    w = ws[WORKSPACE]
    check(w.clusters == [CLUSTER], "clusters", w.clusters)
    check(w.namespaces == [{"namespace": NAMESPACE, "clusters": [CLUSTER]}], "namespaces", w.namespaces)
    check(isinstance(w.max_clusters, int), "maxClusters", w.max_clusters)


# --- GPU requests: all five forms -------------------------------------------


@step
def request_gpu():
    state["generic"] = egs.request_gpu(
        cluster_name=CLUSTER, instance_type=INSTANCE_TYPE, gpu_shape=GPU_SHAPE, **gpr_kwargs("sdk-generic", 200)
    )
    wait_until("the first GPR provisioned", lambda: status(state["generic"]) == "Provisioned")


@step
def request_gpu_with_auto_selection():
    state["auto"] = egs.request_gpu_with_auto_selection(**gpr_kwargs("sdk-auto"))


@step
def request_gpu_with_auto_gpu_selection():
    state["auto_gpu"] = egs.request_gpu_with_auto_gpu_selection(preferred_clusters=[CLUSTER], **gpr_kwargs("sdk-auto-gpu"))


@step
def request_gpu_with_auto_cluster():
    state["auto_cluster"] = egs.request_gpu_with_auto_cluster(
        instance_type=INSTANCE_TYPE, gpu_shape=GPU_SHAPE, **gpr_kwargs("sdk-auto-cluster")
    )


@step
def request_gpu_with_manual_selection():
    state["manual"] = egs.request_gpu_with_manual_selection(
        cluster_name=CLUSTER, instance_type=INSTANCE_TYPE, gpu_shape=GPU_SHAPE, **gpr_kwargs("sdk-manual")
    )


@step
def gpu_request_status():
    g = egs.gpu_request_status(state["generic"])
    check(g.gpr_id == state["generic"], "gprId", g.gpr_id)
    check(g.gpr_name == "sdk-generic", "gprName", g.gpr_name)
    check(g.slice_name == WORKSPACE, "sliceName", g.slice_name)
    check(g.cluster_name == CLUSTER, "clusterName", g.cluster_name)
    check(g.status.provisioning_status == "Provisioned", "provisioningStatus", g.status.provisioning_status)
    check(len(g.status.nodes) == 1 and g.status.nodes[0] in NODES, "nodes", g.status.nodes)
    check(g.exit_duration == "1h0m0s", "exitDuration as a Go duration", g.exit_duration)
    for key in ("auto", "auto_gpu", "auto_cluster", "manual"):
        q = egs.gpu_request_status(state[key])
        check(q.status.provisioning_status == "Queued", key + " waits behind the provisioned GPR", q.status.provisioning_status)
        check(q.cluster_name == CLUSTER, key + " lands on the workspace's cluster", q.cluster_name)
        check(q.memory_per_gpu == MEMORY_GB, key + " memoryPerGPU from the SDK's memoryPerGpu", q.memory_per_gpu)


@step
def gpu_request_status_for_workspace():
    items = egs.gpu_request_status_for_workspace(WORKSPACE).items
    ids = sorted(i.gpr_id for i in items)
    want = sorted(state[k] for k in ("generic", "auto", "auto_gpu", "auto_cluster", "manual"))
    check(ids == want, "the workspace's GPRs", ids)


@step
def workspace_inventory():
    items = egs.workspace_inventory(WORKSPACE).workspace_inventory
    check(len(items) == 1, "one inventory item for the provisioned GPR", [str(i) for i in items])
    it = items[0]
    check(it.cluster_name == CLUSTER and it.instance_type == INSTANCE_TYPE, "cluster and instance type", str(it))
    check(it.total_gpu_nodes == 1 and it.gpu_per_node == 1, "node and GPU counts", str(it))


@step
def update_gpu_request_name():
    egs.update_gpu_request_name(state["auto"], "sdk-renamed")
    check(egs.gpu_request_status(state["auto"]).gpr_name == "sdk-renamed", "renamed")


@step
def update_gpu_request_priority():
    egs.update_gpu_request_priority(state["auto"], 250)
    check(egs.gpu_request_status(state["auto"]).priority == 250, "new priority")


@step
def cancel_gpu_request():
    egs.cancel_gpu_request(state["auto_gpu"])
    ids = [i.gpr_id for i in egs.gpu_request_status_for_workspace(WORKSPACE).items]
    check(state["auto_gpu"] not in ids, "a cancelled GPR is gone", ids)
    e = raises(GpuAlreadyProvisioned, egs.cancel_gpu_request, state["generic"])
    check(e.exception.status_code == 409, "cancelling a provisioned GPR answers 409", e.exception.status_code)


@step
def release_gpu():
    e = raises(GpuAlreadyReleased, egs.release_gpu, state["manual"])
    check(e.exception.status_code == 409, "releasing a queued GPR answers 409", e.exception.status_code)
    egs.release_gpu(state["generic"])
    wait_until("the released GPR complete", lambda: status(state["generic"]) == "Complete")
    # The highest-priority queued GPR (the renamed one, 250) comes next.
    wait_until("the next GPR provisioned", lambda: status(state["auto"]) == "Provisioned")


# --- API keys -------------------------------------------------------------------


@step
def api_keys():
    today = datetime.datetime.now(datetime.timezone.utc).date()
    tomorrow = (today + datetime.timedelta(days=1)).isoformat()  # the SDK's examples send this
    # A date is valid through that day (UTC).
    until = (today + datetime.timedelta(days=2)).isoformat() + "T00:00:00Z"
    name = "sdk-editor-" + SUFFIX
    key = egs.create_api_key(name, "Editor", tomorrow, username="sdk-user", description="SDK test", workspace_name=WORKSPACE)
    check(isinstance(key, str) and key.startswith("gps_"), "create_api_key returns the key", key)
    listed = [k for k in egs.list_api_keys()["items"] if k["name"] == name]
    check(len(listed) == 1, "list_api_keys has the key", listed)
    check(listed[0]["role"] == "Editor" and listed[0]["workspaceName"] == WORKSPACE, "role and workspace", listed[0])
    check(listed[0]["validUntil"] == until, "validUntil from the SDK's validity field", listed[0]["validUntil"])
    check([k["name"] for k in egs.list_api_keys(WORKSPACE)["items"]] == [name], "list_api_keys(workspace)")

    editor = egs.authenticate(ENDPOINT, key)
    mine = egs.gpu_request_status_for_workspace(WORKSPACE, authenticated_session=editor).items
    check(len(mine) == 4, "the Editor reads the workspace's GPRs", len(mine))
    check([w.name for w in egs.list_workspaces(authenticated_session=editor).workspaces] == [WORKSPACE],
          "an Editor key sees its own workspace only")

    egs.delete_api_key(key)
    raises(ApiKeyNotFound, egs.authenticate, ENDPOINT, key)
    check(not [k for k in egs.list_api_keys()["items"] if k["name"] == name], "a deleted key is not listed")


# --- inference endpoints: not served, a clear 501 ------------------------------------


@step
def inference_endpoints():
    gpu = GpuSpec(GPU_SHAPE, INSTANCE_TYPE, MEMORY_GB, 1, 1, "0d1h0m", 150)
    calls = {
        "list_inference_endpoint": lambda: egs.list_inference_endpoint(WORKSPACE),
        "create_inference_endpoint": lambda: egs.create_inference_endpoint(
            CLUSTER, "llm", WORKSPACE, ModelSpec("pytorch", "s3://models/llm"), gpu),
        "create_inference_endpoint_with_custom_model_spec": lambda: egs.create_inference_endpoint_with_custom_model_spec(
            CLUSTER, "llm", WORKSPACE, "apiVersion: v1\nkind: Pod\n", gpu),
        "describe_inference_endpoint": lambda: egs.describe_inference_endpoint(WORKSPACE, "llm", CLUSTER),
        "delete_inference_endpoint": lambda: egs.delete_inference_endpoint(WORKSPACE, "llm", CLUSTER),
    }
    for name, call in calls.items():
        e = raises(UnhandledException, call)
        r = e.exception
        check(r.status_code == 501, name + " answers 501", r.status_code)
        check(r.error["errorKey"] == "INFERENCE_ENDPOINTS_NOT_SERVED", name + " errorKey", r.error)
        check("does not serve inference endpoints" in r.error["message"], name + " says why", r.error)


# --- GPR templates and template bindings -----------------------------------------


TEMPLATE = "sdk-tpl-" + SUFFIX


@step
def gpr_templates():
    name = egs.create_gpr_template(
        name=TEMPLATE, cluster_name=CLUSTER, gpu_per_node_count=1, num_gpu_nodes=1,
        memory_per_gpu=MEMORY_GB, gpu_shape=GPU_SHAPE, instance_type=INSTANCE_TYPE,
        exit_duration="0d1h0m", priority=150, enforce_idle_timeout=True, enable_eviction=False,
        requeue_on_failure=True, idle_timeout_duration="0d0h30m")
    check(name == TEMPLATE, "create_gpr_template returns the name", name)
    t = egs.get_gpr_template(TEMPLATE)
    check((t.name, t.cluster_name, t.number_of_gpus, t.number_of_gpu_nodes, t.memory_per_gpu, t.gpu_shape, t.instance_type)
          == (TEMPLATE, CLUSTER, 1, 1, MEMORY_GB, GPU_SHAPE, INSTANCE_TYPE), "get_gpr_template fields", str(t))
    check((t.exit_duration, t.priority, t.enforce_idle_timeout, t.idle_timeout_duration, t.requeue_on_failure)
          == ("1h0m0s", 150, True, "0h30m0s", True), "durations, priority and flags", str(t))
    check(TEMPLATE in [i.name for i in egs.list_gpr_templates().items], "list_gpr_templates has it")
    # The SDK docs write durations as "2h" and "15m": accepted as well.
    egs.update_gpr_template(
        name=TEMPLATE, cluster_name=CLUSTER, number_of_gpus=1, instance_type=INSTANCE_TYPE, exit_duration="2h",
        number_of_gpu_nodes=1, priority=120, memory_per_gpu=MEMORY_GB, gpu_shape=GPU_SHAPE, enable_eviction=True,
        requeue_on_failure=False, enforce_idle_timeout=True, idle_timeout_duration="15m")
    t = egs.get_gpr_template(TEMPLATE)
    check((t.exit_duration, t.priority, t.enable_eviction, t.idle_timeout_duration) == ("2h0m0s", 120, True, "0h15m0s"),
          "update_gpr_template changed it", str(t))


@step
def gpr_template_bindings():
    clusters = [{"clusterName": CLUSTER, "defaultTemplateName": TEMPLATE, "templates": [TEMPLATE]}]
    b = egs.create_gpr_template_binding(WORKSPACE, clusters, True)
    check(b.name == WORKSPACE and b.enable_auto_gpr is True, "create_gpr_template_binding", str(b))
    b = egs.get_gpr_template_binding(WORKSPACE)
    check(b.name == WORKSPACE and len(b.clusters) == 1, "get_gpr_template_binding", str(b))
    c = b.clusters[0]
    check((c.clusterName, c.defaultTemplateName, c.templates, c.defaultTemplateStatus, c.templateStatus)
          == (CLUSTER, TEMPLATE, [TEMPLATE], "Ready", {TEMPLATE: "Ready"}), "the binding's cluster", str(c))
    names = [x.name for x in egs.list_gpr_template_bindings().templateBindings]
    check(WORKSPACE in names, "list_gpr_template_bindings has it", names)
    b = egs.update_gpr_template_binding(WORKSPACE, clusters, False)
    check(b.enable_auto_gpr is False, "update_gpr_template_binding turned auto-GPR off", str(b))
    # A template a binding uses cannot be deleted: 409 naming the binding.
    e = raises(UnhandledException, egs.delete_gpr_template, TEMPLATE)
    check(e.exception.status_code == 409 and WORKSPACE in e.exception.error["message"],
          "deleting a bound template answers 409 naming the binding", e.exception.error)
    egs.delete_gpr_template_binding(WORKSPACE)
    e = raises(UnhandledException, egs.get_gpr_template_binding, WORKSPACE)
    check(e.exception.status_code == 404, "a deleted binding is gone", e.exception.status_code)
    egs.delete_gpr_template(TEMPLATE)
    check(TEMPLATE not in [i.name for i in egs.list_gpr_templates().items], "a deleted template is not listed")


# --- tear down: runs after every step, also after a failure ---------------------------


@teardown
def release_everything():
    for key in ("auto_cluster", "manual"):
        if key in state and status(state[key]) == "Queued":
            egs.cancel_gpu_request(state[key])
    for key in ("generic", "auto"):
        if key in state and status(state[key]) == "Provisioned":
            egs.release_gpu(state[key])
            wait_until("GPR %s complete" % key, lambda: status(state[key]) == "Complete")


@teardown
def delete_workspace():
    egs.delete_workspace(WORKSPACE)
    names = [w.name for w in egs.list_workspaces().workspaces]
    check(WORKSPACE not in names, "a deleted workspace is not listed", names)


# --- more SDK functions: add @step functions here (they run in order, before
# the teardown, with the workspace and its GPRs in `state`) ------------------------


def run(fn):
    t0 = time.time()
    try:
        fn()
    except Exception:
        print("FAIL %s (%.1fs)" % (fn.__name__, time.time() - t0), flush=True)
        traceback.print_exc()
        return False
    print("ok   %s (%.1fs)" % (fn.__name__, time.time() - t0), flush=True)
    return True


def main():
    passed, failed = [], []
    for fn in steps:
        if not run(fn):
            failed.append(fn.__name__)
            break
        passed.append(fn.__name__)
    for fn in teardowns:
        (passed if run(fn) else failed).append(fn.__name__)
    print(json.dumps({"passed": passed, "failed": failed}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
