"""Tables and the figure of docs/gsm8k_cpu.md from a finished `neg bench run gsm8k-warm`.

Evaluates the warm-start checkpoint itself on each env config's evaluation (the "start" row: the
runs' common starting point), then reads every run's learning curve from the results database.
Run from the repository root:

    NEG_GSM8K_DIR=/path/to/gsm8k python benchmarks/gsm8k_cpu_table.py results/gsm8k-warm.sqlite docs/gsm8k_cpu.png
"""

from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from agents.config import TrainConfig
from agents.evaluation import HeldOut
from agents.policies import build_policy
from noisy_expert_gym import make_problem
from scoreboards.store import ResultStore
from scoreboards.sweeps.specs import load_spec

METRICS = ("val_loss", "greedy_correct_prefix_len", "greedy_final_exact")


def main(db: str, figure: str) -> None:
    torch.set_num_threads(1)
    spec = load_spec("gsm8k-warm", check_envs=False)
    store = ResultStore(db)
    # Runs are matched by label and env config, not by key: a key includes the code version, which
    # moves with every commit after the sweep.
    done = {(r["label"], r["env_kwargs"].get("eta")): r for r in store.runs(spec=spec.name)}
    rows = {r.key: done[(r.label, r.env_kwargs.get("eta"))] for r in spec.runs()
            if (r.label, r.env_kwargs.get("eta")) in done}
    runs = [r for r in spec.runs() if r.key in rows]
    curves = {r.key: store.curves([rows[r.key]["key"]])[rows[r.key]["key"]] for r in runs}
    groups = sorted({r.group for r in runs})
    fig, axes = plt.subplots(len(groups), 2, figsize=(9, 3.2 * len(groups)), squeeze=False)
    for gi, group in enumerate(groups):
        grun = [r for r in runs if r.group == group]
        cfg = TrainConfig(**{k: v for k, v in grun[0].config.items() if k in TrainConfig.field_names()})
        problem = make_problem(cfg.env_id, **cfg.env_kwargs)
        policy = build_policy(cfg, problem.task, "cpu").eval()
        start = HeldOut.for_run(cfg, problem, torch.device("cpu")).evaluate(policy, "fp32")
        print(f"\n{group} (64 training problems, greedy; wall = training + evaluation time)\n")
        print("| method | val loss | correct prefix (chars) | final-answer acc. | wall (s) |")
        print("|---|---|---|---|---|")
        print(f"| warm start (no update) | {start['val_loss']:.3f} | {start['greedy_correct_prefix_len']:.2f} "
              f"| {start['greedy_final_exact']:.3f} | - |")
        for r in grun:
            m = rows[r.key]["final_metrics"]
            print(f"| {r.label} | {m['val_loss']:.3f} | {m['greedy_correct_prefix_len']:.2f} "
                  f"| {m['greedy_final_exact']:.3f} | {rows[r.key].get('wall_time') or 0:.0f} |")
            pts = curves[r.key]
            xs = [0] + [p["trajectories"] for p in pts]
            for ax, metric in zip(axes[gi], METRICS[:2], strict=True):
                ax.plot(xs, [start[metric]] + [p[metric] for p in pts], marker="o", label=r.label)
        for ax, metric in zip(axes[gi], METRICS[:2], strict=True):
            ax.set_title(f"{group}: {metric}", fontsize=9)
            ax.set_xlabel("trajectories")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(figure, dpi=80)


if __name__ == "__main__":
    main(*sys.argv[1:3])
