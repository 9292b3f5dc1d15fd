#!/usr/bin/env bash
# The paper's ablations (arXiv 2505.18129) on the CPU default, 3 seeds each (docs/study.md): per seed one
# supervised warm-start, exported, then the RL stage of every variant from it, two runs at a time; then the
# results table (runs/study/results.md) and figures (runs/study/figures/*.png).
# Rerun the same command to resume an interrupted study: finished runs are skipped, others resume.
# Usage: bash scripts/study.sh [more runner options, e.g. --rl-steps 100 --val-every 20 --out runs/study_short]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export VLLM_ENABLE_V1_MULTIPROCESSING=0 TOKENIZERS_PARALLELISM=false
exec .venv/bin/python -m lit_triune.study run --config conf/tiny.yaml --seeds 0 1 2 --variants all \
  --out runs/study --jobs 2 "$@"
