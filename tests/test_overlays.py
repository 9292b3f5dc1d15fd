"""An overlay's trainer.callbacks replaces the base's list: the CLI warns and names what is dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from lit_triune.overlays import config_files, replaced_callbacks, warn_replaced_callbacks

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "conf" / "tiny.yaml")


def test_config_files_in_order() -> None:
    assert config_files(["fit", "-c", "a.yaml", "--config=b.yaml", "--config", "c.yaml", "--x=1"]) == [
        "a.yaml", "b.yaml", "c.yaml"]


def test_overlay_listing_one_callback_names_the_dropped(tmp_path: Path) -> None:
    overlay = tmp_path / "mine.yaml"
    overlay.write_text("trainer:\n  callbacks:\n    - class_path: triune_callbacks.SourceMetrics\n")
    ((path, base, dropped),) = replaced_callbacks(["fit", "-c", TINY, "-c", str(overlay)])
    assert (path, base) == (str(overlay), TINY)
    assert dropped == ["DynamicIoUThreshold", "RolloutSamplesLogger", "LayerGradNorm", "ModelCheckpoint"]
    with pytest.warns(UserWarning, match="dropped DynamicIoUThreshold, RolloutSamplesLogger, LayerGradNorm"):
        warn_replaced_callbacks(["fit", "-c", TINY, "-c", str(overlay)])


def test_shipped_overlays_keep_the_base_callbacks() -> None:
    for overlay in [*(ROOT / "conf" / "ablations").glob("*.yaml"), ROOT / "conf" / "examples" / "own_data.yaml"]:
        for base in ("tiny.yaml", "orsta.yaml"):
            assert replaced_callbacks(["-c", str(ROOT / "conf" / base), "-c", str(overlay)]) == [], overlay
