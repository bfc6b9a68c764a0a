#!/usr/bin/env bash
# e2e-local.sh: start `gpuspace dev` in a scratch state directory, run the
# e2e suite against it, and stop it (also on failure or Ctrl-C).
# E2E_CLUSTERS=N runs `gpuspace dev --clusters N` (default 1: the hub is
# its own only worker); the multi-cluster test runs when N > 1.
set -euo pipefail
cd "$(dirname "$0")/.."
clusters=${E2E_CLUSTERS:-1}
state=${E2E_STATE_DIR:-.gpuspace/e2e}
listen=${E2E_LISTEN:-127.0.0.1:18080}
rm -rf "$state"
mkdir -p "$state"
state=$(cd "$state" && pwd)
started=$(date +%s)

bin/gpuspace dev --clusters "$clusters" --state-dir "$state" --listen "$listen" > "$state/dev.out" 2>&1 &
dev=$!
stop() {
  kill -INT "$dev" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$dev" 2>/dev/null || return 0; sleep 0.1; done
  echo "e2e: gpuspace dev did not stop in 15s; killing it" >&2
  kill -KILL "$dev" 2>/dev/null || true
}
trap stop EXIT

for _ in $(seq 1 1800); do
  grep -q "gpuspace ready" "$state/dev.out" 2>/dev/null && break
  if ! kill -0 "$dev" 2>/dev/null; then
    echo "e2e: gpuspace dev exited:" >&2; cat "$state/dev.out" >&2; exit 1
  fi
  sleep 0.1
done
grep -q "gpuspace ready" "$state/dev.out" || {
  echo "e2e: gpuspace dev not ready in 180s:" >&2; cat "$state/dev.out" >&2
  tail -20 "$state/gpuspace.log" >&2 || true; exit 1; }
echo "e2e: gpuspace dev --clusters $clusters ready in $(( $(date +%s) - started ))s ($(grep -c . "$state/dev.out") lines of output in $state/dev.out)"

GPUSPACE_E2E_API="http://$listen" \
GPUSPACE_E2E_API_KEY="$(cat "$state/owner-api-key")" \
GPUSPACE_E2E_KUBECONFIG="$state/kubeconfig" \
  go test -count=1 -timeout 10m ${E2E_FLAGS:-} ./e2e/...
