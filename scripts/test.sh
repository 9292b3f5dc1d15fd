#!/usr/bin/env bash
# The test command: sets up .venv (first run installs everything), then runs the whole suite.
# Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export VLLM_ENABLE_V1_MULTIPROCESSING=0 TOKENIZERS_PARALLELISM=false
exec .venv/bin/python -m pytest "$@"
