#!/usr/bin/env bash
# The main job on the CPU default: sets up .venv, then warm-start + GRPO on the tiny model.
# Usage: bash scripts/train_tiny.sh [extra LightningCLI args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export VLLM_ENABLE_V1_MULTIPROCESSING=0 TOKENIZERS_PARALLELISM=false
exec .venv/bin/python lit_triune/main.py fit -c conf/tiny.yaml "$@"
