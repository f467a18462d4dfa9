#!/usr/bin/env bash
# Install everything the tests need and run them: lint, types, then the test suite (real servers over
# TLS, real clients, headless Debian Chromium for the sign-in pages). `.ci/run` calls exactly this.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ensure_venv test
ensure_chromium
cd "$ROOT"
echo "== ruff" && "$VENV/bin/ruff" check src tests bench && "$VENV/bin/ruff" format --check src tests bench
echo "== mypy" && "$VENV/bin/mypy"
echo "== pytest" && exec "$VENV/bin/pytest" "$@"
