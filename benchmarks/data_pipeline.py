"""WebDataset shard streaming vs HF `datasets` over parquet, same samples, same per-sample work.

Each reader runs in a fresh subprocess so its peak RSS is its own. Both paths do the same work
per sample (schema validation, image decode, Qwen resize, chat template via `PromptBuilder`),
so the difference is the storage and reading path. Then both run again on 10x the data to show
how memory scales. Last line: `ratio: <webdataset samples/s / parquet samples/s>`.

    python benchmarks/data_pipeline.py [--n 1000] [--scale 10]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _make(out: Path, n: int, base: list[dict]) -> None:
    """Write n samples (base samples with fresh ids) as shards and as one Orsta-style parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lit_triune.data import ShardWriter
    from lit_triune.data.images import encode_png

    encoded = [encode_png(s["images"][0]) for s in base]
    rows = []
    with ShardWriter(out / "shards", max_count=500) as writer:
        for i in range(n):
            j = i % len(base)
            s = {**base[j], "images": [{"bytes": encoded[j], "path": None}],
                 "extra_info": {**base[j]["extra_info"], "id": f"s{i:08d}"}}
            writer.write(s)
            rows.append(s)
            if len(rows) == 2000 or i == n - 1:
                table = pa.Table.from_pylist(rows)
                if i < 2000:
                    pw = pq.ParquetWriter(out / "data.parquet", table.schema)
                pw.write_table(table)
                rows = []
    pw.close()


def _run_webdataset(root: Path) -> int:
    from lit_triune.data import PromptBuilder, ShardStream, Source, resolve_shards

    paths, counts = resolve_shards(str(root / "shards"))
    stream = ShardStream([Source("bench", tuple(paths), tuple(counts))], PromptBuilder(), batch_size=8, train=False)
    return sum(len(b) for b in stream)


def _run_parquet(root: Path) -> int:
    import datasets

    from lit_triune.data import PromptBuilder, validate_sample

    ds = datasets.Dataset.from_parquet(str(root / "data.parquet"), cache_dir=str(root / "hf_cache"))
    builder, n = PromptBuilder(), 0
    for row in ds:
        validate_sample(row)
        builder.build(row)
        n += 1
    return n


def _child(mode: str, root: Path) -> None:
    import datasets  # noqa: F401 - imports happen before the clock and the RSS baseline

    import lit_triune.data  # noqa: F401

    base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    n = (_run_webdataset if mode == "webdataset" else _run_parquet)(root)
    dt = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"mode": mode, "samples": n, "seconds": dt, "samples_per_s": n / dt, "peak_rss_mb": rss_mb,
                      "import_rss_mb": base_mb}))


def _measure(mode: str, root: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--root", str(root)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1000, help="samples in the base run")
    p.add_argument("--scale", type=int, default=10, help="growth factor for the RSS run")
    p.add_argument("--child", choices=("webdataset", "parquet"))
    p.add_argument("--root")
    args = p.parse_args()
    if args.child:
        _child(args.child, Path(args.root))
        return
    from lit_triune.data import generate

    base = generate("counting", 50, seed=0) + generate("detection", 50, seed=0)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (args.n, args.n * args.scale):
            root = Path(tmp) / f"n{n}"
            root.mkdir()
            _make(root, n, base)
            for mode in ("webdataset", "parquet"):
                results[(mode, n)] = r = _measure(mode, root)
                print(f"{mode:>10}  n={n:>7}  {r['samples_per_s']:8.1f} samples/s  peak RSS {r['peak_rss_mb']:7.1f} MB "
                      f"(after imports {r['import_rss_mb']:.1f} MB, +{r['peak_rss_mb'] - r['import_rss_mb']:.1f} MB reading)")
    for mode in ("webdataset", "parquet"):
        small, big = results[(mode, args.n)], results[(mode, args.n * args.scale)]
        grow = (big["peak_rss_mb"] - big["import_rss_mb"]) / max(small["peak_rss_mb"] - small["import_rss_mb"], 1e-3)
        print(f"{mode:>10}  at {args.scale}x data: peak RSS {small['peak_rss_mb']:.1f} -> {big['peak_rss_mb']:.1f} MB, "
              f"reading part x{grow:.2f}")
    wds, pq_ = results[("webdataset", args.n)], results[("parquet", args.n)]
    print(f"ratio: {wds['samples_per_s'] / pq_['samples_per_s']:.3f}")


if __name__ == "__main__":
    main()
