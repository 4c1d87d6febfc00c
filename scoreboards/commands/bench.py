"""``neg bench run|report|horizon|export|list``: experiment sweeps, their reports and exports.

:func:`add_subcommands` adds them to the parser of :mod:`scoreboards.cli`; each command
imports what it needs when it runs (``neg bench --help`` loads neither torch nor matplotlib).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from scoreboards.commands.common import add_db_arg, open_store


def _spec(args: argparse.Namespace) -> Any:
    from scoreboards.sweeps.specs import load_spec, needs_download

    overrides = args.set or []
    if getattr(args, "dry_run", False):
        # A dry run never downloads: a spec that names hub weights (`hf:` expert, tokenizer or
        # preset) is validated without building its envs; the others build every env config.
        spec = load_spec(args.spec, overrides=overrides, check_envs=False)
        return spec if needs_download(spec) else load_spec(args.spec, overrides=overrides)
    return load_spec(args.spec, overrides=overrides)


def _bench_run(args: argparse.Namespace) -> int:
    from scoreboards.analysis.report import build_report
    from scoreboards.sweeps.runner import run_sweep

    spec = _spec(args)
    runs = spec.runs()
    print(f"spec `{spec.name}`: {len(runs)} runs ({len(spec.algorithms)} algorithm entries x "
          f"{len(spec.env_configs())} env configs x {len(spec.seeds)} seeds), "
          f"{spec.budget_trajectories:,} trajectories each; expected cost: {spec.cost or '-'} "
          f"({spec.gpu_hours:g} GPU-hours)")
    if args.dry_run:
        for r in runs:
            print(f"  {r.key}  {r.label:28s} {r.group:20s} seed={r.seed}")
        return 0
    if args.checkpoints and Path(args.checkpoints).exists() and not Path(args.checkpoints).is_dir():
        raise ValueError(f"--checkpoints {args.checkpoints} is a file; give a folder (one sub-folder per run)")
    with open_store(args, create=True) as store:
        s = run_sweep(spec, store, backend=args.backend, workers=args.workers, address=args.address,
                      progress=not args.no_progress, keep_checkpoints=args.keep_checkpoints,
                      checkpoints=args.checkpoints,
                      cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run, threads=args.threads,
                      force=args.force)
        print(s.line())
        if s.skipped and not args.force:
            print(f"  ({s.skipped} skipped: finished under this code and configuration; --force runs them again)")
        if s.done and s.train_time:
            print(f"training time {s.train_time:.1f} s over {s.workers} worker(s); idle or in the harness "
                  f"{100 * s.overhead:.1f}% of worker capacity")
        for f in s.failures:
            print(f"  failed: {f}", file=sys.stderr)
        if not args.no_report:
            rep = build_report(spec, store)
            print(rep.tables)
            print(f"\nreport: {rep.path}")
    return 1 if s.failed else 0


def _bench_report(args: argparse.Namespace) -> int:
    from scoreboards.analysis.report import build_report

    spec = _spec(args)
    with open_store(args) as store:
        rep = build_report(spec, store, out_dir=args.out, seed=args.seed, figures=not args.no_figures)
    print(rep.tables)
    print(f"\nreport: {rep.path} ({rep.found}/{rep.expected} runs; {len(rep.figures)} figures)")
    if horizon := next((p for p in rep.figures if p.name == "horizon.png"), None):
        print(f"horizon figure: {horizon}")
    return 0


def _bench_horizon(args: argparse.Namespace) -> int:
    from scoreboards.analysis.horizon_fit import N_BOOT, analyse, scaling_variable
    from scoreboards.analysis.horizon_report import markdown, plot_horizon
    from scoreboards.analysis.report import gather
    from scoreboards.sweeps.specs import load_spec

    spec = load_spec(args.spec, overrides=args.set or [], check_envs=False)
    with open_store(args) as store:
        results = gather(spec, store)
        curves = store.curves([r["key"] for _, r in results if r is not None])
    groups = analyse(spec, results, curves,
                     n_boot=args.boot if args.boot is not None else spec.report.get("horizon_boot", N_BOOT))
    print(markdown(groups, spec))
    if args.png:
        what = {"period": "period", "eta": "noise"}.get(scaling_variable(spec) or "m", "horizon")
        p = plot_horizon(groups, args.png, title=f"{spec.name}: trajectories to target vs {what}")
        print(f"\nfigure: {p}")
    return 0


def _bench_export(args: argparse.Namespace) -> int:
    from scoreboards.analysis.report import gather

    with open_store(args) as store:
        keys = None
        if args.spec:
            keys = [row["key"] for _, row in gather(_spec(args), store) if row is not None]
        paths = store.export(args.out, fmt=args.format, keys=keys, force=args.force)
    for p in paths:
        print(p)
    return 0


def _bench_list(args: argparse.Namespace) -> int:
    from scoreboards.sweeps.specs import load_spec, shipped_specs

    for name in shipped_specs():
        s = load_spec(name, check_envs=False)
        print(f"{name:10s} {len(s.runs()):4d} runs, {s.budget_trajectories:>9,} traj/run, "
              f"{s.gpu_hours:6g} GPU-h  {s.cost}")
        print(f"           {s.description}")
    return 0


def _spec_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="a shipped spec's name (neg bench list) or a path to a spec .toml")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a spec value, e.g. --set budget.trajectories=5000 --set seeds=[0] "
                        "--set train.device=\"cuda\" (repeatable)")
    add_db_arg(p)


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="experiment sweeps: run specs, report and export results")
    bsub = bench.add_subparsers(dest="bench_command", metavar="ACTION")

    p = bsub.add_parser("run", help="run every unfinished run of a spec (resumes interrupted runs)")
    _spec_args(p)
    p.add_argument("--backend", choices=("local", "ray"), default="local")
    p.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray instance)")
    p.add_argument("--workers", type=int, default=None,
                   help="local worker processes (default: one per CPU core, or 1 for GPU runs; 0: train in this process)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per local worker (default: CPU cores / workers; 1 on a CPU shared "
                        "with other jobs: several threads contending for busy cores run ~10x slower)")
    p.add_argument("--cpus-per-run", type=float, default=1.0, help="Ray CPUs per run")
    p.add_argument("--gpus-per-run", type=float, default=0.0, help="Ray GPUs per run")
    p.add_argument("--keep-checkpoints", action="store_true", help="keep finished runs' checkpoints")
    p.add_argument("--checkpoints", default=None, metavar="DIR",
                   help="checkpoint folder (default: <db dir>/checkpoints); on a multi-node Ray cluster, a "
                        "folder every node mounts at the same path, so a retried run resumes on any node")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-report", action="store_true", help="skip the report at the end")
    p.add_argument("--dry-run", action="store_true", help="list the runs and their keys, run nothing")
    p.add_argument("--force", action="store_true",
                   help="run finished runs again too, from scratch; each new result replaces the old one")
    p.set_defaults(func=_bench_run)

    p = bsub.add_parser("report", help="tables (printed) and plots + report.md for a spec")
    _spec_args(p)
    p.add_argument("--out", default=None, help="output directory (default: <db dir>/<spec>/)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--no-figures", action="store_true")
    p.set_defaults(func=_bench_report)

    p = bsub.add_parser("horizon", help="horizon scaling of a spec's results: verdict table (printed) and figure",
                        description="Trajectories to target vs the horizon m (or the period P, or eta: "
                                    "[report] scaling) of a spec that sweeps it with [eval] stop_at: censored "
                                    "(Tobit) fits, exponential vs polynomial, with bootstrap CIs over seeds, and "
                                    "the theory's shapes scaled to each algorithm (the first section of "
                                    "`neg bench report`).")
    _spec_args(p)
    p.add_argument("--png", default=None, help="write the figure here")
    p.add_argument("--boot", type=int, default=None,
                   help="bootstrap resamples (default: the spec's [report] horizon_boot)")
    p.set_defaults(func=_bench_horizon)

    p = bsub.add_parser("export", help="export finished runs (a spec's, or all) to CSV, JSON or Parquet")
    p.add_argument("spec", nargs="?", default=None, help="only this spec's runs (default: all)")
    p.add_argument("--format", choices=("csv", "json", "parquet"), default="csv")
    p.add_argument("--out", default="results/export",
                   help="output directory; refused if it already holds files, unless --force")
    p.add_argument("--force", action="store_true", help="overwrite the files of an earlier export in --out")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="spec overrides, as for run")
    add_db_arg(p)
    p.set_defaults(func=_bench_export)

    p = bsub.add_parser("list", help="the shipped specs and their expected cost")
    p.set_defaults(func=_bench_list)
    bench.set_defaults(func=lambda a: bench.print_help() or 2)
