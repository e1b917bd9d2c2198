#!/usr/bin/env bash
# `make demo`: train the ODISE quickstart on the embedded shapes dataset (CPU), evaluate PQ/mIoU
# before and after training, and draw panoptic predictions of validation images.
#   make demo                     # 300 iterations (configs/quickstart/odise_shapes.yaml)
#   DEMO_ITERS=1200 make demo     # the long version (learning-rate step at 5/6 of the run)
# OUT=... writes elsewhere (default output/demo); PY=... picks the interpreter (default .venv's).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-output/demo}
CFG=configs/quickstart/odise_shapes.yaml
# One intra-op thread: the tiny model's ops are too small to gain from two, and a second thread
# only contends with whatever else runs on a 2-core machine. Override with OMP_NUM_THREADS=2.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
ITERS=()
if [ -n "${DEMO_ITERS:-}" ]; then
  case "$DEMO_ITERS" in
    ''|*[!0-9]*|0) echo "DEMO_ITERS must be a positive whole number of iterations, got '$DEMO_ITERS'" >&2; exit 2 ;;
  esac
  ITERS=(SOLVER.MAX_ITER "$DEMO_ITERS" SOLVER.STEPS "($((DEMO_ITERS * 5 / 6)),)")
fi
mkdir -p "$OUT"

echo "== [1/4] evaluating the untrained model"
$PY tools/train_net.py --config-file $CFG --eval-only OUTPUT_DIR "$OUT/untrained" MODEL.DEVICE cpu \
  2>&1 | tee "$OUT/untrained.log" | grep -E "copypaste: [0-9]" || true
echo "== [2/4] training (progress and ETA in $OUT/train/log.txt)"
$PY tools/train_net.py --config-file $CFG OUTPUT_DIR "$OUT/train" MODEL.DEVICE cpu TEST.EVAL_PERIOD 0 \
  ${ITERS[@]+"${ITERS[@]}"} 2>&1 | tee "$OUT/train.log" | grep -E "eta:|Overall training" || true
echo "== [3/4] evaluating the trained model"
$PY tools/train_net.py --config-file $CFG --eval-only OUTPUT_DIR "$OUT/trained" MODEL.DEVICE cpu \
  MODEL.WEIGHTS "$OUT/train/model_final.pth" 2>&1 | tee "$OUT/trained.log" | grep -E "copypaste: [0-9]" || true
echo "== [4/4] drawing panoptic predictions of validation images"
$PY tools/visualize_predictions.py --config-file $CFG --weights "$OUT/train/model_final.pth" \
  --dataset shapes_val_panoptic_with_sem_seg --num 8 --output "$OUT/vis"
$PY tools/summarize_demo.py "$OUT/untrained/inference" "$OUT/trained/inference" | tee "$OUT/summary.txt"
echo "Visualisations written to $OUT/vis"
