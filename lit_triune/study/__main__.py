"""`python -m lit_triune.study {run,table,figures,reproduce-table,compare-reproduce,reevaluate}` (docs/study.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_OUT = "runs/study"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lit_triune.study", description=__doc__.splitlines()[0],
                                allow_abbrev=False)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="warm-start per seed, then every variant's RL stage; then table and figures",
                         allow_abbrev=False)
    run.add_argument("--config", default="conf/tiny.yaml", help="the base config (default: %(default)s)")
    run.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    run.add_argument("--variants", nargs="+", default=["all"], help="variant names or 'all' (default: all)")
    run.add_argument("--out", default=DEFAULT_OUT)
    run.add_argument("--rl-steps", type=int, help="RL rollout batches (default: trainer.max_steps - model.warm_start_steps)")
    run.add_argument("--warm-start-steps", type=int, help="supervised steps (default: model.warm_start_steps)")
    run.add_argument("--val-every", type=int, help="validate every N rollout batches (default: RL steps // 5)")
    run.add_argument("--jobs", type=int, default=1, help="runs at a time (default: %(default)s)")
    run.add_argument("--threads", type=int, help="torch threads per run (default: CPU cores // jobs)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a base-config value before the variants' edits, e.g. --set model.max_new_tokens=8")
    run.add_argument("--dry-run", action="store_true", help="print the plan and write nothing")
    for name, help_ in (("table", "results.md / results.json from a study directory"),
                        ("figures", "<out>/figures/*.png from a study directory")):
        sp = sub.add_parser(name, help=help_, allow_abbrev=False)
        sp.add_argument("--out", default=DEFAULT_OUT)
    rep = sub.add_parser("reproduce-table", help="the README's table from scripts/reproduce_table.sh's runs",
                         allow_abbrev=False)
    rep.add_argument("--out", default="runs/reproduce")
    cmp_ = sub.add_parser("compare-reproduce", allow_abbrev=False,
                          help="two sets of reproduce_table.sh runs side by side (per-source accuracy, difference)")
    cmp_.add_argument("a", help="a reproduce_table.sh --out directory, or a committed copy (docs/reproduce); "
                      "several, comma-separated, pool their seeds")
    cmp_.add_argument("b", help="the same, for the other set")
    cmp_.add_argument("--names", nargs=2, default=["A", "B"], metavar=("NAME_A", "NAME_B"))
    cmp_.add_argument("--also", nargs=2, action="append", default=[], metavar=("A", "B"),
                      help="another pair of sets compared the same way (e.g. both arms again at another "
                      "model.rollout_seed): its seeds join both sides and the paired figures, as <seed>@<k> "
                      "(k = 1, 2, ... in the order given; the first pair's seeds are <seed>@0)")
    ree = sub.add_parser("reevaluate", allow_abbrev=False,
                         help="reproduce_table.sh runs' final checkpoints scored on more held-out images "
                         "(<out>/stage_reports_seed_<s>.json, for compare-reproduce)")
    ree.add_argument("runs", help="a reproduce_table.sh --out directory (<runs>/seed_<s>/.../checkpoints/last.ckpt)")
    ree.add_argument("--out", required=True)
    ree.add_argument("--val", action="append", required=True, metavar="TASK=N",
                     help="N fresh images of a synthetic task (repeat for more tasks)")
    ree.add_argument("--seeds", type=int, nargs="+", help="only these seeds (default: every seed with a checkpoint)")
    ree.add_argument("--data-seed", type=int, help="which images (default: lit_triune.study.reevaluate.DEFAULT_DATA_SEED)")
    ree.add_argument("--val-samples", type=int, help="sampled completions per image (default: the run's val_samples)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        from lit_triune.study.runner import Settings, layout, plan, run_study
        from lit_triune.study.variants import resolve

        settings = Settings(config=Path(args.config), seeds=args.seeds, variants=resolve(args.variants),
                            out=Path(args.out), rl_steps=args.rl_steps, warm_start_steps=args.warm_start_steps,
                            val_every=args.val_every, jobs=args.jobs, threads=args.threads, overrides=args.overrides)
        if args.dry_run:
            jobs, steps = plan(settings)
            print(steps)
            for job in jobs:
                print(f"{job.name:32s} -> {job.run / layout.CONFIG}" + (f"  (after {job.after})" if job.after else ""))
            return 0
        results = run_study(settings)
        failed = [name for name, o in results.items() if not o.ok]
        _tables_and_figures(Path(args.out))
        if failed:
            print(f"{len(failed)} run(s) did not finish: {', '.join(failed)}; rerun the same command to resume them.")
        return 1 if failed else 0
    if args.command == "table":
        from lit_triune.study.table import write_study

        path = write_study(Path(args.out))
        print(path.read_text())
        print(f"wrote {path} and {path.with_suffix('.json')}")
        return 0
    if args.command == "figures":
        from lit_triune.study.figures import draw_study

        for path in draw_study(Path(args.out)):
            print("wrote", path)
        return 0
    if args.command == "compare-reproduce":
        from lit_triune.study.table import compare_reproduce, paired_sets

        try:
            a, b = paired_sets([(args.a, args.b), *map(tuple, args.also)])
        except ValueError as err:
            print(f"compare-reproduce: {err}", file=sys.stderr)
            return 2
        print(compare_reproduce(a, b, tuple(args.names)))
        return 0
    if args.command == "reevaluate":
        from lit_triune.data.synthetic import parse_counts
        from lit_triune.study.reevaluate import DEFAULT_DATA_SEED, reevaluate_runs

        try:
            reevaluate_runs(Path(args.runs), Path(args.out), parse_counts(args.val, "--val"),
                            DEFAULT_DATA_SEED if args.data_seed is None else args.data_seed, seeds=args.seeds,
                            val_samples=args.val_samples)
        except ValueError as err:
            print(f"reevaluate: {err}", file=sys.stderr)
            return 2
        return 0
    from lit_triune.study.table import write_reproduce

    path = write_reproduce(Path(args.out))
    print(path.read_text())
    print(f"wrote {path}")
    return 0


def _tables_and_figures(out: Path) -> None:
    from lit_triune.study.figures import draw_study
    from lit_triune.study.table import write_study

    path = write_study(out)
    print(path.read_text())
    figures = draw_study(out)
    print(f"study directory: {out}\n  table:   {path} (+ results.json)\n  figures: "
          + ", ".join(str(p) for p in figures)
          + f"\n  each run: python lit_triune/main.py fit -c {out}/<variant>/seed_<s>/config.yaml; "
          f"tensorboard --logdir {out}")


if __name__ == "__main__":
    sys.exit(main())
