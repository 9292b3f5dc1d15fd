"""Tables from stage reports: mean ± sd over seeds per source, in the paper's layout (rows = variants,
columns = sources) for a study, and the README's layout (rows = sources, columns = stages) for the
two-stage default run over several seeds.

sd is the sample standard deviation (n - 1); with one seed only the mean is shown.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from lit_triune.rl.report_keys import SAMPLED, has_sampled
from lit_triune.study import layout
from lit_triune.study.variants import VARIANTS

BOX_METRICS = ("iou", "iou@0.5", "iou@threshold", "parsed_boxes")  # present only for box sources
BOX_LABELS = {"iou": "mean IoU", "iou@0.5": "IoU ≥ 0.5", "iou@threshold": "IoU ≥ threshold",
              "parsed_boxes": "parsed as boxes"}  # fmt: skip
Reports = dict[str, Any]  # a stage_reports.json


@dataclass
class Stat:
    mean: float
    sd: float | None  # None with one value
    n: int
    values: list[float]


def stat(values: Iterable[float]) -> Stat | None:
    vals = [float(v) for v in values]
    if not vals:
        return None
    return Stat(statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else None, len(vals), vals)


def value(reports: Reports, stage: str, source: str, metric: str) -> float | None:
    v = (((reports.get(stage) or {}).get("sources") or {}).get(source) or {}).get(metric)
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def seed_values(runs: dict[int, Reports], stage: str, source: str, metric: str,
                minus: str | None = None) -> list[float]:
    """One value per seed that has it: `metric` at `stage`, or its change since stage `minus`."""
    out = []
    for _, reports in sorted(runs.items()):
        v = value(reports, stage, source, metric)
        base = value(reports, minus, source, metric) if minus else 0.0
        if v is not None and base is not None:
            out.append(v - base)
    return out


def source_means(runs: dict[int, Reports], stage: str, sources: list[str], metric: str,
                 minus: str | None = None) -> list[float]:
    """Per seed, the mean over `sources` (only seeds that have every source)."""
    out = []
    for seed in sorted(runs):
        vals = [seed_values({seed: runs[seed]}, stage, s, metric, minus) for s in sources]
        if vals and all(vals):
            out.append(statistics.fmean(v[0] for v in vals))
    return out


def sources_of(runs: Iterable[Reports], stage: str) -> list[str]:
    return sorted({s for r in runs for s in ((r.get(stage) or {}).get("sources") or {})})


def box_sources(runs: Iterable[Reports], stage: str) -> list[str]:
    runs = list(runs)
    return [s for s in sources_of(runs, stage) if any(value(r, stage, s, "iou") is not None for r in runs)]


# ----- formatting --------------------------------------------------------------------------------
def fmt(s: Stat | None, points: bool = False) -> str:
    """0.688 ± 0.031, or in points with a sign (+37.5 ± 3.1) for changes; '—' without values."""
    if s is None:
        return "—"
    if points:
        return f"{100 * s.mean:+.1f}" + (f" ± {100 * s.sd:.1f}" if s.sd is not None else "")
    return f"{s.mean:.3f}" + (f" ± {s.sd:.3f}" if s.sd is not None else "")


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _stats(runs: dict[int, Reports], stage: str, source: str, metric: str, minus: str | None = None) -> Stat | None:
    return stat(seed_values(runs, stage, source, metric, minus))


# ----- the study's tables ------------------------------------------------------------------------
def collect_study(out: Path) -> dict[str, dict[int, Reports]]:
    """{variant: {seed: stage reports}} of the finished RL runs under a study directory."""
    found: dict[str, dict[int, Reports]] = {}
    for variant, seed, run in layout.rl_runs(out):
        if layout.is_finished(run):
            found.setdefault(variant, {})[seed] = layout.read_stage_reports(run) or {}
    return found


def _variant_order(out: Path, found: dict[str, Any]) -> list[str]:
    meta = _study_meta(out)
    order = [v for v in meta.get("variants", []) if v in found]
    order += [v for v in VARIANTS if v in found and v not in order]
    return order + sorted(v for v in found if v not in order)


def _study_meta(out: Path) -> dict[str, Any]:
    path = Path(out) / "study.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def study_tables(study: dict[str, dict[int, Reports]], order: list[str]) -> tuple[str, dict[str, Any]]:
    """The markdown tables and their JSON: final accuracy, RL gain (final − init, the RL run's first report
    = after the warm-start), format, and for box sources IoU and parse share."""
    every = [r for runs in study.values() for r in runs.values()]
    sources = sources_of(every, "final")
    boxes = box_sources(every, "final")
    data: dict[str, Any] = {"sources": sources, "box_sources": boxes, "variants": {}}
    acc_rows, gain_rows, fmt_rows, box_rows, box_gain_rows = [], [], [], [], []
    sampled_rows, sampled_gain_rows = [], []
    sampled = f"{SAMPLED}accuracy"
    with_sampled = any(has_sampled(r, "final") for r in every)
    for variant in order:
        runs = study[variant]
        seeds = ", ".join(map(str, sorted(runs)))
        entry: dict[str, Any] = {"seeds": sorted(runs), "final": {}, "gain": {}, "after_warm_start": {}}
        for src in sources:
            box_metrics = BOX_METRICS if src in boxes else ()
            for metric in ("accuracy", "format", *box_metrics, sampled, *(f"{SAMPLED}{m}" for m in box_metrics)):
                for key, stage, minus in (("final", "final", None), ("after_warm_start", "init", None),
                                          ("gain", "final", "init")):
                    s = _stats(runs, stage, src, metric, minus)
                    if s is not None:
                        entry[key].setdefault(src, {})[metric] = asdict(s)
        mean_final = stat(source_means(runs, "final", sources, "accuracy"))
        mean_gain = stat(source_means(runs, "final", sources, "accuracy", "init"))
        entry["mean_over_sources"] = {"final": mean_final and asdict(mean_final), "gain": mean_gain and asdict(mean_gain)}
        data["variants"][variant] = entry
        acc_rows.append([variant, seeds, *(fmt(_stats(runs, "final", s, "accuracy")) for s in sources), fmt(mean_final)])
        gain_rows.append([variant, seeds, *(fmt(_stats(runs, "final", s, "accuracy", "init"), True) for s in sources),
                          fmt(mean_gain, True)])
        fmt_rows.append([variant, seeds, *(fmt(_stats(runs, "final", s, "format")) for s in sources)])
        box_rows.append([variant, seeds, *(fmt(_stats(runs, "final", s, m)) for s in boxes for m in BOX_METRICS)])
        box_gain_rows.append([variant, seeds, *(fmt(_stats(runs, "final", s, m, "init"), True) for s in boxes
                                                for m in ("iou", "parsed_boxes"))])
        if with_sampled:
            sampled_rows.append([variant, seeds, *(fmt(_stats(runs, "final", s, sampled)) for s in sources),
                                 fmt(stat(source_means(runs, "final", sources, sampled)))])
            sampled_gain_rows.append([variant, seeds, *(fmt(_stats(runs, "final", s, sampled, "init"), True)
                                                        for s in sources),
                                      fmt(stat(source_means(runs, "final", sources, sampled, "init")), True)])
    head = ["variant", "seeds"]
    parts = [
        "## Final validation accuracy\n\nGreedy decoding at the end of the RL stage, per source; mean ± sd over seeds.\n",
        md_table([*head, *sources, "mean over sources"], acc_rows),
        "\n## RL gain (final − after warm-start), accuracy points\n\nAfter warm-start = the RL run's first report "
        "(step 0), the same warmed-up policy for every variant of a seed.\n",
        md_table([*head, *sources, "mean over sources"], gain_rows),
    ]
    if with_sampled:
        parts += ["\n## Mean accuracy of sampled completions (final)\n\nThe mean over `val_samples` completions "
                  "per image sampled at the validation temperature (avg@k); mean ± sd over seeds.\n",
                  md_table([*head, *sources, "mean over sources"], sampled_rows),
                  "\n## RL gain of the sampled mean (final − after warm-start), points\n",
                  md_table([*head, *sources, "mean over sources"], sampled_gain_rows)]
    parts += [
        "\n## Format reward (final)\n",
        md_table([*head, *sources], fmt_rows),
    ]
    if boxes:
        parts += ["\n## Box sources (final)\n\nMean IoU over the box rows (0 where nothing parsed), share of rows "
                  "with IoU ≥ 0.5 and ≥ the run's IoU threshold at the end, share of answers parsed as boxes.\n",
                  md_table([*head, *(f"{s} {BOX_LABELS[m]}" for s in boxes for m in BOX_METRICS)], box_rows),
                  "\n## Box sources: change over the RL stage (points)\n",
                  md_table([*head, *(f"{s} {BOX_LABELS[m]}" for s in boxes for m in ("iou", "parsed_boxes"))],
                           box_gain_rows)]
    return "\n".join(parts) + "\n", data


def _launches(run: Path) -> list[dict[str, Any]]:
    path = Path(run) / layout.RUN_RECORD
    return json.loads(path.read_text()).get("launches", []) if path.is_file() else []


def runs_table(out: Path) -> tuple[str, list[dict[str, Any]]]:
    """Wall time, load and state of every run of the study (warm-starts included)."""
    rows, data = [], []
    runs = [(layout.WARM_START, int(p.name.split("_")[1]), p) for p in sorted((Path(out) / layout.WARM_START).glob("seed_*"))]
    runs += list(layout.rl_runs(out))
    for variant, seed, run in runs:
        launches = _launches(run)
        wall = sum(x.get("wall_time_s", 0.0) for x in launches)
        loads = [x[k][0] for x in launches for k in ("load_before", "load_after") if x.get(k)]
        done = layout.policy_ready(out, seed) if variant == layout.WARM_START else layout.is_finished(run)
        spans = [(_epoch(x["started"]), _epoch(x["started"]) + x.get("wall_time_s", 0.0)) for x in launches
                 if x.get("started")]
        data.append({"run": f"{variant}/seed_{seed}", "finished": done, "wall_time_s": round(wall, 1),
                     "launches": len(launches), "load_1min": [min(loads), max(loads)] if loads else None,
                     "span_s": [min(a for a, _ in spans), max(b for _, b in spans)] if spans else None})
        rows.append([f"{variant}/seed_{seed}", "finished" if done else "not finished", f"{wall / 60:.1f} min",
                     str(len(launches)), f"{min(loads):.1f}–{max(loads):.1f}" if loads else "—"])
    return md_table(["run", "state", "wall time", "launches", "load average (1 min)"], rows), data


def _epoch(stamp: str) -> float:
    """Seconds since the epoch of a run.json time stamp ("%Y-%m-%dT%H:%M:%S%z")."""
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z").timestamp()


def study_span_s(runs_data: list[dict[str, Any]]) -> float | None:
    """Seconds from the first launch of any run to the end of the last one: the study's wall time when it ran
    in one go (pauses between resumed invocations are included)."""
    spans = [r["span_s"] for r in runs_data if r.get("span_s")]
    return max(b for _, b in spans) - min(a for a, _ in spans) if spans else None


def _minutes(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 60:.1f} min"


def write_study(out: Path) -> Path:
    """results.md and results.json of a study directory; returns results.md."""
    out = Path(out)
    study = collect_study(out)
    meta = _study_meta(out)
    order = _variant_order(out, study)
    tables, data = study_tables(study, order) if study else ("No finished run yet.\n", {})
    runs_md, runs_data = runs_table(out)
    total = sum(r["wall_time_s"] for r in runs_data)
    header = [
        f"# Study results: {meta.get('config', '?')}\n",
        f"Made by `{meta.get('command', 'python -m lit_triune.study run ...')}` (from the repository root).",
        f"Warm-start {meta.get('warm_start_steps', '?')} steps per seed, then RL {meta.get('rl_steps', '?')} rollout "
        f"batches per variant, validation every {meta.get('val_every', '?')}; {meta.get('jobs', '?')} run(s) at a "
        f"time, {meta.get('threads', '?')} torch thread(s) each, on {meta.get('machine', {}).get('cpus', os.cpu_count())} "
        f"CPU cores; first launch to last run's end {_minutes(study_span_s(runs_data))}, summed wall time of all "
        f"runs {total / 60:.1f} min (load per run below).",
        "Variants: arXiv 2505.18129's ablations (docs/study.md). Cells: mean ± sample sd over seeds.\n",
    ]
    text = "\n".join(header) + "\n" + tables + "\n## Runs\n\n" + runs_md + "\n"
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(json.dumps({"study": meta, **data, "runs": runs_data}, indent=2))
    return out / "results.md"


# ----- the README's table: the two-stage default over seeds -------------------------------------
def collect_reproduce(out: Path) -> dict[int, tuple[Reports, dict[str, Any]]]:
    """{seed: (stage reports, run.json)} for <out>/seed_<s>/: the newest finished stage_reports.json below it."""
    found = {}
    for seed_path in sorted(Path(out).glob("seed_*")):
        reports = []
        for path in seed_path.rglob(layout.STAGE_REPORTS):
            try:
                data = json.loads(path.read_text())
            except json.JSONDecodeError:
                continue
            if "final" in data:
                reports.append((path.stat().st_mtime, data))
        if reports:
            record = seed_path / layout.RUN_RECORD
            found[int(seed_path.name.split("_")[1])] = (max(reports, key=lambda t: t[0])[1],
                                                       json.loads(record.read_text()) if record.is_file() else {})
    return found


def reproduce_table(found: dict[int, tuple[Reports, dict[str, Any]]]) -> str:
    """Rows = sources (and box metrics, format), columns = after warm-start, after RL, RL gain (mean ± sd)."""
    runs = {seed: reports for seed, (reports, _) in found.items()}
    sources = sources_of(runs.values(), "final")
    boxes = box_sources(runs.values(), "final")
    seeds = sorted(runs)
    rows = []

    def row(label: str, src: str, metric: str) -> list[str]:
        per_seed = [seed_values({s: runs[s]}, "final", src, metric, "after_warm_start") for s in seeds]
        return [label, fmt(_stats(runs, "after_warm_start", src, metric)), fmt(_stats(runs, "final", src, metric)),
                fmt(_stats(runs, "final", src, metric, "after_warm_start"), True),
                " / ".join(f"{100 * v[0]:+.1f}" if v else "—" for v in per_seed)]

    # figures over `val_samples` sampled completions per prompt (avg@k), when the runs have them, lead
    with_sampled = any(has_sampled(r, "final") for r in runs.values())
    kinds = [(SAMPLED, "(mean of sampled)"), ("", "(greedy)")] if with_sampled else [("", "")]
    for prefix, label in kinds:
        for src in sources:
            rows.append(row(f"{src} accuracy {label}".rstrip(), src, f"{prefix}accuracy"))
        for src in boxes:
            rows += [row(f"{src} {BOX_LABELS[m]} {label}".rstrip(), src, f"{prefix}{m}") for m in BOX_METRICS]
        for src in sources:
            rows.append(row(f"{src} format {label}".rstrip(), src, f"{prefix}format"))
    for src in sources:  # a share near 1 with a lower truth share: one answer to every image, not perception
        if any(value(r, "final", src, "top_answer") is not None for r in runs.values()):
            truth = stat(v for r in runs.values() if (v := value(r, "final", src, "top_truth")) is not None)
            rows.append(row(f"{src} share of images given the most common answer (truth: {fmt(truth)})", src,
                            "top_answer"))
    table = md_table(["source", "after warm-start", "after RL", "RL gain (points)", f"gain per seed ({', '.join(map(str, seeds))})"],
                     rows)
    if with_sampled:
        table += "\n\n" + headroom_table(runs, sources)
    walls = [f"seed {s}: {found[s][1].get('wall_time_s', float('nan')) / 60:.1f} min" for s in seeds]
    loads = [found[s][1].get("load_start") for s in seeds]
    note = (f"\nMean ± sample sd over seeds {', '.join(map(str, seeds))}; steps as in the config. Wall time "
            f"(`bash scripts/train_tiny.sh`, one run at a time): {'; '.join(walls)}; load average (1 min) at the "
            f"start of each run: {', '.join(str(x) for x in loads)}; {os.cpu_count()} CPU cores.\n")
    return table + "\n" + note


def headroom_table(runs: dict[int, Reports], sources: list[str]) -> str:
    """Per source and seed: greedy minus sampled accuracy after the warm-start (how much more often the policy's
    most likely answer is right than a sample of it) beside the sampled accuracy's RL gain, to see whether RL
    sharpened what the warm-start taught or taught something new. Both happen on the default: chart and
    counting gained most on the seed where their gap was near 0, OCR at chance with no gap gained nothing. No
    correlation is printed: pooled over sources it mixes unlike dynamics, and three seeds per source are too
    few."""
    rows = []
    for src in sources:
        for seed, reports in sorted(runs.items()):
            greedy = value(reports, "after_warm_start", src, "accuracy")
            sampled = value(reports, "after_warm_start", src, f"{SAMPLED}accuracy")
            final = value(reports, "final", src, f"{SAMPLED}accuracy")
            if greedy is None or sampled is None or final is None:
                continue
            rows.append([src, str(seed), f"{greedy:.3f}", f"{sampled:.3f}", f"{100 * (greedy - sampled):+.1f}",
                         f"{100 * (final - sampled):+.1f}"])
    return md_table(["source", "seed", "greedy after warm-start", "sampled after warm-start", "gap (points)",
                     "sampled RL gain (points)"], rows)


def write_reproduce(out: Path) -> Path:
    found = collect_reproduce(out)
    text = ("# The CPU default over seeds\n\nMade by `bash scripts/reproduce_table.sh` "
            "(`bash scripts/train_tiny.sh` per seed).\n\n" + (reproduce_table(found) if found else "No finished run yet.\n"))
    path = Path(out) / "table.md"
    path.write_text(text)
    return path


# ----- two sets of default runs side by side (e.g. asynchronous rollouts vs the on-policy table) -------
def reproduce_reports(path: Path) -> dict[int, Reports]:
    """{seed: stage reports} from scripts/reproduce_table.sh's output (<path>/seed_<s>/...) or from a committed
    copy of one (<path>/stage_reports_seed_<s>.json, as docs/reproduce/)."""
    found = {seed: reports for seed, (reports, _) in collect_reproduce(path).items()}
    for p in sorted(Path(path).glob("stage_reports_seed_*.json")):
        found.setdefault(int(p.stem.rsplit("_", 1)[1]), json.loads(p.read_text()))
    return found


# two-sided 95 % quantiles of Student's t by degrees of freedom (a larger df uses the nearest smaller one listed:
# the interval is then slightly wider than exact, never narrower)
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         15: 2.131, 20: 2.086, 30: 2.042}


def paired_difference(a: dict[int, Reports], b: dict[int, Reports], stage: str, source: str, metric: str,
                      margin: float = 0.03) -> tuple[str, str, str]:
    """Seeds present in both sets, paired (same seed: same data order and, for the reproduce runs, the same
    warm-start): the mean ± sd of the differences in points, its 95 % t-interval, and a verdict against
    `margin`: "within ±3" when the whole interval lies inside ±margin, "differs" when it excludes 0,
    "undecided" otherwise (too few seeds for their spread). ("—", "—", "—") with fewer than 2 pairs."""
    diffs = [va - vb for seed in sorted(set(a) & set(b))
             if (va := value(a[seed], stage, source, metric)) is not None
             and (vb := value(b[seed], stage, source, metric)) is not None]
    if len(diffs) < 2:
        return "—", "—", "—"
    mean, sd = statistics.fmean(diffs), statistics.stdev(diffs)
    df = len(diffs) - 1
    half = _T975[max(d for d in _T975 if d <= df)] * sd / math.sqrt(len(diffs))
    low, high = mean - half, mean + half
    verdict = (f"within ±{100 * margin:g}" if -margin <= low and high <= margin
               else "differs" if low > 0 or high < 0 else "undecided")
    return f"{100 * mean:+.1f} ± {100 * sd:.1f} ({len(diffs)})", f"[{100 * low:+.1f}, {100 * high:+.1f}]", verdict


def pooled_reproduce_reports(paths: list[Path]) -> dict[int, Reports]:
    """`reproduce_reports` of several directories, their seeds pooled (e.g. a committed table's seeds 0-2 and
    later runs of seeds 3-4); a seed found in two of them is an error, not silently one of the two."""
    found: dict[int, Reports] = {}
    for path in paths:
        for seed, reports in reproduce_reports(path).items():
            if seed in found:
                raise ValueError(f"seed {seed} is in more than one of {', '.join(map(str, paths))}")
            found[seed] = reports
    return found


def paired_sets(pairs: list[tuple[str, str]]) -> tuple[dict[Any, Reports], dict[Any, Reports]]:
    """Both arms of one or more pairs of reproduce_table.sh sets (each a comma-separated list of directories,
    pooled by `pooled_reproduce_reports`). One pair: keyed by seed. Several (`compare-reproduce --also`, e.g.
    both arms again at another `model.rollout_seed`): keyed (pair index, seed), since the same seed in two pairs
    is two runs of each arm; every pair's seeds then join both sides and the paired figures."""
    loaded = [[pooled_reproduce_reports([Path(d) for d in spec.split(",")]) for spec in pair] for pair in pairs]
    if len(loaded) == 1:
        return loaded[0][0], loaded[0][1]
    a, b = ({(k, seed): r for k, pair in enumerate(loaded) for seed, r in pair[side].items()} for side in (0, 1))
    return a, b


