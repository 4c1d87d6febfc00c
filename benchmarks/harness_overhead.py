"""Harness overhead and submission-pipe cost, measured in one run on this machine.

Run as ``python -m benchmarks.harness_overhead`` (all parts), or pick parts:

- ``--sweep SPEC`` (default ``quick``): run the spec's sweep into a fresh database
  with the real trainer and report the harness overhead: sweep wall time x workers
  vs the sum of the runs' training time (target < 5% for ``quick``);
  ``--fake SECONDS`` replaces training with a sleep of that length (the harness's
  own cost, without training noise).
- ``--pipe``: the cost of one expert query batch through the submission pipe
  (worker -> harness -> worker) vs the same call on an in-process oracle.

Every number is measured in this run; ratios compare numbers of the same run only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


# ----- sweep overhead ---------------------------------------------------------------------
def sleep_train(cfg: Any) -> Any:
    """A stand-in trainer that sleeps $NEG_PERF_SLEEP seconds and returns a 3-point curve."""
    from agents.result import RunResult

    time.sleep(float(os.environ.get("NEG_PERF_SLEEP", "1.0")))
    curve = [{"update": i, "trajectories": cfg.budget_trajectories * i // 3, "queries": 0, "wall_time": 0.0,
              "greedy_full_exact": i / 3, "val_loss": 1 - i / 3} for i in (1, 2, 3)]
    return RunResult(algo=cfg.algo, env_id=cfg.env_id, env_kwargs=cfg.env_kwargs, config=cfg.to_dict(),
                     seed=cfg.seed, final_metrics=dict(curve[-1]), curve=curve,
                     trajectories=cfg.budget_trajectories)


def sweep_overhead(spec_name: str, workers: int | None, fake: float | None, overrides: list[str]) -> dict:
    from scoreboards.sweeps.runner import run_sweep
    from scoreboards.sweeps.specs import load_spec

    spec = load_spec(spec_name, overrides=overrides)
    train_fn = None
    if fake is not None:
        os.environ["NEG_PERF_SLEEP"] = str(fake)
        train_fn = sleep_train
    with tempfile.TemporaryDirectory(prefix="neg-perf-") as d:
        s = run_sweep(spec, Path(d) / "perf.sqlite", workers=workers, train_fn=train_fn, progress=False,
                      log=lambda m: None)
    return {"spec": spec.name, "runs": s.done, "failed": s.failed, "workers": s.workers,
            "wall_s": s.wall_time, "train_s": s.train_time, "overhead": s.overhead,
            "trainer": f"sleep {fake:.2f}s" if fake is not None else "agents.train"}


# ----- the submission pipe -------------------------------------------------------------------
def time_queries(expert: Any, prompts: Any, chain: Any, obs: Any, reps: int) -> dict[str, list[float]]:
    """Seconds per call of ``probs_along(prompts, chain)`` and ``probs(obs)``, `reps` times each."""
    out: dict[str, list[float]] = {"probs_along": [], "probs": []}
    for _ in range(reps):
        for op, call in (("probs_along", lambda: expert.probs_along(prompts, chain)),
                         ("probs", lambda: expert.probs(obs))):
            t = time.perf_counter()
            call()
            out[op].append(time.perf_counter() - t)
    return out


class PipeProbe:
    """A submission that times expert query batches from inside the worker and writes them to a file."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec

    def train(self, expert: Any) -> None:
        n, reps = int(os.environ["NEG_PERF_BATCH"]), int(os.environ["NEG_PERF_REPS"])
        prompts = expert.prompts(n)
        rng = np.random.default_rng(0)
        chain = rng.integers(0, self.spec["num_actions"], size=(n, self.spec["horizon"]))
        obs = expert.observe(prompts, chain[:, : self.spec["horizon"] // 2])
        Path(os.environ["NEG_PERF_OUT"]).write_text(json.dumps(time_queries(expert, prompts, chain, obs, reps)))

    def act(self, observations: np.ndarray) -> np.ndarray:
        return np.zeros(len(observations), dtype=np.int64)


def pipe_cost(batch: int, reps: int, m: int) -> dict:
    from noisy_expert_gym import make_problem
    from scoreboards.leaderboard.board_model import Board
    from scoreboards.leaderboard.submission import run_submission

    board = Board(name="perf", description="", cost="", env_id="NoisyModAdd-v0",
                  env_kwargs={"p": 7, "m": m, "eta": 0.2}, budget_trajectories=batch * (reps + 1),
                  budget_queries=None, eval_prompts=8, eval_seeds=[1], metric="greedy_full_exact",
                  train_seeds=[0], timeout_s=600, hash="0")
    with tempfile.TemporaryDirectory() as d:
        os.environ.update(NEG_PERF_BATCH=str(batch), NEG_PERF_REPS=str(reps),
                          NEG_PERF_OUT=str(Path(d) / "pipe.json"))
        # No sandbox: the probe reads its settings from the environment and writes its timings
        # to a file, which a sandboxed worker cannot; the socket and its wire format are the same.
        run_submission(board, "benchmarks.harness_overhead:PipeProbe", seed=0, sandbox="none")
        through = json.loads((Path(d) / "pipe.json").read_text())
    problem = make_problem("NoisyModAdd-v0", p=7, m=m, eta=0.2).with_rng(np.random.default_rng(0))
    task, expert = problem.task, problem.expert
    prompts = task.sample_prompts(np.random.default_rng(0), batch)
    chain = np.random.default_rng(0).integers(0, 7, size=(batch, m))
    direct = time_queries(expert, prompts, chain, task.observe(prompts, chain[:, : m // 2]), reps)
    res = {"batch": batch, "m": m, "reps": reps}
    for op in ("probs_along", "probs"):
        p, q = statistics.median(through[op]), statistics.median(direct[op])
        res[op] = {"pipe_ms": 1e3 * p, "direct_ms": 1e3 * q, "extra_ms": 1e3 * (p - q), "ratio": p / q}
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sweep", nargs="?", const="quick", default=None, help="spec for the overhead run")
    ap.add_argument("--set", action="append", default=[], help="spec overrides (as neg bench run --set)")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--fake", type=float, default=None, help="replace training by a sleep of this many seconds")
    ap.add_argument("--pipe", action="store_true")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--m", type=int, default=31)
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args(argv)
    both = args.sweep is None and not args.pipe
    if args.pipe or both:
        r = pipe_cost(args.batch, args.reps, args.m)
        print(f"submission pipe, NoisyModAdd m={r['m']}, batch {r['batch']} (median of {r['reps']}):")
        for op in ("probs_along", "probs"):
            x = r[op]
            print(f"  {op:12s} pipe {x['pipe_ms']:7.3f} ms   in-process {x['direct_ms']:7.3f} ms   "
                  f"extra {x['extra_ms']:6.3f} ms per batch ({x['ratio']:.2f}x)")
    if args.sweep or both:
        r = sweep_overhead(args.sweep or "quick", args.workers, args.fake, args.set)
        print(f"sweep `{r['spec']}` ({r['trainer']}): {r['runs']} runs ({r['failed']} failed) on "
              f"{r['workers']} workers: wall {r['wall_s']:.1f} s, training {r['train_s']:.1f} s -> "
              f"harness overhead {100 * r['overhead']:.1f}% (wall x workers / training - 1)")


if __name__ == "__main__":
    main()
