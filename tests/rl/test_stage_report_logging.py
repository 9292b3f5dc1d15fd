"""Stage reports reach TensorBoard as a markdown table (text), not as one-point charts."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugin_util import markdown_to_safe_html

from lit_triune.rl.stage_report import log_report, markdown_table

MEANS = {
    "synthetic_chart": {"accuracy": 0.6875, "format": 1.0, "reward": 0.7875, "count": 64.0},
    "synthetic_grounding": {"accuracy": 0.25, "format": 1.0, "reward": 0.35, "count": 64.0, "iou": 0.3,
                            "iou@0.5": 0.28, "iou@threshold": 0.2, "parsed_boxes": 0.5, "box_count": 64.0},
}  # fmt: skip


def test_markdown_table_has_a_row_per_source_and_blank_box_cells_elsewhere() -> None:
    text = markdown_table("final", 120, MEANS, 0.99)
    assert text.startswith("**validation: final** · step 120 · IoU threshold 0.99")
    assert "| `synthetic_chart` | 64 | 0.688 | 1.000 | 0.787 | – | – | – | – |" in text
    assert "| `synthetic_grounding` | 64 | 0.250 | 1.000 | 0.350 | 0.300 | 0.280 | 0.200 | 0.500 |" in text
    html = markdown_to_safe_html(text)  # what TensorBoard's text view shows
    assert "<table>" in html and html.count("<tr>") == 3


def test_tensorboard_gets_text_other_loggers_get_scalars(tmp_path: Path) -> None:
    tb, csv = TensorBoardLogger(tmp_path, name="tb"), CSVLogger(tmp_path, name="csv")
    log_report([tb, csv], "after_warm_start", 100, MEANS, 0.85)
    tb.experiment.flush()
    csv.save()
    acc = EventAccumulator(tb.log_dir, size_guidance={"tensors": 0})
    acc.Reload()
    assert acc.Tags()["scalars"] == []  # no one-point charts
    (event,) = acc.Tensors("stage_reports/after_warm_start/text_summary")
    assert event.step == 100 and "`synthetic_grounding`" in event.tensor_proto.string_val[0].decode()
    header = (Path(csv.log_dir) / "metrics.csv").read_text().splitlines()[0]
    assert "stage/after_warm_start/accuracy/synthetic_chart" in header
    assert "stage/after_warm_start/count/synthetic_chart" not in header
