#!/usr/bin/env bash
# The README's table over seeds: runs the CPU default as users run it (`bash scripts/train_tiny.sh`, both
# stages) once per seed, one run at a time, into <out>/seed_<s>/, then writes <out>/table.md (per source and
# stage: after warm-start, after RL, RL gain; mean ± sd over seeds; box IoU / parse-share rows; wall times).
# A seed whose run already finished (a stage_reports.json with its final report) is not run again.
#
# Usage: bash scripts/reproduce_table.sh [--out DIR] [--seeds "0 1 2"] [-- extra LightningCLI args for every run]
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/reproduce
seeds="0 1 2"
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "unknown option $1 (usage: $0 [--out DIR] [--seeds \"0 1 2\"] [-- extra LightningCLI args])" >&2; exit 2 ;;
  esac
done

finished() {  # a final stage report anywhere below the seed's directory
  [ -d "$1" ] && find "$1" -name stage_reports.json -exec grep -l '"final"' {} + 2>/dev/null | grep -q .
}

for seed in $seeds; do
  dir="$out/seed_$seed"
  if finished "$dir"; then
    echo "== seed $seed: finished earlier ($dir), skipped"
    continue
  fi
  mkdir -p "$dir"
  echo "== seed $seed -> $dir"
  load_start=$(cut -d' ' -f1 /proc/loadavg)
  start=$(date +%s)
  bash scripts/train_tiny.sh --seed_everything="$seed" --model.seed="$seed" \
    --trainer.default_root_dir="$dir" --trainer.logger.init_args.save_dir="$dir" ${extra[@]+"${extra[@]}"} \
    2>&1 | tee "$dir/train.log"
  wall=$(( $(date +%s) - start ))
  printf '{"seed": %s, "wall_time_s": %s, "load_start": "%s", "load_end": "%s", "command": "bash scripts/train_tiny.sh --seed_everything=%s --model.seed=%s ..."}\n' \
    "$seed" "$wall" "$load_start" "$(cut -d' ' -f1 /proc/loadavg)" "$seed" "$seed" > "$dir/run.json"
done

export VLLM_ENABLE_V1_MULTIPROCESSING=0 TOKENIZERS_PARALLELISM=false
.venv/bin/python -m lit_triune.study reproduce-table --out "$out"
