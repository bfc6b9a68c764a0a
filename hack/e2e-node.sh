#!/usr/bin/env bash
# e2e-node.sh (make e2e-node): a real node. It joins a real kubelet 1.37.1,
# with containerd and runc, to a fresh `gpuspace dev`, runs the
# gpuspace-device-plugin DaemonSet (--nvml=mock:dgxh100) on that kubelet, binds the
# node to a workspace through the REST API (a GPR), and runs a pod in the
# workspace's namespace asking for nvidia.com/gpu: 2. The pod's container
# (a static Go binary, e2e/node/nodeimage, in an OCI image imported into
# containerd: there is no registry) prints its environment; the stage reads
# it back through `kubectl logs` (apiserver -> kubelet) and checks that
# NVIDIA_VISIBLE_DEVICES names two of the node's GPU UUIDs, which only the
# device plugin's Allocate answer can have put there.
#
# Host state. Everything runs in new mount, network and PID namespaces
# (unshare -m -n -p), so what the kubelet, containerd and CNI do to mounts,
# iptables (KUBE-* chains), links (the CNI bridge, veths), network
# namespaces and processes dies with them. What is not namespaced:
#   - sysctls kernel.panic, kernel.panic_on_oops, vm.overcommit_memory: the
#     kubelet sets them; inside the mount namespace each is masked by a bind
#     mount of a plain file, so the kubelet writes the file, never the
#     kernel (a kernel.panic_on_oops=1 on a shared host is a hazard);
#   - cgroups: the kubelet's cgroupRoot is /gpuspace-e2e-node in every v1
#     hierarchy; the stage creates it and removes the whole subtree;
#   - mount points the kubelet and CNI need at fixed paths (/var/lib/kubelet,
#     /var/lib/cni, /var/log/pods, /var/log/containers): tmpfs inside the
#     namespace; the stage creates a missing directory and removes it after.
# The EXIT trap restores all of it, also on failure or Ctrl-C, then compares
# the host with what it recorded before (sysctls, links, iptables chains,
# network namespaces, mount points, cgroups, processes) and fails if
# anything differs.
#
# The device plugin runs as the DaemonSet of manifests/device-plugin, from
# the image `make images` built (_output/images/gpuspace-device-plugin.tar),
# with its ServiceAccount, RBAC and admission policy.
#
# Needs root, Debian's containerd/runc/containernetworking-plugins (installed
# with apt if missing) and the binaries `make build` and `make images` make.
# Environment: E2E_NODE_STATE_DIR (default .gpuspace/e2e-node; kept on failure, with
# logs), E2E_NODE_LISTEN (REST API, default 127.0.0.1:18090),
# E2E_NODE_KEEP=1 keeps the state directory on success too.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
NODE=gpuspace-e2e-node
NODE_IP=10.250.0.1
CGROUP_ROOT=gpuspace-e2e-node
STATE=${E2E_NODE_STATE_DIR:-$ROOT/.gpuspace/e2e-node}
LISTEN=${E2E_NODE_LISTEN:-127.0.0.1:18090}
SYSCTLS=(kernel/panic kernel/panic_on_oops vm/overcommit_memory)
FIXED_DIRS=(/var/lib/kubelet /var/lib/cni /var/log/pods /var/log/containers)
PAUSE_IMAGE=registry.gpuspace.local/e2e/pause:1
TEST_IMAGE=registry.gpuspace.local/e2e/env:1
KUBE_LDFLAGS="-X k8s.io/component-base/version.gitVersion=v1.37.1 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37"
BIN=$ROOT/bin
export ROOT NODE NODE_IP CGROUP_ROOT STATE LISTEN BIN

log() { echo "e2e-node: [$(date +%T)] $*" >&2; }
die() {
  log "FAIL: $*"
  exit 1
}

