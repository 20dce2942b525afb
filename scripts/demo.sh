#!/usr/bin/env bash
# Install facerisk into ./.venv, then run participant and group levels on the
# bundled demo dataset (data/demo: real public heads, stand-in photos).
#   bash scripts/demo.sh [output_dir]      (default: ./out/demo)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FACERISK_EDITABLE=1 bash "$here/scripts/install.sh"
facerisk="${FACERISK_VENV:-$here/.venv}/bin/facerisk"
out="${1:-$here/out/demo}"
nprocs="$(nproc 2>/dev/null || echo 1)"
"$facerisk" "$here/data/demo/bids" "$out" participant --modality T1w \
  --photos-dir "$here/data/demo/photos" --nprocs "$nprocs"
"$facerisk" "$here/data/demo/bids" "$out" group --modality T1w \
  --photos-dir "$here/data/demo/photos"
echo "Report (contains identifying images): $out/facerisk.html"
