#!/usr/bin/env bash
# Downloads (here, with network) the wheels that the GPU device machine lacks into the git-ignored
# .whl/ folder; scripts/device_check.sh installs them there, offline.
#
# The device image (Python 3.12) already has torch, torchvision, transformers, timm, numpy, scipy,
# Pillow, safetensors, huggingface-hub, regex, requests, filelock, tqdm, PyYAML, tabulate,
# portalocker, cloudpickle, matplotlib, tensorboard, opencv-python-headless, pytest and
# pytest-timeout, so none of them is fetched (two versions of a package would break the install).
# Everything is fetched with --no-deps: the list below is the complete closure of what is missing.
# Pure-Python projects published only as source (fvcore, iopath, antlr4) are built into wheels.
# Usage: bash scripts/device_wheels.sh [DEST]   (default DEST: .whl)
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-.whl}
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=.venv/bin/python
[ -x /work/main/.venv/bin/python ] && [ "$PY" = python3 ] && PY=/work/main/.venv/bin/python
mkdir -p "$DEST"
rm -f "$DEST"/*.whl

PLATFORMS="--platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64"
BINARY=(
  diffusers==0.42.1 importlib_metadata==10.2.0 zipp
  open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4
  yacs==0.1.8 termcolor==3.3.0 omegaconf==2.3.1 hydra-core==1.3.8
  pycocotools==2.0.11 panopticapi-lite==0.2.0
)
SOURCE_ONLY=(fvcore==0.1.5.post20221221 iopath==0.1.10 antlr4-python3-runtime==4.9.3)

echo "[wheels] binary wheels for cp312 -> $DEST"
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    $PLATFORMS -d "$DEST" "${BINARY[@]}"
# importlib_metadata needs zipp, which the device has: keep only one version of each package.
rm -f "$DEST"/zipp-*.whl

echo "[wheels] pure-Python wheels built from source: ${SOURCE_ONLY[*]}"
$PY -m pip wheel -q --no-deps -w "$DEST" "${SOURCE_ONLY[@]}"

# detectron2 as scripts/setup_env.sh installs it: the pure-Python code of sal-detectron2 (tagged
# cp310; its compiled _C is not used). device_check.sh unpacks it instead of pip-installing it.
echo "[wheels] sal-detectron2==0.7.2 (unpacked on the device)"
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.10 --implementation cp \
    $PLATFORMS -d "$DEST" sal-detectron2==0.7.2

ls -1 "$DEST"
du -sh "$DEST"
size=$(du -sk "$DEST" | cut -f1)
# The device tool carries at most 64 MiB (working tree included): stay well below.
if [ "$size" -gt 40960 ]; then
  echo "[wheels] $DEST is ${size} KiB, over the 40 MiB budget for carrying it to the device" >&2
  exit 1
fi
