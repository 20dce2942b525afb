#!/usr/bin/env bash
# Install facerisk (with test extras) into ./.venv and run the test suite (pytest).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FACERISK_EXTRAS=test FACERISK_EDITABLE=1 bash "$here/scripts/install.sh"
cd "$here"
exec "${FACERISK_VENV:-$here/.venv}/bin/python" -m pytest "$@"
