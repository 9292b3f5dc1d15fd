"""Figures of a study (matplotlib, Agg): per-source validation accuracy (and IoU for box sources) over the
RL stage per variant, ViT gradient growth (first / last block) with the ViT trained vs frozen, and the IoU
threshold per variant. Curves are means over seeds with a ± sd band; the recipe's IoU threshold stages are
shaded and labelled. `draw_study(out)` writes `<out>/figures/*.png` and returns the paths.
"""

from __future__ import annotations

import math
import re
import statistics
import sys
from pathlib import Path
from typing import Any

import matplotlib

if "matplotlib.pyplot" not in sys.modules:  # a script: no display; a notebook keeps its own backend
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from lit_triune.study import configs, layout  # noqa: E402
from lit_triune.study.scalars import Series, load_scalars, run_config, stages, val_series  # noqa: E402
from lit_triune.study.variants import VARIANTS  # noqa: E402

IOU_TAG = "train/iou_threshold"  # DynamicIoUThreshold's log key
VIT_RATIO_TAG = "grad_norm/vit/first_over_last"  # LayerGradNorm
VIT_LAYER = re.compile(r"^grad_norm/vit/layer_(\d+)$")
STAGE_COLOURS = ("#dbe9f6", "#b7d3ec", "#8fbbe0", "#6aa3d4")
AGGREGATE_SOURCES = ("all", "other")  # SourceMetrics' extra rows, not sources


