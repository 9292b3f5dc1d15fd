#!/usr/bin/env bash
# docs/figures/ from one run: the notebook's figures and TensorBoard screenshots (custom scalars, stage reports).
# Usage: bash scripts/doc_figures.sh [RUN_DIR]     (default runs/tiny/version_0, i.e. `bash scripts/train_tiny.sh`)
# Needs the dev extra (jupyter execute, matplotlib) and a Chromium (`apt-get install -y chromium`).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/tiny/version_0}
OUT=docs/figures
PY=${PYTHON:-.venv/bin/python}
export PATH="$(dirname "$PY"):$PATH"
[ -f "$RUN/config.yaml" ] && grep -q "max_steps" "$RUN/config.yaml" && echo "run: $RUN ($(grep -m1 'max_steps' "$RUN/config.yaml" | xargs))"
rm -rf "$RUN/figures"
LIT_TRIUNE_LOG_DIR="$RUN" jupyter execute notebooks/training_dynamics.ipynb
for f in stage_reports reward_accuracy response_length reflection iou samples_per_source grad_norm; do
  cp "$RUN/figures/$f.png" "$OUT/$f.png"
done
"$PY" scripts/tensorboard_screenshots.py "$RUN" --out "$OUT"
ls -la "$OUT"/*.png
