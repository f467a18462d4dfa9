#!/usr/bin/env bash
# Start Entryway on its embedded default: SQLite and a local CA under ./.entryway, the identity platform
# on https://localhost:8443 and the DevOps service on https://localhost:9443, a demo tenant and
# organization on first start. Extra arguments go to `entryway serve` (see docs/cli.md).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ensure_venv
cd "$ROOT"
exec "$VENV/bin/entryway" serve "$@"
