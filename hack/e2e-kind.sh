#!/usr/bin/env bash
# e2e-kind.sh: create the kind cluster of kind-config.yaml, build and load
# gpuspace's images, deploy the kind overlay and run the e2e suite against
# it. Needs Docker (able to run privileged containers), kind and kubectl.
# KEEP_CLUSTER=1 leaves the cluster running afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
CLUSTER=${KIND_CLUSTER:-gpuspace}
TAG=${TAG:-dev}
for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || { echo "e2e-kind: $tool is required" >&2; exit 1; }
done

if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --config kind-config.yaml --wait 120s
fi
cleanup() {
  [[ -n "${pf:-}" ]] && kill "$pf" 2>/dev/null || true
  [[ "${KEEP_CLUSTER:-}" == 1 ]] || kind delete cluster --name "$CLUSTER"
}
trap cleanup EXIT
export KUBECONFIG
KUBECONFIG=$(mktemp)
kind get kubeconfig --name "$CLUSTER" > "$KUBECONFIG"

# gpuspace-scheduler takes over the default-scheduler profile: stop kind's
# stock kube-scheduler so that exactly one scheduler answers to that name.
docker exec "$CLUSTER-control-plane" sh -c \
  'test ! -f /etc/kubernetes/manifests/kube-scheduler.yaml || mv /etc/kubernetes/manifests/kube-scheduler.yaml /etc/kubernetes/kube-scheduler.yaml.disabled'

make images TAG="$TAG"
for img in gpuspace gpuspace-scheduler gpuspace-device-plugin; do
  kind load image-archive --name "$CLUSTER" "_output/images/$img.tar"
done

kubectl apply --server-side -k manifests/overlays/kind
kubectl -n gpuspace-system rollout status deploy/gpuspace --timeout=180s
kubectl -n gpuspace-system rollout status deploy/gpuspace-scheduler --timeout=180s
kubectl -n gpuspace-device-plugin rollout status ds/gpuspace-device-plugin --timeout=180s

# The first Owner key, created the way an operator would.
pod=$(kubectl -n gpuspace-system get pod -l app.kubernetes.io/name=gpuspace -o name | head -1)
key=$(kubectl -n gpuspace-system exec "$pod" -- /gpuspace apikey create --name e2e --role Owner --quiet)

kubectl -n gpuspace-system port-forward svc/gpuspace 18080:8080 >/dev/null &
pf=$!
sleep 2
GPUSPACE_E2E_KUBECONFIG=$KUBECONFIG GPUSPACE_E2E_API=http://127.0.0.1:18080 GPUSPACE_E2E_API_KEY=$key \
  go test -count=1 -v -timeout 20m ./e2e/...