class StudyRuns:
    """The RL runs of a study directory with their scalars, loaded once."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.runs: dict[str, dict[int, Path]] = {}
        for variant, seed, run in layout.rl_runs(self.out):
            if any(layout.log_dir(run).rglob("events.out.tfevents.*")):
                self.runs.setdefault(variant, {})[seed] = run
        self.variants = [v for v in VARIANTS if v in self.runs] + sorted(v for v in self.runs if v not in VARIANTS)
        self._scalars: dict[Path, dict[str, Series]] = {}

    def scalars(self, run: Path) -> dict[str, Series]:
        if run not in self._scalars:
            self._scalars[run] = load_scalars(layout.log_dir(run))
        return self._scalars[run]

    def sources(self, metric: str = "accuracy") -> list[str]:
        found: set[str] = set()
        for seeds in self.runs.values():
            for run in seeds.values():
                head = f"val/{metric}/"
                found |= {t[len(head):] for t in self.scalars(run) if t.startswith(head)}
                reports = layout.read_stage_reports(run) or {}
                for stage in reports.values():
                    found |= {s for s, m in (stage.get("sources") or {}).items() if metric in m}
        return sorted(s for s in found if s not in AGGREGATE_SOURCES and "/" not in s)

    def val(self, variant: str, metric: str, source: str) -> list[Series]:
        return [s for run in self.runs[variant].values() if (s := val_series(run, metric, source, self.scalars(run)))]

    def tag(self, variant: str, tag: str) -> list[Series]:
        return [self.scalars(run)[tag] for run in self.runs[variant].values() if tag in self.scalars(run)]

    def freeze(self, variant: str) -> str:
        cfg = run_config(next(iter(self.runs[variant].values())))
        return str(configs.get(cfg, "model.freeze", "vision"))

    def iou_stages(self) -> tuple[str, list[tuple[int, float]]]:
        """The stages of the first variant (recipe first) whose threshold changed during its run."""
        for variant in self.variants:
            for series in self.tag(variant, IOU_TAG):
                found = stages(series)
                if len(found) > 1:
                    return variant, found
        return "", []

    def last_step(self) -> int:
        steps = [max(s) for v in self.variants for run in self.runs[v].values()
                 for s in [val_series(run, "accuracy", src, self.scalars(run)) for src in self.sources()[:1]] if s]
        return max(steps, default=0)


def mean_band(series: list[Series]) -> tuple[list[int], list[float], list[float]]:
    """Steps, mean and sample sd over the seeds that have each step (sd 0 with one seed)."""
    steps = sorted({k for s in series for k in s})
    means, sds = [], []
    for k in steps:
        vals = [s[k] for s in series if k in s and math.isfinite(s[k])]
        means.append(statistics.fmean(vals) if vals else math.nan)
        sds.append(statistics.stdev(vals) if len(vals) > 1 else 0.0)
    return steps, means, sds


def _colour(runs: StudyRuns, variant: str) -> Any:
    if variant == "recipe":
        return "black"
    return plt.get_cmap("tab10")(runs.variants.index(variant) % 10)


def _label(variant: str) -> str:
    return f"{variant} ({VARIANTS[variant].summary})" if variant in VARIANTS and variant != "recipe" else variant


def _plot_mean(ax: Any, runs: StudyRuns, variant: str, series: list[Series], log: bool = False) -> bool:
    if not series:
        return False
    steps, mean, sd = mean_band(series)
    colour = _colour(runs, variant)
    ax.plot(steps, mean, marker="o", markersize=3, linewidth=2.2 if variant == "recipe" else 1.4, color=colour,
            label=_label(variant))
    lo = [max(m - s, 1e-12) if log else m - s for m, s in zip(mean, sd, strict=True)]
    ax.fill_between(steps, lo, [m + s for m, s in zip(mean, sd, strict=True)], color=colour, alpha=0.15, linewidth=0)
    return True


def mark_stages(ax: Any, found: list[tuple[int, float]], end: int, label: bool) -> None:
    """Shaded spans, one per IoU threshold stage, with a vertical line at each change; labels on request."""
    for i, (start, value) in enumerate(found):
        stop = found[i + 1][0] if i + 1 < len(found) else max(end, start + 1)
        ax.axvspan(start, stop, color=STAGE_COLOURS[i % len(STAGE_COLOURS)], alpha=0.45, linewidth=0, zorder=0)
        if i:
            ax.axvline(start, color="grey", linestyle="--", linewidth=0.8, zorder=0)
        if label:
            ax.text(start + 0.01 * max(end, 1), 0.97, f"IoU ≥ {value:g}", transform=ax.get_xaxis_transform(),
                    rotation=90, va="top", ha="left", fontsize=8, color="#27496d")


def _stage_note(variant: str, found: list[tuple[int, float]]) -> str:
    if not found:
        return "no IoU threshold schedule logged"
    parts = ", ".join(f"{v:g} from batch {s}" for s, v in found)
    return f"shaded: the IoU threshold stages of {variant} ({parts}); fixed-threshold variants keep one value"


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def val_figure(runs: StudyRuns, metric: str, sources: list[str], title: str, path: Path) -> Path | None:
    if not sources:
        return None
    ncols = 2 if len(sources) in (2, 4) else min(3, len(sources))
    nrows = math.ceil(len(sources) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.8 * nrows), squeeze=False)
    stage_variant, found = runs.iou_stages()
    end = runs.last_step()
    for i, src in enumerate(sources):
        ax = axes[i // ncols][i % ncols]
        mark_stages(ax, found, end, label=i == 0)
        for variant in runs.variants:
            _plot_mean(ax, runs, variant, runs.val(variant, metric, src))
        ax.set_title(src)
        ax.set_xlabel("RL rollout batch")
        ax.set_ylabel(metric)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    for j in range(len(sources), nrows * ncols):
        axes[j // ncols][j % ncols].axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(3, max(1, len(labels))), fontsize=8,
               bbox_to_anchor=(0.5, -0.02 - 0.03 * math.ceil(len(labels) / 3)))
    n_seeds = max((len(s) for s in runs.runs.values()), default=0)
    fig.suptitle(f"{title}: mean over seeds (up to {n_seeds}), band ± sd\n{_stage_note(stage_variant, found)}",
                 fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def vit_figure(runs: StudyRuns, path: Path) -> Path:
    """Left: first-over-last ViT block gradient norm over the RL stage; right: the per-block profile
    (mean over logged steps and seeds). Variants whose RL stage freezes the ViT log no ViT gradient."""
    fig, (ax, prof) = plt.subplots(1, 2, figsize=(12, 4.2))
    stage_variant, found = runs.iou_stages()
    mark_stages(ax, found, runs.last_step(), label=True)
    trained = [v for v in runs.variants if runs.freeze(v) in ("language", "none")]
    frozen = [v for v in runs.variants if v not in trained]
    drawn = False
    for variant in trained:
        drawn |= _plot_mean(ax, runs, variant, runs.tag(variant, VIT_RATIO_TAG), log=True)
        layers: dict[int, list[float]] = {}
        for run in runs.runs[variant].values():
            for tag, series in runs.scalars(run).items():
                m = VIT_LAYER.match(tag)
                if m and series:
                    layers.setdefault(int(m.group(1)), []).append(statistics.fmean(series.values()))
        if layers:
            idx = sorted(layers)
            prof.plot(idx, [statistics.fmean(layers[i]) for i in idx], marker="o", color=_colour(runs, variant),
                      label=_label(variant))
    note = []
    if frozen:
        note.append(f"ViT frozen in the RL stage, no ViT gradients: {', '.join(frozen)}")
    if not drawn:
        note.append("no ViT gradient norm logged" + ("" if trained else " (no variant here trains the ViT)"))
    if note:
        ax.text(0.02, 0.04, "\n".join(note), transform=ax.transAxes, fontsize=8, va="bottom",
                bbox={"facecolor": "white", "edgecolor": "grey", "alpha": 0.9})
    if drawn:
        ax.set_yscale("log")
        ax.legend(fontsize=8, loc="upper right")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_title("ViT gradient norm, first block / last block")
    ax.set_xlabel("RL rollout batch")
    ax.grid(alpha=0.3)
    prof.set_title("ViT gradient norm per block (mean over logged steps, seeds)")
    prof.set_xlabel("ViT block index")
    prof.grid(alpha=0.3)
    if prof.lines:
        prof.set_yscale("log")
        prof.legend(fontsize=8)
    else:
        prof.text(0.5, 0.5, "no ViT gradients logged", transform=prof.transAxes, ha="center")
    fig.suptitle(f"LayerGradNorm, mean over seeds, band ± sd; {_stage_note(stage_variant, found)}", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def threshold_figure(runs: StudyRuns, path: Path) -> Path | None:
    if not any(runs.tag(v, IOU_TAG) for v in runs.variants):
        return None
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for variant in runs.variants:
        series = runs.tag(variant, IOU_TAG)
        if series:
            steps = sorted(series[0])
            ax.step(steps, [series[0][k] for k in steps], where="post", color=_colour(runs, variant),
                    label=_label(variant), linewidth=2.2 if variant == "recipe" else 1.2)
    ax.set_title("IoU threshold of box rewards over the RL stage (DynamicIoUThreshold)")
    ax.set_xlabel("RL rollout batch")
    ax.set_ylabel("IoU threshold")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def draw_study(out: Path, fig_dir: Path | None = None) -> list[Path]:
    runs = StudyRuns(out)
    if not runs.variants:
        return []
    fig_dir = Path(fig_dir) if fig_dir is not None else Path(out) / "figures"
    box = [s for s in runs.sources("iou")]
    paths = [
        val_figure(runs, "accuracy", runs.sources("accuracy"), "Validation accuracy per source",
                   fig_dir / "val_accuracy.png"),
        val_figure(runs, "iou", box, "Validation mean IoU per box source", fig_dir / "val_iou.png"),
        vit_figure(runs, fig_dir / "vit_grad_norm.png"),
        threshold_figure(runs, fig_dir / "iou_threshold.png"),
    ]
    return [p for p in paths if p is not None]
