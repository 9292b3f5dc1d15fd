"""Figures of a study drawn from a scripted study directory: the files, and the numbers they are drawn from."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_study import STEPS, make_study

from lit_triune.study import layout
from lit_triune.study.figures import StudyRuns, draw_study, mean_band
from lit_triune.study.scalars import stages, val_series


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_study(tmp_path_factory.mktemp("study"))


def test_val_series_puts_reports_and_validation_on_one_axis(study: Path) -> None:
    series = val_series(layout.run_dir(study, "recipe", 0), "accuracy", "synthetic_counting")
    # init report at batch 0, validation after batches 5, 10, 15, 20 (logged at 4, 9, ...), final report at 20
    assert sorted(series) == [0, 5, 10, 15, 20]
    assert series[0] == 0.2 and series[20] == pytest.approx(0.9)


def test_mean_band() -> None:
    steps, mean, sd = mean_band([{0: 0.2, 5: 0.4}, {0: 0.4, 5: 0.4, 10: 1.0}])
    assert steps == [0, 5, 10] and mean == pytest.approx([0.3, 0.4, 1.0]) and sd == pytest.approx([0.1414, 0.0, 0.0], abs=1e-4)


def test_runs_and_stages(study: Path) -> None:
    runs = StudyRuns(study)
    assert runs.variants == ["recipe", "freeze_none", "iou_fixed_0.5"]
    assert runs.sources() == ["synthetic_counting", "synthetic_grounding"]  # `all` is not a source
    assert runs.sources("iou") == ["synthetic_grounding"]
    assert runs.iou_stages() == ("recipe", [(0, 0.85), (2, 0.95), (5, 0.99)])
    assert runs.freeze("freeze_none") == "none" and runs.last_step() == STEPS
    assert stages({0: 0.5, 7: 0.5}) == [(0, 0.5)]


def test_draw_study(study: Path) -> None:
    paths = draw_study(study)
    assert [p.name for p in paths] == ["val_accuracy.png", "val_iou.png", "vit_grad_norm.png", "iou_threshold.png"]
    for path in paths:
        assert path.parent == study / "figures" and path.stat().st_size > 10000, path


def test_draw_study_with_the_vit_frozen_everywhere(tmp_path: Path) -> None:
    study = make_study(tmp_path / "s", seeds=(0,))
    import shutil

    shutil.rmtree(study / "freeze_none")
    paths = draw_study(study, tmp_path / "figs")
    assert (tmp_path / "figs" / "vit_grad_norm.png") in paths  # drawn, saying there is no ViT gradient
    assert draw_study(tmp_path / "empty") == []
