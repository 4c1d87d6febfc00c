"""Throughput of NoisyModAdd: native vector env vs SyncVectorEnv, and oracle queries/s.

Run as ``python -m scoreboards.perf_env`` (``--quick`` for a smoke run). Every
number is measured in this one run on this machine; ratios compare numbers of
the same run only.

What is timed:

- env steps/s = num_envs * (calls to ``step``) / seconds. Actions are random
  valid actions drawn before the clock starts; ``reset(seed=...)`` is called
  before the clock starts and is *excluded*; the autoresets that happen inside
  ``step`` (NEXT_STEP mode: the step after an episode ends resets that sub-env)
  are *included*, for both envs alike. The native env is
  ``gym.make_vec(id, num_envs=N)`` (the registered ``vector_entry_point``); the
  baseline is ``gym.make_vec(id, num_envs=N, vectorization_mode="sync")``, i.e.
  ``SyncVectorEnv`` over N ``gym.make(id)`` envs (with Gymnasium's default
  wrappers, as users get them).
- oracle queries/s = prefixes answered / seconds: ``Expert.probs`` on a batch of
  random prefixes (one query each), and ``Expert.probs_along`` on complete
  chains (H queries per chain), numpy and torch on the CPU.

Each figure is the median over several repeats.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from noisy_expert_gym import make_problem  # (importing the package registers the envs)

ENV_ID = "NoisyModAdd-v0"


def _median_time(fn: Callable[[], None], repeats: int, setup: Callable[[], None] | None = None
                 ) -> float:
    times = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def env_steps_per_s(num_envs: int, m: int, steps: int, repeats: int, mode: str | None) -> float:
    """Median env steps/s of `steps` calls to `step` on `num_envs` sub-envs (reset excluded)."""
    kwargs = {} if mode is None else {"vectorization_mode": mode}
    env = gym.make_vec(ENV_ID, num_envs=num_envs, m=m, **kwargs)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, env.single_action_space.n, size=(steps, num_envs), dtype=np.int64)
    seed = iter(range(10**6))

    def setup() -> None:
        env.reset(seed=next(seed))

    def run() -> None:
        step = env.step
        for a in actions:
            step(a)

    t = _median_time(run, repeats, setup)
    env.close()
    return num_envs * steps / t


def oracle_queries_per_s(n: int, m: int, repeats: int, backend: str) -> tuple[float, float]:
    """Median prefix-queries/s of Expert.probs (batch of n prefixes) and probs_along (n chains)."""
    problem = make_problem(ENV_ID, m=m, eta=0.2)
    expert, task = problem.expert, problem.task
    rng = np.random.default_rng(1)
    prompts = task.sample_prompts(rng, n)
    chains = rng.integers(0, task.p, size=(n, m), dtype=np.int64)
    # Random prefixes: chain lengths 0..m-1, half of them clean (the true sums).
    lengths = rng.integers(0, m, size=n)
    clean = task.true_sums(prompts)
    chains[: n // 2] = clean[: n // 2]
    obs = task.observe(prompts, chains)
    obs[:, m + 1 :][np.arange(m)[None, :] >= lengths[:, None]] = task.pad_token
    if backend == "torch":
        import torch

        torch.set_num_threads(1)
        obs, prompts, chains = (torch.as_tensor(x) for x in (obs, prompts, chains))
    t_probs = _median_time(lambda: expert.probs(obs), repeats)
    t_along = _median_time(lambda: expert.probs_along(prompts, chains), repeats)
    return n / t_probs, n * m / t_along


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=31, help="chain length (horizon)")
    ap.add_argument("--repeats", type=int, default=5, help="repeats per figure (median reported)")
    ap.add_argument("--quick", action="store_true",
                    help="tiny sizes: a smoke run, not a measurement")
    args = ap.parse_args(argv)
    m, reps = args.m, args.repeats
    scale = 0.05 if args.quick else 1.0

    def n_steps(x: int) -> int:
        return max(m + 1, int(x * scale))

    print(f"NoisyModAdd throughput (m={m}, p=7), {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, numpy {np.__version__}, gymnasium {gym.__version__}")
    print("env steps/s = num_envs * step() calls / s; reset excluded, autoresets included; "
          f"median of {reps} repeats")
    print(f"{'num_envs':>8} {'native steps/s':>16} {'Sync steps/s':>14} {'ratio':>8}")
    # Sync at 1024 envs is slow (tens of ms per call): fewer calls there.
    plan = {64: (n_steps(20 * (m + 1)), n_steps(4 * (m + 1))),
            1024: (n_steps(20 * (m + 1)), n_steps(1 * (m + 1)))}
    results = {}
    for n, (t_native, t_sync) in plan.items():
        native = env_steps_per_s(n, m, t_native, reps, None)
        sync = env_steps_per_s(n, m, t_sync, max(3, reps // 2) if not args.quick else 1, "sync")
        results[n] = (native, sync)
        print(f"{n:>8} {native:>16,.0f} {sync:>14,.0f} {native / sync:>7.1f}x")

    print(f"oracle prefix-queries/s (p=7, m={m}, absorbing, eta=0.2; torch CPU, 1 thread), "
          f"median of {reps}")
    print(f"{'backend':>8} {'batch':>6} {'probs q/s':>14} {'probs_along q/s':>16}")
    for backend in ("numpy", "torch"):
        for n in (4096,) if args.quick else (1024, 16384):
            qp, qa = oracle_queries_per_s(n, m, reps, backend)
            print(f"{backend:>8} {n:>6} {qp:>14,.0f} {qa:>16,.0f}")

    native, sync = results[1024]
    print(f"targets at 1024 envs: ratio >= 20x: {'met' if native / sync >= 20 else 'MISSED'} "
          f"({native / sync:.1f}x); >= 1M steps/s: {'met' if native >= 1e6 else 'MISSED'} "
          f"({native / 1e6:.2f}M)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
