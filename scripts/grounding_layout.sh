#!/usr/bin/env bash
# Can the CPU default's model learn grounding at all, and does the image's place in the prompt decide it?
# Supervised warm-start on synthetic grounding alone (4,000 samples, 16 a step, conf/tiny.yaml otherwise), for
# each prompt layout (image before / after the question) and warm-start length, then greedy validation on 128
# held-out images; prints grounding accuracy per run (chance: 0.25 = one of the 4 cells; 0.5 = one of the 2
# objects). Each run is ~1-2 min on 2 cores.
#
# Usage: bash scripts/grounding_layout.sh [--out DIR] [--steps "100 200 400"] [--layouts "image_first question_first"]
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/grounding_layout
steps="100 200 400"
layouts="image_first question_first"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --layouts) layouts="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
bash scripts/setup_env.sh
export VLLM_ENABLE_V1_MULTIPROCESSING=0 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
for layout in $layouts; do
  for n in $steps; do
    dir="$out/${layout}_$n"
    if ! [ -f "$dir/done" ]; then
      rm -rf "$dir"
      mkdir -p "$dir"
      .venv/bin/python lit_triune/main.py fit -c conf/tiny.yaml --data.synthetic='{grounding: 4000}' \
        --data.val_synthetic='{grounding: 128}' --data.synthetic_layout="$layout" --model.warm_start_steps="$n" \
        --trainer.max_steps=$((n + 1)) --model.stage_reports='[after_warm_start]' --model.val_samples=0 \
        --data.weights=null \
        --trainer.default_root_dir="$dir" --trainer.logger.init_args.save_dir="$dir" > "$dir/train.log" 2>&1
      touch "$dir/done"
    fi
  done
done
printf '%-16s %6s %9s %9s\n' layout steps accuracy top-ans
for layout in $layouts; do
  for n in $steps; do
    report=$(find "$out/${layout}_$n" -name stage_reports.json | head -1)
    .venv/bin/python - "$report" "$layout" "$n" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["after_warm_start"]["sources"]["synthetic_grounding"]
print(f"{sys.argv[2]:16s} {sys.argv[3]:>6s} {m['accuracy']:9.3f} {m['top_answer']:9.2f}")
PY
  done
done
