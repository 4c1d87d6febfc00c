"""Tables and figures of docs/figs_cpu.md from finished `neg bench run fig{2,3,4,5}-cpu` sweeps.

For each CPU-scale figure spec: per env config (eta, law, m) and algorithm entry, the final
greedy full-chain exact match over seeds (mean, 95% percentile-bootstrap CI, per-seed values),
how many seeds reached the report's target and the median trajectories to it, the final clean
validation loss and correct greedy prefix; and one figure of the learning curves (mean over
seeds, thin lines per seed), one panel per env config (fig4-cpu: final accuracy vs m instead).
Runs are matched by identity and seed, any code version (scoreboards.analysis.report.gather). Run from the
repository root:

    python benchmarks/figs_cpu.py [--db results/neg.sqlite] [--out docs] [SPEC ...]
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from scoreboards.analysis.report import gather
from scoreboards.analysis.stats import steps_to_target, summarize
from scoreboards.store import ResultStore
from scoreboards.sweeps.spec_model import env_label
from scoreboards.sweeps.specs import load_spec

SPECS = ("fig2-cpu", "fig3-cpu", "fig4-cpu", "fig5-cpu")
METRIC = "greedy_full_exact"


def _group_name(varied: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in varied.items()) or "default"


def table(name: str, store: ResultStore, out: Path) -> str:
    spec = load_spec(name, check_envs=False)
    target = spec.report["target"]
    results = gather(spec, store)
    found = [row for _, row in results if row is not None]
    curves = store.curves([r["key"] for r in found])
    cells: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for run, row in results:
        if row is not None:
            cells[(run.group, run.label)].append(row)
    lines = [f"### {name}: {spec.description}", "",
             (f"{len(found)} of {len(results)} runs; seeds {spec.seeds}; budget {spec.budget_trajectories:,} "
             f"trajectories; final {METRIC}: mean [95% CI] (per seed), seeds that reached {target:g} and the "
              "median trajectories to it, final clean val loss, final correct greedy prefix"), "",
             "| env config | algorithm | final accuracy | per seed | reached | traj. to target | val loss | prefix |",
             "|---|---|---|---|---|---|---|---|"]
    groups = []
    for _, varied in spec.env_configs():
        g = env_label(varied)
        groups.append((g, varied))
        for label in spec.labels:
            rows = cells.get((g, label), [])
            if not rows:
                continue
            finals = [r["final_metrics"].get(METRIC, float("nan")) for r in rows]
            s = summarize(finals)
            hits = [steps_to_target(curves.get(r["key"], []), target) for r in rows]
            reached = [h for h in hits if not math.isnan(h)]
            ttt = f"{np.median(reached):,.0f}" if reached else "-"
            loss = np.mean([r["final_metrics"].get("val_loss", float("nan")) for r in rows])
            prefix = np.mean([r["final_metrics"].get("greedy_correct_prefix_len", float("nan")) for r in rows])
            lines.append(f"| {_group_name(varied)} | {label} | {s.mean:.3f} [{s.ci_low:.3f}, {s.ci_high:.3f}] | "
                         f"{', '.join(f'{v:.3f}' for v in finals)} | {len(reached)}/{len(rows)} | {ttt} | "
                         f"{loss:.3g} | {prefix:.2f} |")
    _figure(spec, groups, cells, curves, out / f"{name.replace('-', '_')}.png")
    return "\n".join(lines)


def _figure(spec, groups, cells, curves, path: Path) -> None:
    labels = spec.labels
    colors = {lab: f"C{i}" for i, lab in enumerate(labels)}
    if "m" in spec.env_grid:  # fig4: final accuracy vs m, one panel per (eta, law)
        def panel(v: dict) -> tuple:  # the env kwargs other than m: one panel per value
            return tuple((k, x) for k, x in v.items() if k != "m")

        keys = sorted({panel(v) for _, v in groups})
        keys = sorted(keys, key=lambda k: tuple(str(x) for _, x in reversed(k)))  # rows: the last kwarg (law)
        rows = 2 if len(keys) > 4 and len(keys) % 2 == 0 else 1
        cols = len(keys) // rows
        fig, grid = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows + 0.6), squeeze=False, sharey=True)
        axes = [list(grid.flat)]
        for ax, key in zip(axes[0], keys, strict=True):
            for lab in labels:
                ms, mean, lo, hi = [], [], [], []
                for g, v in groups:
                    if panel(v) != key or not cells.get((g, lab)):
                        continue
                    vals = [r["final_metrics"].get(METRIC, float("nan")) for r in cells[(g, lab)]]
                    ms.append(v["m"])
                    mean.append(np.mean(vals))
                    lo.append(min(vals))
                    hi.append(max(vals))
                if ms:
                    ax.errorbar(ms, mean, yerr=[np.subtract(mean, lo), np.subtract(hi, mean)], marker="o",
                                capsize=3, label=lab, color=colors[lab])
            ax.set_title(", ".join(f"{k} {x}" for k, x in key), fontsize=9)
            ax.set_xlabel("horizon m")
            ax.set_ylim(-0.05, 1.05)
        for r in range(rows):
            grid[r][0].set_ylabel("final greedy full-chain exact\n(mean, min-max over seeds)", fontsize=8)
    else:
        fig, axes = plt.subplots(1, len(groups), figsize=(max(8.0, 3.6 * len(groups)), 3.2), squeeze=False, sharey=True)
        for ax, (g, v) in zip(axes[0], groups, strict=True):
            for lab in labels:
                runs = [curves.get(r["key"], []) for r in cells.get((g, lab), [])]
                if not runs:
                    continue
                for c in runs:
                    ax.plot([p["trajectories"] for p in c], [p.get(METRIC, np.nan) for p in c], color=colors[lab],
                            alpha=0.3, lw=0.8)
                n = min(len(c) for c in runs)
                xs = [runs[0][i]["trajectories"] for i in range(n)]
                ys = np.mean([[c[i].get(METRIC, np.nan) for i in range(n)] for c in runs], axis=0)
                ax.plot(xs, ys, color=colors[lab], label=lab, lw=1.8)
            ax.set_title(_group_name(v), fontsize=9)
            ax.set_xlabel("expert trajectories")
            ax.set_ylim(-0.05, 1.05)
        axes[0][0].set_ylabel("greedy full-chain exact\n(mean; thin: seeds)")
    handles = {}
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(5, max(1, len(handles))), fontsize=7)
    fig.suptitle(f"{spec.name}: {spec.env_id}, {', '.join(f'{k}={x}' for k, x in spec.env_kwargs.items())}",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("specs", nargs="*", default=list(SPECS),
                    help=f"which CPU figure specs to tabulate and plot (default: all of {', '.join(SPECS)})")
    ap.add_argument("--db", default="results/neg.sqlite",
                    help="the results database the sweeps wrote (default: %(default)s)")
    ap.add_argument("--out", default="docs", help="folder for the figures (default: %(default)s)")
    a = ap.parse_args()
    with ResultStore(a.db) as store:
        for name in a.specs:
            print(table(name, store, Path(a.out)) + "\n")


if __name__ == "__main__":
    main()
