"""What per-query logit noise does to NAIL-F (Monte Carlo and exact forward KL) and BC, at CPU scale.

    OMP_NUM_THREADS=1 python -m benchmarks.logit_noise_cpu            # the table of docs/logit_noise.md
    python -m benchmarks.logit_noise_cpu --sigmas 0,1 --seeds 0 --budget 8192   # a quick look

One spec (NoisyModAdd p = 3, m = 4, ``absorbing``, eta = 0.3: clean rows (0.8, 0.1, 0.1)), the expert's
``logit_noise`` sigma in {0, 1, 3} (Gaussian), each algorithm on the same seeds and budget, two runs at a
time (``--jobs``). It prints one Markdown table: per sigma the closed forms of a clean row (the
probability the clean token stays the argmax; the expected clean probability, by Monte Carlo for
sigma > 0), then per algorithm the final greedy full-chain accuracy and clean validation loss (mean over
seeds, per-seed values in brackets) and the trajectories to 0.9 greedy full-chain accuracy (``-`` when not
reached within the budget).
"""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

ENV = {"p": 3, "m": 4, "law": "absorbing", "eta": 0.3}
ALGOS = [("nail-f", {"estimator": "mc"}, "NAIL-F (mc)"), ("nail-f", {"estimator": "exact"}, "NAIL-F (exact)"),
         ("bc", {}, "BC")]
TARGET = 0.9


def run(job: tuple[str, dict[str, Any], float, int, int]) -> dict[str, Any]:
    algo, params, sigma, seed, budget = job
    from agents import train

    res = train(algo=algo, algo_params=params, env_id="NoisyModAdd-v0", env_kwargs={**ENV, "logit_noise": sigma},
                budget_trajectories=budget, eval_every=budget // 8, seed=seed, device="cpu", progress=False,
                preset="cpu-rope", batch_size=256, eval_prompts=1024)
    curve = res.curve
    hit = next((c["trajectories"] for c in curve if c["greedy_full_exact"] >= TARGET), None)
    return {"acc": curve[-1]["greedy_full_exact"], "val": curve[-1]["val_loss"], "hit": hit}


def closed_forms(sigma: float) -> tuple[float, float]:
    """(P(the clean token stays the argmax), E[the perturbed clean probability]) of a clean row."""
    from noisy_expert_gym.logit_noise import LogitNoise
    from noisy_expert_gym.theory_logit_noise import prob_argmax_kept

    p = ENV["p"]
    row = np.full(p, ENV["eta"] / p)
    row[0] += 1 - ENV["eta"]
    kept = prob_argmax_kept(row, 0, sigma)
    mean = float(LogitNoise(sigma).perturb(np.tile(row, (200_000, 1)), np.random.default_rng(0))[:, 0].mean())
    return kept, mean


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sigmas", default="0,1,3")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--budget", type=int, default=49_152)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    sigmas = [float(s) for s in args.sigmas.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = [(a, p, s, seed, args.budget) for s in sigmas for a, p, _ in ALGOS for seed in seeds]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with ProcessPoolExecutor(args.jobs) as pool:
        results = {(a, str(p), s, seed): r for (a, p, s, seed, _), r in zip(jobs, pool.map(run, jobs), strict=True)}
    print(f"NoisyModAdd p={ENV['p']}, m={ENV['m']}, {ENV['law']}, eta={ENV['eta']}; budget {args.budget:,} "
          f"trajectories; seeds {seeds}; Gaussian logit noise\n")
    print("| sigma | P(clean stays argmax) | E[clean prob] | algorithm | greedy full-chain acc | clean val loss "
          f"| trajectories to {TARGET} |")
    print("|---|---|---|---|---|---|---|")
    for s in sigmas:
        kept, mean = closed_forms(s)
        for a, p, name in ALGOS:
            rs = [results[(a, str(p), s, seed)] for seed in seeds]
            acc = " / ".join(f"{r['acc']:.3f}" for r in rs)
            val = " / ".join(f"{r['val']:.3f}" for r in rs)
            hit = " / ".join("-" if r["hit"] is None else f"{r['hit']:,}" for r in rs)
            print(f"| {s:g} | {kept:.3f} | {mean:.3f} | {name} | {np.mean([r['acc'] for r in rs]):.3f} ({acc}) "
                  f"| {np.mean([r['val'] for r in rs]):.3f} ({val}) | {hit} |")


if __name__ == "__main__":
    main()
