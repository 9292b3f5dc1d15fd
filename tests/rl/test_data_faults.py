"""Data faults are loud and located in a real fit: a wholly unreadable source inside a mix stops the run
naming the source and its file; a 5 %-corrupt source trains on, its skips warned about once per reason
and logged (`data_skipped/*`) from the first step, in the warm-start stage too."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest
from lightning.pytorch.loggers import CSVLogger
from rl_fit import fit, tiny_data, tiny_module

from lit_triune.data.shards import ShardError, ShardWriter
from lit_triune.data.stream import DataSourceError
from lit_triune.data.synthetic import generate

DAMAGED = {3, 23, 43, 63}  # of 80: 5 %


def _corrupt_source(out: Path) -> Path:
    """80 counting samples, 4 of them with a .json that is not JSON."""
    with ShardWriter(out, prefix="c", max_count=20) as w:
        for s in generate("counting", 80, seed=4):
            w.write(s)
    import io
    import tarfile

    from lit_triune.data.shards import iter_shard

    for shard in sorted(out.glob("*.tar")):
        samples = list(iter_shard(shard))
        with tarfile.open(shard, "w", format=tarfile.USTAR_FORMAT) as tar:
            for key, members in samples:
                if int(key.rsplit("-", 1)[1]) in DAMAGED:
                    members["json"] = b"{broken"
                for ext, data in members.items():
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return out


def _unreadable_source(out: Path, with_manifest: bool = True) -> Path:
    """Two shards that are not tar files; the manifest (as a copy job that lost the data would leave it)
    says they hold 20 samples each."""
    out.mkdir(parents=True)
    for i in range(2):
        (out / f"u-{i:06d}.tar").write_bytes(b"\0garbage, not a tar\n" * 100)
    if with_manifest:
        shards = [{"path": f"u-{i:06d}.tar", "count": 20, "sources": {"u": 20}, "verifiers": {"counting": 20}}
                  for i in range(2)]
        (out / "manifest.json").write_text(json.dumps({"version": 1, "shards": shards}))
    return out


def _metrics(root: Path) -> list[dict[str, str]]:
    [path] = list(root.rglob("metrics.csv"))
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_unreadable_source_stops_the_run_and_corrupt_source_is_reported_from_step_1(tmp_path, caplog):
    corrupt = _corrupt_source(tmp_path / "corrupt")
    broken = _unreadable_source(tmp_path / "broken")
    data = tiny_data(tmp_path / "cache", synthetic={"counting": 40},
                     train={"corrupt": str(corrupt), "broken": str(broken)}, weights={"broken": 0.5},
                     num_workers=1)
    module = tiny_module(warm_start_steps=1000)
    logger = CSVLogger(tmp_path, name="csv", flush_logs_every_n_steps=1)
    with caplog.at_level(logging.WARNING, logger="lit_triune.data"):
        with pytest.raises(DataSourceError) as info:
            fit(module, data, tmp_path, max_steps=1000, logger=logger)
    message = str(info.value)
    assert "data source 'broken'" in message and "u-00000" in message and "bad_shard" in message, message
    rows = _metrics(tmp_path)
    steps = sorted({int(r["step"]) for r in rows})
    assert steps and steps[-1] < 200, steps[-5:]  # early: > 40 bad draws (20 % of 200) from the broken source
    logged = [r for r in rows if r.get("data_skipped/total") not in (None, "")]
    assert logged and int(logged[0]["step"]) == 0  # logged from the first (warm-start) step on
    json_skips = [float(r["data_skipped/json"]) for r in rows if r.get("data_skipped/json") not in (None, "")]
    assert json_skips and max(json_skips) >= 1  # the corrupt source's skips, counted during the warm-start
    warnings = [r.getMessage() for r in caplog.records if r.name == "lit_triune.data"]
    assert any("(json)" in w and "'corrupt'" in w for w in warnings), warnings
    assert any("(bad_shard)" in w and "u-00000" in w for w in warnings), warnings
    assert len([w for w in warnings if "(json)" in w]) == 1  # once per reason


def test_unreadable_source_without_manifest_fails_at_setup_naming_source_and_file(tmp_path):
    broken = _unreadable_source(tmp_path / "broken", with_manifest=False)
    data = tiny_data(tmp_path / "cache", train={"broken": str(broken)})
    with pytest.raises(ShardError, match=r"data source 'broken'.*u-000000\.tar"):
        data.setup("fit")


def test_bad_fraction_settings_are_checked(tmp_path):
    with pytest.raises(ValueError, match="max_bad_fraction"):
        tiny_data(tmp_path, max_bad_fraction=1.5)
    with pytest.raises(ValueError, match="bad_fraction_window"):
        tiny_data(tmp_path, bad_fraction_window=0)
