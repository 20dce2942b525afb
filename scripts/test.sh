#!/usr/bin/env bash
# Install facerisk (with test extras) into ./.venv and run the test suite (pytest).
# Tests also need Debian's chromium (the report is checked in a real browser).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "test.sh: installing chromium for the report browser test"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
  else
    echo "test.sh: chromium not found; the browser test will be skipped (apt-get install chromium)" >&2
  fi
fi
FACERISK_EXTRAS=test FACERISK_EDITABLE=1 bash "$here/scripts/install.sh"
cd "$here"
exec "${FACERISK_VENV:-$here/.venv}/bin/python" -m pytest "$@"
