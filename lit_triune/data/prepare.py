"""`lit-triune-prepare`: build shard sets (synthetic, Orsta parquet, COCO, JSONL) and filter them.

    lit-triune-prepare synthetic --task counting --n 2000 --difficulty easy --out data/counting
    lit-triune-prepare orsta --parquet orsta/*.parquet --out data/orsta
    lit-triune-prepare coco --annotations ann.json --images imgs/ --task detection --source coco --out data/coco
    lit-triune-prepare jsonl --input qa.jsonl --images imgs/ --source geo --out data/geo
    lit-triune-prepare jsonl --input qa.jsonl --source geo --val-fraction 0.1 --seed 0 --out data/geo  # data/geo/{train,val}
    lit-triune-prepare filter --input data/orsta --out data/orsta_filtered
    lit-triune-prepare check --input data/orsta data/coco [--report problems.json]

Invalid input stops the command with the shard, key, field and reason; exit status 2. `check` (and
`filter`, before it writes anything) reads every shard to the end and lists every bad sample.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from lit_triune.data.schema import SampleError, validate_sample
from lit_triune.data.shards import (
    Manifest,
    ShardError,
    ShardWriter,
    decode_raw,
    find_shards,
    iter_shard,
    resolve_shards,
)


def write_shards(samples: Iterable[dict[str, Any]], out: str | Path, *, prefix: str = "shard",
                 shard_size: int = 1000) -> Manifest:
    with ShardWriter(out, prefix=prefix, max_count=shard_size) as writer:
        for sample in samples:
            writer.write(sample)
    return writer.manifest


def check_shards(spec: str | list[str]) -> tuple[int, list[dict[str, Any]]]:
    """(samples read, problems): every shard read to its end, every sample validated with its images
    decoded. A problem is {"shard", "key", "field", "reason"}; an unreadable tar, a manifest whose count
    disagrees with its shard, and ids repeated across shards are problems too."""
    paths, manifest_counts = find_shards(spec)
    problems: list[dict[str, Any]] = []
    first_seen: dict[str, str] = {}  # key -> shard
    total = 0
    for path in paths:
        n = 0
        try:
            for key, members in iter_shard(path):
                n += 1
                try:
                    sample = decode_raw((key, members), path)
                    validate_sample(sample, check_images=True)
                except SampleError as err:
                    problems.append({"shard": path, "key": key, "field": err.field, "reason": err.reason})
                if key in first_seen:
                    problems.append({"shard": path, "key": key, "field": "extra_info.id",
                                     "reason": f"duplicate id: also in {first_seen[key]}"})
                first_seen.setdefault(key, path)
        except ShardError as err:
            problems.append({"shard": path, "key": None, "field": "<tar>", "reason": str(err)})
        total += n
        if path in manifest_counts and manifest_counts[path] != n:
            problems.append({"shard": path, "key": None, "field": "<manifest>",
                             "reason": f"manifest lists {manifest_counts[path]} samples, the shard yields {n}"})
    return total, problems


def format_problems(total: int, problems: list[dict[str, Any]]) -> str:
    lines = [f"{p['shard']}" + (f" key {p['key']!r}" if p["key"] is not None else "") + f": {p['field']}: {p['reason']}"
             for p in problems]
    bad = len({(p["shard"], p["key"]) for p in problems})
    shards = len({p["shard"] for p in problems})
    lines.append(f"{bad} bad samples or shards ({len(problems)} problems) in {shards} shards; {total} samples read")
    return "\n".join(lines)


def read_shards(spec: str | list[str]) -> Iterator[dict[str, Any]]:
    """Every sample of a shard set, validated, images as {"bytes", "path"}; errors name shard and key."""
    paths, _ = resolve_shards(spec)
    for path in paths:
        for raw in iter_shard(path):
            yield decode_raw(raw, path)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lit-triune-prepare", description=__doc__.split("\n")[0], allow_abbrev=False)
    sub = p.add_subparsers(dest="cmd", required=True)
    check = sub.add_parser("check", help="list every bad sample of a shard set; exit 2 if there is any",
                           allow_abbrev=False)
    check.add_argument("--input", nargs="+", required=True, help="shard dirs or globs")
    check.add_argument("--report", default=None, help="also write the problems as JSON here")
    for name in ("synthetic", "orsta", "coco", "jsonl", "filter"):
        s = sub.add_parser(name, allow_abbrev=False)
        s.add_argument("--out", required=True, help="output shard directory")
        s.add_argument("--shard-size", type=int, default=1000, help="samples per shard")
        if name != "filter":
            s.add_argument("--val-fraction", type=float, default=0.0,
                           help="hold out this share of the samples (by id, deterministic): writes <out>/train and "
                                "<out>/val instead of <out>")
        if name == "synthetic":
            from lit_triune.data.synthetic import DIFFICULTIES, PROMPT_LAYOUTS, TASKS

            s.add_argument("--task", required=True, choices=sorted(TASKS))
            s.add_argument("--n", type=int, required=True)
            s.add_argument("--difficulty", default="easy", choices=DIFFICULTIES)
            s.add_argument("--seed", type=int, default=0, help="generation seed, and the split's")
            s.add_argument("--image-size", type=int, default=112)
            s.add_argument("--layout", default="image_first", choices=PROMPT_LAYOUTS,
                           help="image before or after the question in the user turn")
        elif name == "orsta":
            s.add_argument("--parquet", nargs="+", required=True)
            s.add_argument("--seed", type=int, default=0, help="seed of the --val-fraction split")
        elif name == "coco":
            s.add_argument("--annotations", required=True)
            s.add_argument("--images", required=True)
            s.add_argument("--task", default="detection", choices=("detection", "grounding"))
            s.add_argument("--source", default="coco")
            s.add_argument("--seed", type=int, default=0, help="seed of the --val-fraction split")
        elif name == "jsonl":
            s.add_argument("--input", required=True, help="one JSON object a line: image, question, answer, ...")
            s.add_argument("--images", default=None,
                           help="folder the `image` paths are relative to (default: the JSONL file's folder)")
            s.add_argument("--source", default="jsonl", help="data_source name (metrics are kept per source)")
            s.add_argument("--verifier", default="mathverify")
            s.add_argument("--seed", type=int, default=0, help="seed of the --val-fraction split")
        else:
            s.add_argument("--input", nargs="+", required=True, help="shard dirs or globs")
            s.add_argument("--seed", type=int, default=0)
            s.add_argument("--report", default=None, help="also write the report as JSON here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from lit_triune.data import convert
    from lit_triune.data.filters import filter_samples, format_report

    try:
        if args.cmd in ("check", "filter"):
            total, problems = check_shards(args.input)
            if args.cmd == "check" or problems:
                print(format_problems(total, problems), file=sys.stderr if problems else sys.stdout)
                if args.cmd == "check" and args.report:
                    Path(args.report).write_text(json.dumps({"samples": total, "problems": problems}, indent=1))
                return 2 if problems else 0
        make: Callable[[], Iterable[dict[str, Any]]] | None = None
        if args.cmd == "synthetic":
            from lit_triune.data.synthetic import iter_samples

            def make() -> Iterable[dict[str, Any]]:
                return iter_samples(args.task, args.n, seed=args.seed, difficulty=args.difficulty,
                                    image_size=args.image_size, layout=args.layout)
        elif args.cmd == "orsta":
            def make() -> Iterable[dict[str, Any]]:
                return (s for path in args.parquet for s in convert.convert_orsta_parquet(path))
        elif args.cmd == "coco":
            def make() -> Iterable[dict[str, Any]]:
                return convert.convert_coco(args.annotations, args.images, task=args.task, source=args.source)
        elif args.cmd == "jsonl":
            images = args.images if args.images is not None else str(Path(args.input).parent)

            def make() -> Iterable[dict[str, Any]]:
                return convert.convert_jsonl(args.input, images, source=args.source, verifier=args.verifier)
        if make is not None and args.val_fraction:
            from lit_triune.data.split import write_split

            parts = write_split(make, args.out, args.val_fraction, args.seed, prefix=args.cmd,
                                shard_size=args.shard_size)
            for part, manifest in parts.items():
                info = manifest.to_json()
                print(f"{part}: wrote {info['total']} samples in {len(info['shards'])} shards to "
                      f"{Path(args.out) / part}  by source: {info['by_source']}")
            return 0
        if make is not None:
            samples: Iterable[dict[str, Any]] = make()
        else:
            kept, report = filter_samples(read_shards(args.input), seed=args.seed)
            print(format_report(report))
            if args.report:
                Path(args.report).write_text(json.dumps(report, indent=1))
            samples = kept
        manifest = write_shards(samples, args.out, prefix=args.cmd, shard_size=args.shard_size)
    except (SampleError, ShardError, ValueError, FileNotFoundError) as err:
        print(f"lit-triune-prepare {args.cmd}: {err}", file=sys.stderr)
        return 2
    info = manifest.to_json()
    print(f"wrote {info['total']} samples in {len(info['shards'])} shards to {args.out}")
    print(f"by source: {info['by_source']}  by verifier: {info['by_verifier']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