def compare_reproduce(a: dict[int, Reports], b: dict[int, Reports], names: tuple[str, str] = ("A", "B"),
                      stage: str = "final") -> str:
    """Per source: accuracy at `stage` of two sets of seeds (mean ± sd, sampled and greedy), their difference in
    points and the per-seed values; the warm-start's figures of the two sets are compared too (runs that share a
    warm-start give a difference of exactly 0 there); and the seeds both sets have, paired (`paired_difference`:
    mean ± sd of the per-seed differences, 95 % interval, verdict against ±3 points)."""
    sources = sources_of([*a.values(), *b.values()], stage)
    with_sampled = any(has_sampled(r, stage) for r in [*a.values(), *b.values()])
    kinds = [(SAMPLED, "mean of sampled"), ("", "greedy")] if with_sampled else [("", "greedy")]
    rows = []
    for prefix, label in kinds:
        for src in sources:
            metric = f"{prefix}accuracy"
            sa, sb = _stats(a, stage, src, metric), _stats(b, stage, src, metric)
            diff = f"{100 * (sa.mean - sb.mean):+.1f}" if sa and sb else "—"
            # on the seeds both sets have (a set may have more seeds than the other)
            start = [[value(runs[seed], "after_warm_start", src, metric) for seed in sorted(set(a) & set(b))]
                     for runs in (a, b)]
            same_start = ("—" if not start[0] or None in start[0] + start[1]  # e.g. `reevaluate`: final only
                          else "yes" if start[0] == start[1] else "no")
            per_seed = " / ".join(f"{' '.join(f'{v:.3f}' for v in s.values)}" if s else "—" for s in (sa, sb))
            rows.append([f"{src} accuracy ({label})", fmt(sa), fmt(sb), diff, per_seed, same_start,
                         *paired_difference(a, b, stage, src, metric)])
    header = ["source", f"{names[0]} ({stage})", f"{names[1]} ({stage})", f"{names[0]} − {names[1]} (points)",
              f"per seed: {names[0]} / {names[1]}", "same warm-start figures",
              "paired Δ per seed (points, n)", "95 % interval", "vs ±3 points"]
    return md_table(header, rows) + (f"\n\nSeeds: {names[0]} {_seed_labels(a)}, {names[1]} {_seed_labels(b)}; "
                                     f"mean ± sample sd.\n")


def _seed_labels(runs: dict[Any, Reports]) -> str:
    """[0, 1, 2], or with several pairs of sets (`compare-reproduce --also`) [0@0, 1@0, 0@1]."""
    return "[" + ", ".join(f"{key[1]}@{key[0]}" if isinstance(key, tuple) else str(key) for key in sorted(runs)) + "]"
