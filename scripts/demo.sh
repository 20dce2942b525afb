#!/usr/bin/env bash
# Install facerisk into ./.venv, simulate a small cohort from the bundled real
# heads (data/demo: 6 participants, FLAIR-like scans, stand-in photos), then
# run the participant and group levels on it and print the report's path.
#   bash scripts/demo.sh [output_dir]      (default: ./out/demo)
# Rerunning reuses the cohort and the finished participants.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FACERISK_EDITABLE=1 bash "$here/scripts/install.sh"
bin="${FACERISK_VENV:-$here/.venv}/bin"
out="${1:-$here/out/demo}"
nprocs="$(nproc 2>/dev/null || echo 1)"
cohort="$out/cohort"
if [ ! -f "$cohort/truth.tsv" ]; then
  "$bin/facerisk-simulate" "$cohort" --n 6 --seed 0 --nprocs "$nprocs"
fi
"$bin/facerisk" "$cohort/bids" "$out/facerisk" participant \
  --photos-dir "$cohort/photos" --nprocs "$nprocs"
"$bin/facerisk" "$cohort/bids" "$out/facerisk" group --photos-dir "$cohort/photos"
echo "Simulated cohort: $cohort (truth: $cohort/truth.tsv)"
echo "Report (contains identifying images): $out/facerisk/facerisk.html"
