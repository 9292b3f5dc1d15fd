"""The printed stage table flags what accuracy and format hide: box sources that write no boxes and
sources that give one answer to every image."""

from __future__ import annotations

import pytest

from lit_triune.rl.stage_report import format_table, one_answer_flag, report_stages


def _row(table: str, source: str) -> str:
    return next(line for line in table.splitlines() if line.startswith(source))


def test_table_flags_one_answer_for_every_image_but_not_a_source_whose_truth_is_one_answer():
    means = {
        "collapsed": {"count": 64, "accuracy": 0.52, "format": 1.0, "reward": 0.62, "top_answer": 1.0, "top_truth": 0.52},
        "learning": {"count": 64, "accuracy": 0.9, "format": 1.0, "reward": 1.0, "top_answer": 0.4, "top_truth": 0.35},
        "constant_truth": {"count": 64, "accuracy": 1.0, "format": 1.0, "reward": 1.1, "top_answer": 1.0, "top_truth": 1.0},
    }
    table = format_table("final", 80, means, 0.99)
    assert "one answer for 100% of images (most common truth: 52%)" in _row(table, "collapsed")
    assert "<-" not in _row(table, "learning") and "<-" not in _row(table, "constant_truth")
    assert " 0.40" in _row(table, "learning")  # the top-answer share is printed for every source
    assert one_answer_flag({"accuracy": 0.5}) == ""  # reports without the figures (older runs) print no flag


def test_table_flags_box_sources_whose_answers_are_not_boxes():
    means = {"synthetic_grounding": {"count": 10, "accuracy": 0.0, "format": 1.0, "reward": 0.1, "box_count": 10,
                                     "iou": 0.0, "iou@0.5": 0.0, "iou@threshold": 0.0, "parsed_boxes": 0.3,
                                     "top_answer": 0.5, "top_truth": 0.3}}
    row = _row(format_table("final", 5, means, 0.85), "synthetic_grounding")
    assert "only 30% of answers are boxes" in row and " 0.300" in row


def test_report_stages_reads_true_false_or_a_list():
    assert report_stages(True) == ("init", "after_warm_start", "final") and report_stages(False) == ()
    assert report_stages(["final", "after_warm_start"]) == ("after_warm_start", "final")
    with pytest.raises(ValueError, match="unknown stages"):
        report_stages(["end"])


def test_sampled_figures_print_as_a_second_table_and_log_beside_the_greedy_ones(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    from lit_triune.rl.stage_report import log_report, markdown_table, sampled_view

    means = {"synthetic_ocr": {"count": 64, "accuracy": 0.5, "format": 1.0, "reward": 0.6,
                               "sampled/count": 512, "sampled/accuracy": 0.25, "sampled/format": 0.9,
                               "sampled/reward": 0.34}}
    view = sampled_view(means)
    assert view == {"synthetic_ocr": {"count": 512, "accuracy": 0.25, "format": 0.9, "reward": 0.34}}
    assert sampled_view({"a": {"accuracy": 1.0}}) == {}  # greedy-only reports (val_samples 0) have no view
    greedy, sampled = format_table("final", 3, means, 0.85), format_table("final", 3, view, 0.85, kind="sampled")
    assert "greedy" in greedy.splitlines()[1] and "sampled" in sampled.splitlines()[1]
    assert _row(sampled, "synthetic_ocr").split()[1:3] == ["512", "0.250"]
    assert "sampled" in markdown_table("final", 3, view, 0.85, kind="sampled").splitlines()[0]
    csv = CSVLogger(tmp_path, name="csv")
    log_report([csv], "final", 3, means, 0.85)
    csv.save()
    header = (tmp_path / "csv" / "version_0" / "metrics.csv").read_text().splitlines()[0]
    assert "stage/final/sampled/accuracy/synthetic_ocr" in header and "stage/final/accuracy/synthetic_ocr" in header
    assert "sampled/count" not in header


def test_titles_name_the_fixed_validation_threshold_beside_the_training_one():
    from lit_triune.rl.stage_report import markdown_table

    means = {"synthetic_ocr": {"count": 8, "accuracy": 0.5, "format": 1.0, "reward": 0.6}}
    assert "IoU threshold 0.99 (training), box rewards scored at 0.50" in format_table("final", 3, means, 0.99,
                                                                                       scored_at=0.5)
    assert "IoU threshold 0.85;" in format_table("final", 3, means, 0.85)  # no fixed threshold: one figure
    assert "IoU threshold 0.85;" in format_table("final", 3, means, 0.85, scored_at=0.85)
    assert "scored at 0.50" in markdown_table("final", 3, means, 0.99, scored_at=0.5).splitlines()[0]
