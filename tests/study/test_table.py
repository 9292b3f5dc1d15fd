"""The tables on hand-made stage reports, with the mean ± sd worked out by hand in the comments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lit_triune.study import layout
from lit_triune.study.table import collect_reproduce, collect_study, fmt, stat, write_reproduce, write_study


def _report(init: dict[str, dict[str, float]], final: dict[str, dict[str, float]] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"init": {"step": 0, "sources": init}}
    if final is not None:
        out["final"] = {"step": 10, "iou_threshold": 0.99, "sources": final}
    return out


def _write(run: Path, reports: dict[str, Any]) -> None:
    layout.log_dir(run).mkdir(parents=True, exist_ok=True)
    (layout.log_dir(run) / layout.STAGE_REPORTS).write_text(json.dumps(reports))


def _box(acc: float, iou: float, parsed: float) -> dict[str, float]:
    return {"accuracy": acc, "format": 1.0, "reward": acc, "count": 4, "iou": iou, "iou@0.5": float(iou >= 0.5),
            "iou@threshold": 0.0, "parsed_boxes": parsed, "box_count": 4}


@pytest.fixture
def study(tmp_path: Path) -> Path:
    # recipe, 3 seeds. chart accuracy final 0.5 / 0.6 / 0.7 from 0.4 each:
    #   mean 0.6, sd = sqrt((0.01 + 0 + 0.01) / 2) = 0.1; gains 0.1 / 0.2 / 0.3 -> +20.0 ± 10.0 points
    # grounding (a box source): iou 0.3 / 0.5 / 0.7 -> 0.500 ± 0.200; parsed 1.0 / 1.0 / 0.7 -> mean 0.9,
    #   sd = sqrt((0.01 + 0.01 + 0.04) / 2) = sqrt(0.03) = 0.1732; accuracy 0 / 0.25 / 0.5 -> 0.250 ± 0.250
    #   from 0 each -> +25.0 ± 25.0; iou from 0.1 each -> +40.0 ± 20.0 points
    for seed, (chart, iou, parsed, acc) in enumerate([(0.5, 0.3, 1.0, 0.0), (0.6, 0.5, 1.0, 0.25), (0.7, 0.7, 0.7, 0.5)]):
        _write(layout.run_dir(tmp_path, "recipe", seed), _report(
            {"synthetic_chart": {"accuracy": 0.4, "format": 1.0}, "synthetic_grounding": _box(0.0, 0.1, 0.5)},
            {"synthetic_chart": {"accuracy": chart, "format": 1.0}, "synthetic_grounding": _box(acc, iou, parsed)}))
    # freeze_none: seed 0 finished (chart 0.25 from 0.5 -> -25.0, no ±), seed 1 interrupted (no final): left out
    _write(layout.run_dir(tmp_path, "freeze_none", 0), _report(
        {"synthetic_chart": {"accuracy": 0.5, "format": 1.0}, "synthetic_grounding": _box(0.0, 0.1, 0.5)},
        {"synthetic_chart": {"accuracy": 0.25, "format": 0.5}, "synthetic_grounding": _box(0.0, 0.0, 0.0)}))
    _write(layout.run_dir(tmp_path, "freeze_none", 1), _report({"synthetic_chart": {"accuracy": 0.9}}, None))
    return tmp_path


def test_stat_and_fmt() -> None:
    s = stat([0.5, 0.6, 0.7])
    assert s is not None and s.mean == pytest.approx(0.6) and s.sd == pytest.approx(0.1) and s.n == 3
    assert fmt(s) == "0.600 ± 0.100"
    assert fmt(stat([0.1, 0.2, 0.3]), points=True) == "+20.0 ± 10.0"
    assert fmt(stat([0.25])) == "0.250" and fmt(None) == "—"


def test_study_table(study: Path) -> None:
    assert {v: sorted(r) for v, r in collect_study(study).items()} == {"recipe": [0, 1, 2], "freeze_none": [0]}
    text = write_study(study).read_text()
    lines = text.splitlines()
    acc = lines.index("## Final validation accuracy")
    header = next(line for line in lines[acc:] if line.startswith("| variant"))
    assert header == "| variant | seeds | synthetic_chart | synthetic_grounding | mean over sources |"
    # mean over sources per seed: (0.5 + 0)/2, (0.6 + 0.25)/2, (0.7 + 0.5)/2 = 0.25, 0.425, 0.6 -> 0.425 ± 0.175
    assert "| recipe | 0, 1, 2 | 0.600 ± 0.100 | 0.250 ± 0.250 | 0.425 ± 0.175 |" in lines
    assert "| freeze_none | 0 | 0.250 | 0.000 | 0.125 |" in lines  # recipe first: the study order
    # gains: chart +20.0 ± 10.0, grounding +25.0 ± 25.0; mean over sources per seed (0.1 + 0)/2, (0.2 + 0.25)/2,
    # (0.3 + 0.5)/2 = 0.05, 0.225, 0.4 -> 0.225, sd sqrt((0.175² + 0 + 0.175²) / 2) = 0.175
    assert "| recipe | 0, 1, 2 | +20.0 ± 10.0 | +25.0 ± 25.0 | +22.5 ± 17.5 |" in lines
    assert "| freeze_none | 0 | -25.0 | +0.0 | -12.5 |" in lines
    # box table: iou, iou@0.5 (0, 1, 1 -> 0.667 ± 0.577), iou@threshold, parsed
    assert "| recipe | 0, 1, 2 | 0.500 ± 0.200 | 0.667 ± 0.577 | 0.000 ± 0.000 | 0.900 ± 0.173 |" in lines
    assert "| recipe | 0, 1, 2 | +40.0 ± 20.0 | +40.0 ± 17.3 |" in lines  # parsed: 0.5 -> 1, 1, 0.7
    data = json.loads((study / "results.json").read_text())
    assert data["box_sources"] == ["synthetic_grounding"]
    chart = data["variants"]["recipe"]["final"]["synthetic_chart"]["accuracy"]
    assert chart["values"] == [0.5, 0.6, 0.7] and chart["sd"] == pytest.approx(0.1)
    assert data["variants"]["recipe"]["gain"]["synthetic_chart"]["accuracy"]["mean"] == pytest.approx(0.2)
    runs = {r["run"]: r["finished"] for r in data["runs"]}
    assert runs == {"freeze_none/seed_0": True, "freeze_none/seed_1": False, "recipe/seed_0": True,
                    "recipe/seed_1": True, "recipe/seed_2": True}


def test_study_table_without_box_sources(tmp_path: Path) -> None:
    _write(layout.run_dir(tmp_path, "recipe", 0), _report({"a": {"accuracy": 0.0, "format": 1.0}},
                                                          {"a": {"accuracy": 1.0, "format": 1.0}}))
    text = write_study(tmp_path).read_text()
    assert "## Box sources" not in text and "| recipe | 0 | 1.000 | 1.000 |" in text
    assert "sampled" not in text  # greedy-only reports: no sampled tables


def test_study_tables_add_the_sampled_means_when_the_reports_have_them(tmp_path: Path) -> None:
    # two seeds: sampled accuracy 0.2 -> 0.4 and 0.3 -> 0.4 (+20, +10 -> +15.0 ± 7.1); greedy 0.5 -> 0.5
    for seed, before in enumerate((0.2, 0.3)):
        _write(layout.run_dir(tmp_path, "recipe", seed), _report(
            {"a": {"accuracy": 0.5, "format": 1.0, "sampled/accuracy": before}},
            {"a": {"accuracy": 0.5, "format": 1.0, "sampled/accuracy": 0.4}}))
    lines = write_study(tmp_path).read_text().splitlines()
    gain = lines.index("## RL gain of the sampled mean (final − after warm-start), points")
    assert "| recipe | 0, 1 | +15.0 ± 7.1 | +15.0 ± 7.1 |" in lines[gain:]
    final = lines.index("## Mean accuracy of sampled completions (final)")
    assert "| recipe | 0, 1 | 0.400 ± 0.000 | 0.400 ± 0.000 |" in lines[final:gain]
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["variants"]["recipe"]["gain"]["a"]["sampled/accuracy"]["mean"] == pytest.approx(0.15)


def test_reproduce_table(tmp_path: Path) -> None:
    # seed s: counting 0.3 -> 0.5 / 0.4 -> 0.7 (gains +20, +30 -> +25.0 ± 7.1); seed 1's interrupted older try
    # (version_0, no final) is ignored, its newest finished report (version_1) counts
    for seed, (before, after) in enumerate([(0.3, 0.5), (0.4, 0.7)]):
        d = tmp_path / f"seed_{seed}" / "tiny" / f"version_{seed}"
        d.mkdir(parents=True)
        (d / layout.STAGE_REPORTS).write_text(json.dumps({
            "after_warm_start": {"step": 5, "sources": {"synthetic_counting": {"accuracy": before, "format": 1.0},
                                                        "synthetic_grounding": _box(0.0, 0.2, 0.5)}},
            "final": {"step": 9, "sources": {"synthetic_counting": {"accuracy": after, "format": 1.0},
                                             "synthetic_grounding": _box(0.5, 0.6, 1.0)}}}))
        (tmp_path / f"seed_{seed}" / layout.RUN_RECORD).write_text(json.dumps({"wall_time_s": 60.0 * (seed + 1),
                                                                               "load_start": "1.5"}))
    (tmp_path / "seed_1" / "tiny" / "version_0").mkdir()
    (tmp_path / "seed_1" / "tiny" / "version_0" / layout.STAGE_REPORTS).write_text(json.dumps({"init": {}}))
    assert sorted(collect_reproduce(tmp_path)) == [0, 1]
    text = write_reproduce(tmp_path).read_text()
    assert "| synthetic_counting accuracy | 0.350 ± 0.071 | 0.600 ± 0.141 | +25.0 ± 7.1 | +20.0 / +30.0 |" in text
    assert "| synthetic_grounding mean IoU | 0.200 ± 0.000 | 0.600 ± 0.000 | +40.0 ± 0.0 | +40.0 / +40.0 |" in text
    assert "| synthetic_grounding parsed as boxes | 0.500 ± 0.000 | 1.000 ± 0.000 | +50.0 ± 0.0 | +50.0 / +50.0 |" in text
    assert "seed 0: 1.0 min; seed 1: 2.0 min" in text


def test_study_span_runs_from_the_first_launch_to_the_last_end(tmp_path: Path) -> None:
    # two runs launched in parallel at 12:00:00 (100 s) and 12:00:30 (200 s), one relaunched at 12:10:00
    # (50 s): the span is 12:00:00 -> 12:10:50 = 650 s; summed wall time 350 s
    from lit_triune.study.table import runs_table, study_span_s

    def launch(start: str, wall: float) -> dict[str, Any]:
        return {"what": "fit", "started": f"2026-11-30T{start}+0000", "wall_time_s": wall,
                "load_before": [1.0, 1.0, 1.0], "load_after": [2.0, 1.0, 1.0]}

    for variant, launches in (("recipe", [launch("12:00:00", 100.0)]),
                              ("off_policy", [launch("12:00:30", 200.0), launch("12:10:00", 50.0)])):
        run = layout.run_dir(tmp_path, variant, 0)
        run.mkdir(parents=True)
        (run / layout.RUN_RECORD).write_text(json.dumps({"launches": launches}))
    _, data = runs_table(tmp_path)
    assert sum(r["wall_time_s"] for r in data) == 350.0
    assert study_span_s(data) == 650.0
    assert study_span_s([]) is None


def test_reproduce_table_leads_with_sampled_figures_when_the_runs_have_them(tmp_path: Path) -> None:
    # one seed: greedy counting 0.5 -> 0.5, sampled 0.25 -> 0.375 (+12.5); grounding sampled IoU 0.1 -> 0.3
    d = tmp_path / "seed_0" / "tiny" / "version_0"
    d.mkdir(parents=True)

    def figures(greedy: float, sampled: float, iou: float) -> dict[str, Any]:
        box = _box(0.0, iou, 1.0)
        return {"synthetic_counting": {"accuracy": greedy, "format": 1.0, "sampled/accuracy": sampled,
                                       "sampled/format": 0.9},
                "synthetic_grounding": {**_box(0.0, 0.2, 1.0), **{f"sampled/{k}": v for k, v in box.items()}}}

    (d / layout.STAGE_REPORTS).write_text(json.dumps({
        "after_warm_start": {"step": 5, "sources": figures(0.5, 0.25, 0.1)},
        "final": {"step": 9, "sources": figures(0.5, 0.375, 0.3)}}))
    lines = write_reproduce(tmp_path).read_text().splitlines()
    rows = [line for line in lines if line.startswith("| synthetic_")]
    assert rows[0] == "| synthetic_counting accuracy (mean of sampled) | 0.250 | 0.375 | +12.5 | +12.5 |"
    assert "| synthetic_grounding mean IoU (mean of sampled) | 0.100 | 0.300 | +20.0 | +20.0 |" in rows
    assert "| synthetic_counting accuracy (greedy) | 0.500 | 0.500 | +0.0 | +0.0 |" in rows
    assert rows.index("| synthetic_counting accuracy (greedy) | 0.500 | 0.500 | +0.0 | +0.0 |") > rows.index(
        "| synthetic_grounding mean IoU (mean of sampled) | 0.100 | 0.300 | +20.0 | +20.0 |")
    # the headroom table: counting's greedy 0.5 vs sampled 0.25 after the warm-start is a 25-point gap
    assert "| synthetic_counting | 0 | 0.500 | 0.250 | +25.0 | +12.5 |" in lines


def test_compare_reproduce_reads_run_directories_and_committed_copies(tmp_path: Path) -> None:
    # A: a reproduce_table.sh output (seed_<s>/.../stage_reports.json); B: a committed copy
    # (stage_reports_seed_<s>.json). Same warm-start figures, counting 0.5/0.7 (A) vs 0.6/0.6 (B): +0.0 points.
    from lit_triune.study.table import compare_reproduce, reproduce_reports

    def reports(final: float) -> dict[str, Any]:
        return {"after_warm_start": {"sources": {"synthetic_counting": {"accuracy": 0.3}}},
                "final": {"sources": {"synthetic_counting": {"accuracy": final}}}}

    runs, copy = tmp_path / "runs", tmp_path / "copy"
    for seed, (a, b) in enumerate([(0.5, 0.6), (0.7, 0.6)]):
        d = runs / f"seed_{seed}" / "tiny" / "version_0"
        d.mkdir(parents=True)
        (d / layout.STAGE_REPORTS).write_text(json.dumps(reports(a)))
        copy.mkdir(exist_ok=True)
        (copy / f"stage_reports_seed_{seed}.json").write_text(json.dumps(reports(b)))
    a, b = reproduce_reports(runs), reproduce_reports(copy)
    assert sorted(a) == sorted(b) == [0, 1]
    text = compare_reproduce(a, b, ("async", "on-policy"))
    # paired: differences -0.1, +0.1 -> mean 0, sd 14.1 points, half-width 12.706 * 14.1 / sqrt(2) = 127.1
    assert ("| synthetic_counting accuracy (greedy) | 0.600 ± 0.141 | 0.600 ± 0.000 | +0.0 | 0.500 0.700 / 0.600 0.600 "
            "| yes | +0.0 ± 14.1 (2) | [-127.1, +127.1] | undecided |") in text
    # on the seeds both sets have: a seed only one set has does not make the warm-starts differ
    assert "| yes |" in compare_reproduce({0: a[0]}, b).splitlines()[2]
    b[1]["after_warm_start"]["sources"]["synthetic_counting"]["accuracy"] = 0.2
    assert "| no |" in compare_reproduce(a, b).splitlines()[2]
    assert "| yes |" in compare_reproduce({0: a[0]}, b).splitlines()[2]


def test_paired_difference_verdicts() -> None:
    from lit_triune.study.table import paired_difference

    def runs(values: list[float]) -> dict[int, dict[str, Any]]:
        return {s: {"final": {"sources": {"x": {"accuracy": v}}}} for s, v in enumerate(values)}

    base = runs([0.5, 0.6, 0.7, 0.4, 0.55])
    close = runs([0.505, 0.61, 0.695, 0.41, 0.55])  # differences 0.5, 1, -0.5, 1, 0 points
    assert paired_difference(close, base, "final", "x", "accuracy")[2] == "within ±3"
    lower = runs([0.40, 0.52, 0.58, 0.31, 0.44])  # 9 to 12 points below on every seed
    mean, interval, verdict = paired_difference(lower, base, "final", "x", "accuracy")
    assert verdict == "differs" and mean.startswith("-10.") and mean.endswith("(5)")
    noisy = runs([0.6, 0.5, 0.8, 0.3, 0.55])  # +10, -10, +10, -10, 0
    assert paired_difference(noisy, base, "final", "x", "accuracy")[2] == "undecided"
    assert paired_difference(runs([0.5]), base, "final", "x", "accuracy") == ("—", "—", "—")


def test_pooled_reproduce_reports_joins_seeds_and_refuses_a_seed_twice(tmp_path: Path) -> None:
    from lit_triune.study.table import pooled_reproduce_reports

    first, second = tmp_path / "first", tmp_path / "second"
    for d, seeds in ((first, (0, 1)), (second, (2,))):
        d.mkdir()
        for seed in seeds:
            (d / f"stage_reports_seed_{seed}.json").write_text(json.dumps({"final": {"sources": {}}}))
    assert sorted(pooled_reproduce_reports([first, second])) == [0, 1, 2]
    (second / "stage_reports_seed_1.json").write_text("{}")
    with pytest.raises(ValueError, match="seed 1 is in more than one"):
        pooled_reproduce_reports([first, second])


def test_compare_reproduce_pools_pairs_of_sets_given_with_also(tmp_path: Path, capsys) -> None:
    # two pairs of sets with the same seeds (e.g. both arms again at another rollout_seed): their seeds are
    # four runs of each arm, paired within their pair
    from lit_triune.study.__main__ import main as study

    def copy(name: str, values: list[float]) -> str:
        d = tmp_path / name
        d.mkdir()
        for seed, v in enumerate(values):
            (d / f"stage_reports_seed_{seed}.json").write_text(
                json.dumps({"final": {"sources": {"synthetic_counting": {"accuracy": v}}}}))
        return str(d)

    args = ["compare-reproduce", copy("a", [0.50, 0.60]), copy("b", [0.52, 0.60]),
            "--also", copy("a2", [0.70, 0.40]), copy("b2", [0.70, 0.41])]
    assert study(args) == 0
    out = capsys.readouterr().out
    # each arm's mean over its 4 runs, in key order (pair, seed); differences -2, 0, 0, -1 points: n 4
    assert ("| 0.550 ± 0.129 | 0.557 ± 0.123 | -0.7 | 0.500 0.600 0.700 0.400 / 0.520 0.600 0.700 0.410 | — "
            "| -0.7 ± 1.0 (4) | [-2.3, +0.8] | within ±3 |") in out
    assert "Seeds: A [0@0, 1@0, 0@1, 1@1], B [0@0, 1@0, 0@1, 1@1]" in out
    assert study(args[:3]) == 0 and "(2) |" in capsys.readouterr().out  # without --also: the first pair alone
