#!/usr/bin/env bash
# Creates .venv and installs everything odise-ext needs from the package registry.
# Idempotent: a second run with unchanged requirements only verifies the imports (seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
STAMP="$VENV/.odise_ext_setup"

# Everything that decides the environment goes into the stamp; change any of it and we reinstall.
want=$(cat scripts/setup_env.sh setup.py | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
   && "$VENV/bin/python" -c "import torch, torchvision, detectron2, panopticapi, diffusers, open_clip, odise_ext" 2>/dev/null; then
  echo "[setup] environment up to date ($VENV). Next: make demo (tools run with $VENV/bin/python)"
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade "pip>=23.2" wheel setuptools

# torch/torchvision: the standard (CUDA) wheels, which run on CPU. A torch version that the local
# CPU-only wheel in PIP_FIND_LINKS does not match, because that wheel cannot pair with torchvision.
case "$(uname -m)" in
  aarch64) TORCH="torch==2.9.1 torchvision==0.24.1" ;;   # CPU builds exist for aarch64
  *)       TORCH="torch==2.14.1 torchvision==0.29.1" ;;  # matched pair
esac
if ! "$VENV/bin/python" -c "import torch, torchvision; torchvision.ops.nms" 2>/dev/null; then
  echo "[setup] installing $TORCH"
  $PIP install -q $TORCH
fi

# detectron2: skipped when it already imports (built from source). Otherwise the pure-Python code of
# sal-detectron2 (a repackaging of official detectron2 a59f0563, tagged cp310) goes straight into
# site-packages; its compiled _C is not used by odise-ext.
if ! "$VENV/bin/python" -c "import detectron2" 2>/dev/null; then
  SITE=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  echo "[setup] installing detectron2 (sal-detectron2==0.7.2) into $SITE"
  tmp=$(mktemp -d)
  $PIP install -q --no-deps --only-binary=:all: --python-version 3.10 --implementation cp \
      --target "$tmp" sal-detectron2==0.7.2
  # the wheel ships a top-level `tools` package that would shadow our tools/ scripts
  rm -rf "$tmp/tools" "$tmp"/bin
  cp -r "$tmp"/* "$SITE"/
  rm -rf "$tmp"
fi
# Two packages are installed without their dependencies on purpose: sal-detectron2 (its metadata
# pins numpy<2 and asks for black, and is tagged cp310) and panopticapi-lite (pins numpy<2, asks for
# scikit-image and platformdirs). The pins are stale: the code odise-ext uses runs on numpy 2. pip
# still reads their metadata and may print "ERROR: pip's dependency resolver does not currently take
# into account all the packages that are installed ..." naming them: expected, not a failed install.
echo "[setup] note: pip resolver messages naming sal-detectron2 or panopticapi-lite (numpy<2, black," \
     "scikit-image, platformdirs) are expected: both are installed without dependencies on purpose"
# detectron2's own dependencies (the wheel was installed without them)
$PIP install -q "fvcore<0.1.6" "iopath<0.1.11" "omegaconf>=2.1,<2.4" "hydra-core>=1.1" yacs termcolor \
    tabulate cloudpickle matplotlib tensorboard pycocotools
# panopticapi-lite pins numpy<2, which is stale: install without deps
$PIP install -q --no-deps panopticapi-lite==0.2.0
$PIP install -q -e ".[test]"
echo "$want" > "$STAMP"
# the last line: success (the imports work), what was installed, what to run next
"$VENV/bin/python" -c "import torch, torchvision, detectron2, panopticapi, diffusers, open_clip, odise_ext; \
print(f'[setup] done: $VENV is ready (torch {torch.__version__}, detectron2 {detectron2.__version__}); ' \
      'resolver messages about sal-detectron2 / panopticapi-lite above are expected. Next: make demo')"
