#!/usr/bin/env bash
# `make demo`: train the ODISE quickstart on the embedded shapes dataset (CPU), evaluate PQ/mIoU
# before and after training, and draw panoptic predictions of validation images.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=${OUT:-output/demo}
CFG=configs/quickstart/odise_shapes.yaml
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
mkdir -p "$OUT"

echo "== [1/4] evaluating the untrained model"
$PY tools/train_net.py --config-file $CFG --eval-only OUTPUT_DIR "$OUT/untrained" MODEL.DEVICE cpu \
  2>&1 | tee "$OUT/untrained.log" | grep -E "copypaste: [0-9]" || true
echo "== [2/4] training (progress and ETA in $OUT/train/log.txt)"
$PY tools/train_net.py --config-file $CFG OUTPUT_DIR "$OUT/train" MODEL.DEVICE cpu TEST.EVAL_PERIOD 0 \
  2>&1 | tee "$OUT/train.log" | grep -E "eta:|Overall training" || true
echo "== [3/4] evaluating the trained model"
$PY tools/train_net.py --config-file $CFG --eval-only OUTPUT_DIR "$OUT/trained" MODEL.DEVICE cpu \
  MODEL.WEIGHTS "$OUT/train/model_final.pth" 2>&1 | tee "$OUT/trained.log" | grep -E "copypaste: [0-9]" || true
echo "== [4/4] drawing panoptic predictions of validation images"
$PY tools/visualize_predictions.py --config-file $CFG --weights "$OUT/train/model_final.pth" \
  --dataset shapes_val_panoptic_with_sem_seg --num 8 --output "$OUT/vis"
$PY tools/summarize_demo.py "$OUT/untrained/inference" "$OUT/trained/inference" | tee "$OUT/summary.txt"
echo "Visualisations written to $OUT/vis"