# ---------------------------------------------------------------------------
# Inside the namespaces (PID 1 of the new PID namespace).
# ---------------------------------------------------------------------------
inner() {
  # Globals: the EXIT trap reads them.
  logs=$STATE/logs ns=$STATE/ns dev=$STATE/dev
  admin=$dev/kubeconfig sock=$STATE/ns/containerd/containerd.sock
  started=()
  kc() { "$BIN/kubectl" --kubeconfig "$admin" "$@"; }
  stop_all() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [ "$rc" -ne 0 ]; then
      log "inside: failed (rc=$rc); logs in $logs"
      for f in kubelet containerd device-plugin; do
        [ -s "$logs/$f.log" ] && { echo "--- last lines of $f.log" >&2; tail -15 "$logs/$f.log" >&2; }
      done
    fi
    # Let the kubelet tear the pod down (CNI DEL, cgroups) while it runs.
    [ -n "${WS_NS:-}" ] && kc delete pod -n "$WS_NS" gpu-env --wait=true --timeout=30s >/dev/null 2>&1
    if [ -n "${DP_APPLIED:-}" ]; then
      # This node's pod (a simulated node may have one that never runs).
      kc -n gpuspace-device-plugin logs $(kc -n gpuspace-device-plugin get pods --field-selector spec.nodeName="$NODE" -o name) >"$logs/device-plugin.log" 2>&1
      kc -n gpuspace-device-plugin delete daemonset gpuspace-device-plugin --cascade=orphan >/dev/null 2>&1
      kc -n gpuspace-device-plugin delete pods --field-selector spec.nodeName="$NODE" --wait=true --timeout=30s >/dev/null 2>&1
    fi
    local i p
    for ((i = ${#started[@]} - 1; i >= 0; i--)); do
      p=${started[i]}
      kill -INT "$p" 2>/dev/null
      for _ in $(seq 1 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$p" 2>/dev/null
    done
    # Whatever is left (containerd shims, containers) dies with this PID
    # namespace when this process exits.
    exit "$rc"
  }
  trap stop_all EXIT
  trap 'exit 130' INT TERM

  mkdir -p "$logs" "$ns" "$dev"
  # Private mounts: all vanish with the mount namespace.
  mount -t tmpfs -o mode=755 tmpfs /run
  mkdir -p /run/netns /run/lock
  local d
  for d in "${FIXED_DIRS[@]}"; do mount -t tmpfs -o mode=755 tmpfs "$d"; done
  mount -t tmpfs -o mode=700 tmpfs "$ns"
  # Mask the sysctls the kubelet sets.
  mkdir -p "$ns/sysctl"
  local s
  for s in "${SYSCTLS[@]}"; do
    cat "/proc/sys/$s" >"$ns/sysctl/${s//\//.}"
    mount --bind "$ns/sysctl/${s//\//.}" "/proc/sys/$s"
  done
  # The node's network: loopback and a veth pair carrying the node IP (the
  # kubelet refuses a loopback node IP).
  ip link set lo up
  ip link add gse2e0 type veth peer name gse2e1
  ip addr add "$NODE_IP/24" dev gse2e0
  ip link set gse2e0 up
  ip link set gse2e1 up
  ip route add default dev gse2e0
  # The apiserver reaches the kubelet (kubectl logs) by the node's hostname.
  { cat /etc/hosts; echo "$NODE_IP $NODE"; } >"$ns/hosts"
  mount --bind "$ns/hosts" /etc/hosts

  # 1. The control plane: gpuspace dev with one simulated T4 node, so the
  # only H100 node is the real one.
  log "starting gpuspace dev (REST API on $LISTEN)"
  cat >"$STATE/nodes.yaml" <<EOF
nodes:
- name: sim-t4-0
  instanceType: n1-standard-8
  product: Tesla-T4
  memoryMiB: 15360
  gpus: 1
EOF
  "$BIN/gpuspace" dev --state-dir "$dev" --listen "$LISTEN" --nodes "$STATE/nodes.yaml" >"$logs/dev.out" 2>&1 &
  started+=($!)
  local devpid=$!
  for _ in $(seq 1 1800); do
    grep -q "gpuspace ready" "$logs/dev.out" 2>/dev/null && break
    kill -0 "$devpid" 2>/dev/null || { cat "$logs/dev.out" >&2; die "gpuspace dev exited"; }
    sleep 0.1
  done
  grep -q "gpuspace ready" "$logs/dev.out" || { cat "$logs/dev.out" >&2; die "gpuspace dev not ready in 180s"; }
  [ -s "$dev/pki/ca.key" ] || die "$dev/pki/ca.key missing: bin/gpuspace predates the control plane keeping its CA key; run make build"
  log "gpuspace dev ready"

  # 2. The kubelet's identity: a client certificate for system:node:<node>
  # in system:nodes, signed by the control plane's CA.
  local pki=$ns/kubelet-pki
  mkdir -p "$pki"
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/kubelet.key" 2>/dev/null
  openssl req -new -key "$pki/kubelet.key" -subj "/O=system:nodes/CN=system:node:$NODE" -out "$pki/kubelet.csr"
  printf 'keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >"$pki/ext"
  openssl x509 -req -in "$pki/kubelet.csr" -CA "$dev/pki/ca.crt" -CAkey "$dev/pki/ca.key" -set_serial "0x$(openssl rand -hex 8)" \
    -days 2 -extfile "$pki/ext" -out "$pki/kubelet.crt" 2>/dev/null
  local server
  server=$(kc config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  cat >"$ns/kubelet.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "$server", certificate-authority: "$dev/pki/ca.crt"}
users:
- name: node
  user: {client-certificate: "$pki/kubelet.crt", client-key: "$pki/kubelet.key"}
contexts:
- name: node
  context: {cluster: local, user: node}
current-context: node
EOF

  # 3. containerd (+ runc, CNI bridge), all state on the namespace's tmpfs.
  local c=$ns/containerd
  mkdir -p "$c" "$ns/cni/net.d" "$ns/cni/ipam"
  cat >"$ns/cni/net.d/10-gpuspace-e2e.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "gpuspace-e2e",
  "plugins": [
    {"type": "bridge", "bridge": "gse2e-br0", "isGateway": true, "ipMasq": false,
     "ipam": {"type": "host-local", "dataDir": "$ns/cni/ipam",
              "ranges": [[{"subnet": "10.251.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "loopback"}
  ]
}
EOF
  cat >"$c/config.toml" <<EOF
version = 2
root = "$c/root"
state = "$c/state"
# opt would create /opt/containerd on the host; the others are not built or needed.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # CAP_SYS_RESOURCE is missing in the sandbox: never lower oom_score_adj.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$ns/cni/net.d"
EOF
  log "starting containerd $(containerd --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1{print $3}')"
  containerd --config "$c/config.toml" >"$logs/containerd.log" 2>&1 &
  started+=($!)
  for _ in $(seq 1 300); do
    ctr -a "$sock" version >/dev/null 2>&1 && break
    sleep 0.1
  done
  ctr -a "$sock" version >/dev/null 2>&1 || die "containerd did not come up (see $logs/containerd.log)"
  ctr -a "$sock" -n k8s.io images import "$STATE/images.tar" >"$logs/import.log" 2>&1 || { cat "$logs/import.log" >&2; die "image import failed"; }
  local img images
  images=$(ctr -a "$sock" -n k8s.io images ls -q)
  for img in "$PAUSE_IMAGE" "$TEST_IMAGE"; do
    grep -qx "$img" <<<"$images" || die "image $img not in containerd after import"
  done

  # 4. The kubelet.
  cat >"$ns/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# The host is cgroup v1, which the kubelet refuses unless told otherwise.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP_ROOT
containerRuntimeEndpoint: unix://$sock
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
# The apiserver presents no client certificate to kubelets (kubectl logs);
# the kubelet is reachable only inside this network namespace.
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
  x509: {clientCAFile: "$dev/pki/ca.crt"}
authorization: {mode: AlwaysAllow}
failSwapOn: false
# Post node status (the device plugin's capacity) soon after it changes.
nodeStatusUpdateFrequency: 2s
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
# The imported images cannot be pulled again: never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
EOF
  log "starting kubelet $("$BIN/kubelet" --version | awk '{print $2}') as node $NODE ($NODE_IP)"
  "$BIN/kubelet" --config "$ns/kubelet.yaml" --kubeconfig "$ns/kubelet.kubeconfig" \
    --hostname-override "$NODE" --node-ip "$NODE_IP" --v=2 >"$logs/kubelet.log" 2>&1 &
  started+=($!)
  local kpid=$!
  local ready=""
  for _ in $(seq 1 180); do
    kill -0 "$kpid" 2>/dev/null || die "kubelet exited (see $logs/kubelet.log)"
    ready=$(kc get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
    [ "$ready" = True ] && break
    sleep 1
  done
  [ "$ready" = True ] || die "node $NODE not Ready in 180s (Ready=$ready; see $logs/kubelet.log)"
  log "node $NODE Ready: $(kc get node "$NODE" -o jsonpath='{.status.nodeInfo.kubeletVersion} {.status.nodeInfo.containerRuntimeVersion}')"
  local masked=""
  for s in "${SYSCTLS[@]}"; do masked+=" ${s//\//.}=$(cat "$ns/sysctl/${s//\//.}")"; done
  log "sysctls the kubelet wrote (into the masks; the kernel's are untouched):$masked"

  # 5. The device plugin as users run it: the DaemonSet of manifests/device-plugin
  # (its ServiceAccount, RBAC and admission policy), running the image
  # make images built, imported into containerd (there is no registry), on
  # a mock NVML. No kube-proxy runs here, so its in-cluster configuration
  # reaches the apiserver on the host network at the apiserver's own
  # address (KUBERNETES_SERVICE_HOST/PORT, which beat the kubelet's
  # service variables).
  ctr -a "$sock" -n k8s.io images import "$DP_ARCHIVE" >>"$logs/import.log" 2>&1 || { cat "$logs/import.log" >&2; die "import of $DP_ARCHIVE failed"; }
  grep -qx "$DP_IMAGE" <<<"$(ctr -a "$sock" -n k8s.io images ls -q)" || die "image $DP_IMAGE not in containerd after import"
  log "imported $DP_IMAGE ($(ctr -a "$sock" -n k8s.io images ls | awk -v i="$DP_IMAGE" '$1 == i {print $3}'))"
  local hostport=${server#https://}
  kc apply --server-side -k "$ROOT/manifests/device-plugin" >"$logs/device-plugin-apply.log" 2>&1 || { cat "$logs/device-plugin-apply.log" >&2; die "kubectl apply -k manifests/device-plugin failed"; }
  kc -n gpuspace-device-plugin patch daemonset gpuspace-device-plugin --type json -p "[
    {\"op\": \"replace\", \"path\": \"/spec/template/spec/containers/0/image\", \"value\": \"$DP_IMAGE\"},
    {\"op\": \"add\", \"path\": \"/spec/template/spec/containers/0/imagePullPolicy\", \"value\": \"Never\"},
    {\"op\": \"add\", \"path\": \"/spec/template/spec/hostNetwork\", \"value\": true},
    {\"op\": \"add\", \"path\": \"/spec/template/spec/containers/0/env/-\", \"value\": {\"name\": \"NVML\", \"value\": \"mock:dgxh100\"}},
    {\"op\": \"add\", \"path\": \"/spec/template/spec/containers/0/env/-\", \"value\": {\"name\": \"KUBERNETES_SERVICE_HOST\", \"value\": \"${hostport%:*}\"}},
    {\"op\": \"add\", \"path\": \"/spec/template/spec/containers/0/env/-\", \"value\": {\"name\": \"KUBERNETES_SERVICE_PORT\", \"value\": \"${hostport##*:}\"}}
  ]" >/dev/null || die "patching the device plugin DaemonSet failed"
  DP_APPLIED=1
  kc label node "$NODE" gpuspace.io/gpu-node=true >/dev/null
  log "device plugin DaemonSet applied (manifests/device-plugin, image $DP_IMAGE, NVML=mock:dgxh100)"
  local cap=""
  for _ in $(seq 1 120); do
    cap=$(kc get node "$NODE" -o jsonpath='{.status.capacity.nvidia\.com/gpu}' 2>/dev/null || true)
    [ "$cap" = 8 ] && break
    sleep 1
  done
  if [ "$cap" != 8 ]; then
    kc -n gpuspace-device-plugin get pods -o wide >&2 || true
    kc -n gpuspace-device-plugin describe pods >&2 || true
    die "node capacity nvidia.com/gpu=$cap, want 8 (see $logs/device-plugin.log)"
  fi
  local dppod
  dppod=$(kc -n gpuspace-device-plugin get pods --field-selector spec.nodeName="$NODE" -o jsonpath='{range .items[*]}{.metadata.name} {.spec.nodeName} {.status.phase} {.spec.containers[0].image}{"\n"}{end}')
  log "device plugin pod: $dppod"
  log "node capacity: nvidia.com/gpu=$cap gpuspace.io/gpu-memory=$(kc get node "$NODE" -o jsonpath='{.status.capacity.gpuspace\.io/gpu-memory}')," \
    "labels: $(kc get node "$NODE" -o jsonpath='{.metadata.labels.nvidia\.com/gpu\.product} {.metadata.labels.gpuspace\.io/gpu\.shape}')"

  # 6. A workspace and a GPR through the REST API bind the node.
  local api=http://$LISTEN token shape
  call() { # method path [json]
    curl -sS --fail-with-body -X "$1" "$api$2" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' ${3:+-d "$3"}
  }
  token=$(curl -sS --fail-with-body -X POST "$api/api/v1/auth" -H 'Content-Type: application/json' \
    -d "{\"apiKey\":\"$(tr -d '\n' <"$dev/owner-api-key")\"}" | jq -r .data.token)
  [ -n "$token" ] && [ "$token" != null ] || die "no token from POST /api/v1/auth"
  shape=$(kc get node "$NODE" -o jsonpath='{.metadata.labels.gpuspace\.io/gpu\.shape}')
  WS_NS=e2e-node-ns
  call POST /api/v1/slice-workspace "{\"workspaceName\":\"e2e-node\",\"clusters\":[\"worker-1\"],\"namespaces\":[\"$WS_NS\"],\"username\":\"E2E Node\",\"email\":\"e2e-node@example.com\"}" >/dev/null
  local gpr
  gpr=$(call POST /api/v1/gpr "{\"gprName\":\"real-node\",\"sliceName\":\"e2e-node\",\"clusterName\":\"worker-1\",\"numberOfGPUs\":2,\"numberOfGPUNodes\":1,\"gpuShape\":\"$shape\",\"exitDuration\":\"0d1h0m\"}" | jq -r .data.gprId)
  local status="" nodes=""
  for _ in $(seq 1 120); do
    read -r status nodes < <(call GET "/api/v1/gpr?gprId=$gpr" | jq -r '.data | "\(.status.provisioningStatus // .provisioningStatus // "") \((.status.nodes // .nodes // []) | join(","))"' 2>/dev/null || echo "")
    [ "$status" = Provisioned ] && break
    [ "$status" = Error ] && die "GPR $gpr went to Error"
    sleep 1
  done
  [ "$status" = Provisioned ] || die "GPR $gpr not Provisioned in 120s (status=$status)"
  [ "$nodes" = "$NODE" ] || die "GPR $gpr bound $nodes, want $NODE"
  kc get ns "$WS_NS" >/dev/null || die "workspace namespace $WS_NS missing"
  log "workspace e2e-node: GPR $gpr Provisioned on $nodes; node labels $(kc get node "$NODE" -o jsonpath='gpuspace.io/workspace={.metadata.labels.gpuspace\.io/workspace}'), namespace $WS_NS"

  # 7. The pod: in the workspace namespace, on the bound node.
  kc apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: gpu-env, namespace: $WS_NS}
spec:
  nodeName: $NODE
  restartPolicy: Never
  automountServiceAccountToken: false
  tolerations: [{key: gpuspace.io/workspace, operator: Exists}]
  containers:
  - name: env
    image: $TEST_IMAGE
    imagePullPolicy: Never
    resources: {limits: {nvidia.com/gpu: 2}}
EOF
  local phase=""
  for _ in $(seq 1 120); do
    phase=$(kc get pod -n "$WS_NS" gpu-env -o jsonpath='{.status.phase}')
    [ "$phase" = Succeeded ] || [ "$phase" = Failed ] && break
    sleep 1
  done
  [ "$phase" = Succeeded ] || {
    kc describe pod -n "$WS_NS" gpu-env >&2 || true
    die "pod gpu-env phase $phase, want Succeeded"
  }
  kc logs -n "$WS_NS" gpu-env >"$logs/gpu-env.out" || die "kubectl logs (apiserver -> kubelet) failed"
  local line
  line=$(grep '^NVIDIA_VISIBLE_DEVICES=' "$logs/gpu-env.out") || { cat "$logs/gpu-env.out" >&2; die "the container saw no NVIDIA_VISIBLE_DEVICES"; }
  log "the container printed: $line"
  local uuids inventory u n=0
  uuids=$(echo "${line#NVIDIA_VISIBLE_DEVICES=}" | tr ',' ' ')
  inventory=$("$BIN/gpuspace-device-plugin" --nvml=mock:dgxh100 --print-inventory | awk -F', ' 'NR>1{print $3}')
  for u in $uuids; do
    grep -qx "$u" <<<"$inventory" || die "$u is not one of the node's GPUs"
    n=$((n + 1))
  done
  [ "$n" = 2 ] && [ "$(tr ' ' '\n' <<<"$uuids" | sort -u | grep -c .)" = 2 ] || die "want 2 distinct GPU UUIDs, got: $uuids"
  log "PASS: a workspace pod got 2 of the node's 8 GPUs through the kubelet's device manager and the device plugin's Allocate"
  exit 0
}

if [ "${1:-}" = --inside ]; then
  inner
fi

# ---------------------------------------------------------------------------
# Outside: build, install, record the host, run the namespaces, restore.
# ---------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "needs root (it runs a kubelet, containerd and runc)"
begin=$SECONDS

need=()
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[ -x /usr/lib/cni/bridge ] || [ -x /opt/cni/bin/bridge ] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
command -v jq >/dev/null || need+=(jq)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]} with apt"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null ||
    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; } ||
    die "apt-get install ${need[*]} failed"
fi
CNI_BIN_DIR=/usr/lib/cni
[ -x $CNI_BIN_DIR/bridge ] || CNI_BIN_DIR=/opt/cni/bin
export CNI_BIN_DIR

for b in gpuspace gpuspace-device-plugin kubectl etcd kube-apiserver kube-controller-manager; do
  [ -x "$BIN/$b" ] || die "$BIN/$b missing: run make build (make e2e-node does)"
done
t0=$SECONDS
log "building bin/kubelet (v1.37.1)"
go build -ldflags "$KUBE_LDFLAGS" -o "$BIN/kubelet" k8s.io/kubernetes/cmd/kubelet
log "bin/kubelet built in $((SECONDS - t0))s"

# A run killed with SIGKILL could not restore: undo what it recorded.
if [ -f "$STATE/created-dirs" ]; then
  while read -r d; do rmdir "$d" 2>/dev/null || true; done <"$STATE/created-dirs"
fi
rm -rf "$STATE"
mkdir -p "$STATE/logs"
STATE=$(cd "$STATE" && pwd)
export E2E_NODE_STATE_DIR=$STATE
CGO_ENABLED=0 go build -o "$STATE/nodeimage" ./e2e/node/nodeimage
# The device plugin's image, as make images (make e2e-node runs it) built it.
DP_IMAGE=docker.io/gpuspace/gpuspace-device-plugin:${TAG:-dev}
DP_ARCHIVE=$ROOT/_output/images/gpuspace-device-plugin.tar
[ -s "$DP_ARCHIVE" ] || die "$DP_ARCHIVE missing: run make images (make e2e-node does)"
export DP_IMAGE DP_ARCHIVE
"$STATE/nodeimage" pack -o "$STATE/images.tar"

unshare -m -n -p -f --mount-proc true 2>"$STATE/unshare.err" ||
  die "the kernel refuses new mount/network/PID namespaces: $(cat "$STATE/unshare.err")"

# What the stage must leave as it found it.
# cgroup v1 hierarchies (this kind of host), or the v2 unified one (untested).
cgroup_hierarchies() { awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/mounts; }
snapshot() {
  set +e # a listing that fails (no /run/netns, no ip6tables) lists nothing
  local s t
  for s in "${SYSCTLS[@]}"; do echo "sysctl $s=$(cat "/proc/sys/$s")"; done
  ip -o link show | awk -F': ' '{print "link " $2}' | sed 's/@.*//'
  for t in filter nat mangle raw; do
    iptables -t "$t" -S 2>/dev/null | awk -v t="$t" '$1 == "-N" {print "iptables " t " " $2}'
    ip6tables -t "$t" -S 2>/dev/null | awk -v t="$t" '$1 == "-N" {print "ip6tables " t " " $2}'
  done
  ls /run/netns 2>/dev/null | sed 's/^/netns /'
  awk '{print "mount " $5}' /proc/self/mountinfo
  for d in "${FIXED_DIRS[@]}"; do [ -e "$d" ] && echo "dir $d"; done
  for h in $(cgroup_hierarchies); do [ -e "$h/$CGROUP_ROOT" ] && echo "cgroup $h/$CGROUP_ROOT"; done
  [ -e /opt/containerd ] && echo "dir /opt/containerd"
  true
}
# A cgroup root left by a killed run is removed; one with processes is
# another run's.
for h in $(cgroup_hierarchies); do
  [ -d "$h/$CGROUP_ROOT" ] || continue
  if [ -n "$(find "$h/$CGROUP_ROOT" -name cgroup.procs -exec cat {} + 2>/dev/null)" ]; then
    die "$h/$CGROUP_ROOT has processes: is another make e2e-node running?"
  fi
  find "$h/$CGROUP_ROOT" -depth -type d -exec rmdir {} + 2>/dev/null || true
done
snapshot | sort >"$STATE/host-before.txt"

upid="" created_dirs=()
restore() {
  local rc=$? s t c l
  trap - EXIT INT TERM
  set +e
  if [ -n "$upid" ] && kill -0 "$upid" 2>/dev/null; then
    # Ask the inside to stop what it started, then end the PID namespace.
    for c in $(cat "/proc/$upid/task/$upid/children" 2>/dev/null); do kill -TERM "$c"; done
    for _ in $(seq 1 300); do kill -0 "$upid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$upid" 2>/dev/null
    wait "$upid" 2>/dev/null
  fi
  # No process of the namespace may be left.
  if [ -n "${pidns:-}" ] && [ "$pidns" != "$(readlink /proc/self/ns/pid)" ]; then
    for _ in $(seq 1 100); do
      left=$(find /proc/[0-9]*/ns/pid -maxdepth 0 -lname "pid:?${pidns//[^0-9]/}?" 2>/dev/null | cut -d/ -f3)
      [ -z "$left" ] && break
      sleep 0.1
    done
    [ -n "$left" ] && { log "processes still in the stage's PID namespace: $left; killing them"; kill -KILL $left; }
  fi
  # cgroups: the subtree under the kubelet's root, leaves first.
  for h in $(cgroup_hierarchies); do
    [ -d "$h/$CGROUP_ROOT" ] || continue
    for _ in $(seq 1 50); do
      find "$h/$CGROUP_ROOT" -depth -type d -exec rmdir {} + 2>/dev/null
      [ -d "$h/$CGROUP_ROOT" ] || break
      sleep 0.2
    done
  done
  for d in "${created_dirs[@]}"; do rmdir "$d" 2>/dev/null || log "could not remove $d"; done
  # Not expected to differ (namespaces, masks), but restored if they do.
  for s in "${SYSCTLS[@]}"; do
    want=$(awk -v k="sysctl $s" -F= '$1 == k {print $2}' "$STATE/host-before.txt")
    if [ -n "$want" ] && [ "$(cat "/proc/sys/$s")" != "$want" ]; then
      log "restoring $s=$want (was $(cat "/proc/sys/$s"))"
      echo "$want" >"/proc/sys/$s"
    fi
  done
  # Anything of ours still on the host (not expected: it all lived in the
  # namespaces) is removed; other differences are someone else's doing on
  # this shared machine and are only reported.
  snapshot | sort >"$STATE/host-after.txt"
  while read -r kind a b; do
    case "$kind $a $b" in
    "iptables "*" KUBE-"* | "ip6tables "*" KUBE-"* | "iptables "*" CNI-"* | "ip6tables "*" CNI-"*)
      log "removing $kind -t $a chain $b"; $kind -t "$a" -F "$b"; $kind -t "$a" -X "$b" ;;
    "link gse2e"* | "link cni"* | "link veth"*) log "removing link $a"; ip link del "$a" ;;
    "netns cni-"*) log "removing netns $a"; umount "/run/netns/$a"; rm -f "/run/netns/$a" ;;
    "mount /var/lib/kubelet"* | "mount /var/lib/cni"* | "mount /var/log/pods"* | "mount /var/log/containers"* | "mount /run/netns/"* | "mount $STATE"* | "mount /proc/sys/"*)
      log "unmounting $a"; umount -l "$a" ;;
    "dir /opt/containerd"*) log "removing /opt/containerd"; rm -rf /opt/containerd ;;
    esac
  done < <(comm -13 "$STATE/host-before.txt" "$STATE/host-after.txt")
  snapshot | sort >"$STATE/host-after.txt"
  diff -u "$STATE/host-before.txt" "$STATE/host-after.txt" >"$STATE/host.diff"
  if grep -E '^[-+](sysctl |cgroup |dir |link (gse2e|cni|veth)|(ip6?tables) .* (KUBE|CNI)-|netns cni-|mount (/var/lib/kubelet|/var/lib/cni|/var/log/pods|/var/log/containers|/run/netns/|/proc/sys/))' "$STATE/host.diff" >"$STATE/host.ours" ||
    grep -qF -- "mount $STATE" "$STATE/host.diff"; then
    log "the stage left the host changed:"
    cat "$STATE/host.ours" >&2
    [ "$rc" = 0 ] && rc=1
  else
    [ -s "$STATE/host.diff" ] && log "host changes not made by this stage (other work on the machine), left alone:" && grep '^[-+][a-z]' "$STATE/host.diff" >&2
    log "host restored: sysctls, iptables chains, links, netns, mounts, cgroups and directories as before; no process of the stage left"
  fi
  if [ "$rc" = 0 ] && [ "${E2E_NODE_KEEP:-}" != 1 ]; then
    rm -rf "$STATE"
  else
    log "state and logs kept in $STATE"
  fi
  log "done in $((SECONDS - begin))s (rc=$rc)"
  exit "$rc"
}
trap restore EXIT
trap 'exit 130' INT TERM

for d in "${FIXED_DIRS[@]}"; do
  [ -e "$d" ] || { mkdir -p "$d" && created_dirs+=("$d") && echo "$d" >>"$STATE/created-dirs"; }
done
# The kubelet's cgroup root, in every hierarchy.
for h in $(cgroup_hierarchies); do
  mkdir -p "$h/$CGROUP_ROOT"
  if [ -e "$h/cgroup.subtree_control" ]; then # v2: delegate the parent's controllers
    for c in $(cat "$h/cgroup.subtree_control"); do echo "+$c" >"$h/$CGROUP_ROOT/cgroup.subtree_control" || true; done
  elif [ -e "$h/cpuset.cpus" ]; then # v1: a new cpuset starts with no CPUs
    cat "$h/cpuset.cpus" >"$h/$CGROUP_ROOT/cpuset.cpus"
    cat "$h/cpuset.mems" >"$h/$CGROUP_ROOT/cpuset.mems"
  fi
done

export CNI_BIN_DIR PAUSE_IMAGE TEST_IMAGE
unshare -m -n -p -f --mount-proc --propagation private --kill-child "$0" --inside &
upid=$!
for _ in $(seq 1 50); do
  c=$(awk '{print $1}' "/proc/$upid/task/$upid/children" 2>/dev/null || true)
  [ -n "$c" ] && pidns=$(readlink "/proc/$c/ns/pid" 2>/dev/null) && [ "$pidns" != "$(readlink /proc/self/ns/pid)" ] && break
  sleep 0.1
done
# Only ever the stage's own PID namespace: restore kills what is left in it.
[ "${pidns:-}" = "$(readlink /proc/self/ns/pid)" ] && pidns=""
[ -n "${pidns:-}" ] || log "warning: could not read the stage's PID namespace"
t0=$SECONDS
wait "$upid"
log "inside the namespaces: $((SECONDS - t0))s"
