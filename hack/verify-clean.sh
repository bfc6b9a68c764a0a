#!/usr/bin/env bash
# verify-clean.sh WHAT CMD...: run CMD and fail if it changed the work tree
# (tracked files or new untracked ones), i.e. if WHAT was not up to date.
set -euo pipefail
what=$1; shift
state() { { git status --porcelain --untracked-files=all; git diff; } | sha256sum; }
before=$(state)
"$@"
if [[ "$(state)" != "$before" ]]; then
  echo "verify: $what are stale; run '$*' and commit the result:" >&2
  git status --short >&2
  exit 1
fi
