"""notebooks/training_dynamics.ipynb on a study directory alone (LIT_TRIUNE_STUDY_DIR): its single-run part
reads the study's recipe run, its study section writes the table and the study's figures."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from fake_study import make_study
from nbclient import NotebookClient

from lit_triune.study import layout

NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "training_dynamics.ipynb"


def test_notebook_draws_a_study(tmp_path: Path, kernel_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    study = make_study(tmp_path / "study", seeds=(0, 1))
    monkeypatch.delenv("LIT_TRIUNE_LOG_DIR", raising=False)
    monkeypatch.setenv("LIT_TRIUNE_STUDY_DIR", str(study))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    work = tmp_path / "cwd"  # no runs/ here: only the study directory can be read
    work.mkdir()
    NotebookClient(nb, kernel_name=kernel_name, timeout=300, resources={"metadata": {"path": str(work)}}).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    recipe = layout.run_dir(study, "recipe", 0)
    assert f"LOG_DIR = {recipe.resolve()}" in text
    assert (recipe / "figures" / "reward_accuracy.png").exists()  # the single-run part, on the recipe run
    for name in ("val_accuracy.png", "val_iou.png", "vit_grad_norm.png", "iou_threshold.png"):
        assert f"wrote {study / 'figures' / name}" in text
        assert (study / "figures" / name).stat().st_size > 10000
    assert (study / "results.md").exists() and "STUDY_DIR not set" not in text
