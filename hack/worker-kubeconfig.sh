#!/usr/bin/env bash
# Prints a kubeconfig for the gpuspace hub's credential on a worker cluster
# (manifests/worker/credential.yaml applied there), for
# `gpuspace cluster register NAME --kubeconfig FILE`.
#   hack/worker-kubeconfig.sh [KUBECTL_CONTEXT] > worker.kubeconfig
set -euo pipefail
ctx=${1:-$(kubectl config current-context)}
k() { kubectl --context "$ctx" "$@"; }
server=$(k config view --minify --raw -o jsonpath='{.clusters[0].cluster.server}')
for _ in $(seq 30); do
  token=$(k -n gpuspace-system get secret gpuspace-hub-token -o jsonpath='{.data.token}' 2>/dev/null | base64 -d || true)
  [[ -n $token ]] && break
  sleep 1
done
[[ -n ${token:-} ]] || { echo "no token in gpuspace-system/gpuspace-hub-token: apply manifests/worker/credential.yaml first" >&2; exit 1; }
ca=$(k -n gpuspace-system get secret gpuspace-hub-token -o jsonpath='{.data.ca\.crt}')
cat <<YAML
apiVersion: v1
kind: Config
clusters:
- name: worker
  cluster: {server: "$server", certificate-authority-data: "$ca"}
users:
- name: gpuspace-hub
  user: {token: "$token"}
contexts:
- name: worker
  context: {cluster: worker, user: gpuspace-hub}
current-context: worker
YAML
