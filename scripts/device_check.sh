#!/usr/bin/env bash
# The one prepared GPU check (docs/benchmarks.md, "GPU"). On the GPU machine, from the repository root, with
# the wheels of scripts/device_wheels.sh in .whl/ (carried along; that machine has no network):
#
#   bash scripts/device_check.sh             # writes into $OUT (default output/device_check)
#   bash scripts/device_check.sh --dry-run   # CPU, tiny config, no install: the same steps here
#
# Steps: (1) install the wheels into a temporary folder (offline, nothing else is touched);
# (2) the `cuda`-marked tests; (3) tools/benchmark.py --suite on the full ODISE label
# architecture (configs/odise_coco.yaml, random weights): fp32 / bf16 / bf16+compile inference at
# 512² and 1024², batch 1 and 4, and training steps at 1024² crops. Files in $OUT:
# device_check.log, env.txt, cuda_tests.log, benchmark.json, benchmark.md. The whole check keeps
# to TOTAL_S seconds (default 450, under the 8 minutes it is given): the suite skips the cells
# that would not fit and records them as skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
case "${1:-}" in
  --dry-run) DRY=1 ;;
  "") ;;
  *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac
PY=${PYTHON:-python3}
if [ "$DRY" = 1 ]; then
  OUT=${OUT:-output/device_check_dry}
  TOTAL_S=${TOTAL_S:-400}
else
  OUT=${OUT:-output/device_check}
  TOTAL_S=${TOTAL_S:-450}
fi
mkdir -p "$OUT"
exec > >(tee "$OUT/device_check.log") 2>&1
START=$(date +%s)
left() { echo $(( TOTAL_S - ($(date +%s) - START) )); }
export PYTHONUNBUFFERED=1
say() { echo "[device_check +$(( $(date +%s) - START ))s] $*"; }

# ---- 1. dependencies ---------------------------------------------------------------------
if [ "$DRY" = 1 ]; then
  say "dry run: CPU, tiny config; the wheels are not installed (this environment has them)"
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  ls .whl/*.whl >/dev/null 2>&1 || { say "no wheels in .whl/: run scripts/device_wheels.sh here and carry .whl"; exit 1; }
  SITE=$(mktemp -d /tmp/odise_ext_site.XXXXXX)
  say "installing $(ls .whl/*.whl | wc -l) wheels into $SITE"
  # sal-detectron2 is tagged cp310 but pure Python (its _C is unused): unpacked, as setup_env.sh does.
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" \
      $(ls .whl/*.whl | grep -v sal_detectron2) || { say "pip install failed"; exit 1; }
  $PY -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" \
      .whl/sal_detectron2-*.whl "$SITE" || { say "unpacking detectron2 failed"; exit 1; }
  rm -rf "$SITE/tools" "$SITE/bin"  # the wheel's tools/ package would shadow ours
  export PYTHONPATH="$PWD:$SITE"
fi
DEVICE=cuda
[ "$DRY" = 1 ] && DEVICE=cpu
{
  date -u
  nvidia-smi 2>/dev/null || echo "no nvidia-smi"
  $PY - <<'EOF'
import importlib, sys, torch
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda,
      "gpu", torch.cuda.get_device_name() if torch.cuda.is_available() else None)
for name in ("torchvision", "transformers", "timm", "numpy", "diffusers", "open_clip", "detectron2",
             "fvcore", "pycocotools", "panopticapi", "odise_ext"):
    try:
        mod = importlib.import_module(name)
        print(name, getattr(mod, "__version__", "?"), mod.__file__)
    except Exception as e:  # noqa: BLE001
        print(name, "IMPORT FAILED", type(e).__name__, e)
EOF
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
if [ "$DRY" = 0 ]; then
  $PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible'" || exit 1
fi

# ---- 2. the cuda-marked tests --------------------------------------------------------------
TESTS_S=$(( $(left) * 2 / 5 ))
say "cuda tests (at most ${TESTS_S}s)"
timeout "$TESTS_S" $PY -m pytest -q -m cuda -p no:cacheprovider -o addopts="" --continue-on-collection-errors ${CUDA_TESTS:-tests} \
    2>&1 | tee "$OUT/cuda_tests.log"
TESTS_RC=${PIPESTATUS[0]}
say "cuda tests exit code $TESTS_RC"

# ---- 3. the benchmark suite ----------------------------------------------------------------
if [ "$DRY" = 1 ]; then
  SUITE=(--config-file configs/testing/odise_tiny.yaml --device cpu --sizes 128 --batch-sizes 1
         --train-size 128 --train-batch 2 --train-runs 1 --runs 1 --warmup 0 --compile-backend eager)
else
  SUITE=(--config-file configs/odise_coco.yaml --device cuda --sizes 512 1024 --batch-sizes 1 4
         --train-size 1024 --train-batch 2 --train-runs 2 --runs 3 --warmup 1 --compile-backend inductor)
fi
BUDGET=$(( $(left) - 25 ))
say "benchmark suite (budget ${BUDGET}s)"
timeout "$(( $(left) - 5 ))" $PY tools/benchmark.py --suite "$OUT/benchmark.json" --table "$OUT/benchmark.md" \
    --budget-s "$BUDGET" "${SUITE[@]}"
SUITE_RC=$?
say "benchmark suite exit code $SUITE_RC"
[ -f "$OUT/benchmark.md" ] && cat "$OUT/benchmark.md"
say "done: tests $TESTS_RC, suite $SUITE_RC"
[ "$TESTS_RC" = 0 ] && [ "$SUITE_RC" = 0 ]
