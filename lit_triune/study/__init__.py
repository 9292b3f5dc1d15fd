"""The V-Triune ablation study on a config (docs/study.md): one warm-start per seed, each variant's RL stage
from it, a results table in the paper's layout and figures.

    python -m lit_triune.study run --config conf/tiny.yaml --seeds 0 1 2 --variants all --out runs/study
    python -m lit_triune.study table --out runs/study
    python -m lit_triune.study figures --out runs/study

Modules, one concept each: `layout` (where a study keeps its runs and their state), `configs` (the dict
edits that make a stage's config), `variants` (the paper's ablations as config edits), `runner` (plan,
resume, parallel subprocesses), `scalars` (TensorBoard and stage-report reading), `table` (mean ± sd
tables), `figures` (matplotlib).
"""
