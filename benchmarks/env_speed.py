"""Throughput of the chain-of-thought envs: native vector env vs SyncVectorEnv, and oracle queries/s.

Run as ``python -m benchmarks.env_speed`` (``--quick`` for a smoke run). Every
number is measured in this one run on this machine; ratios compare numbers of
the same run only. One row per task family: modular addition (NoisyModAdd-v0),
a random permutation automaton (NoisyAutomaton-v0) and the word problem of S5
(NoisyS5-v0), all at the ids' defaults (m = 31).

What is timed:

- env steps/s = num_envs * (calls to ``step``) / seconds. Actions are random
  valid actions drawn before the clock starts; ``reset(seed=...)`` is called
  before the clock starts and is *excluded*; the autoresets that happen inside
  ``step`` (NEXT_STEP mode: the step after an episode ends resets that sub-env)
  are *included*, for both envs alike, and so are the native env's refills of
  its per-sub-env prompt buffers. The native env is ``gym.make_vec(id,
  num_envs=N)`` (the registered ``vector_entry_point``); the baseline is
  ``gym.make_vec(id, num_envs=N, vectorization_mode="sync")``, i.e.
  ``SyncVectorEnv`` over N ``gym.make(id)`` envs (with Gymnasium's default
  wrappers, as users get them). The two are timed in alternation (native,
  Sync, native, Sync, ...) so that a machine shared with other work slows both
  alike; each figure is the median of its repeats, and the ratio is the ratio
  of the medians.
  Steps per CPU second (this process's CPU time) are printed beside the
  wall-clock figures: on a shared machine they estimate what a core of one's own
  would give.
- oracle prefix-queries/s = prefixes answered / seconds of ``Expert.probs_along``
  on complete chains (H queries per chain; half of them the true run, half
  random), numpy and torch on the CPU (one torch thread), median of repeats.
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

#: The families timed: (label, env id).
FAMILIES: tuple[tuple[str, str], ...] = (
    ("modadd", "NoisyModAdd-v0"),
    ("random automaton", "NoisyAutomaton-v0"),
    ("S5", "NoisyS5-v0"),
)


def _time(fn: Callable[[], None], setup: Callable[[], None] | None = None) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds of this process) of one call of `fn`."""
    if setup is not None:
        setup()
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


class _EnvRun:
    """One vector env with its pre-drawn actions; each call times `steps` calls to `step`."""

    def __init__(self, env_id: str, num_envs: int, m: int, steps: int, mode: str | None) -> None:
        kwargs = {} if mode is None else {"vectorization_mode": mode}
        self.env = gym.make_vec(env_id, num_envs=num_envs, m=m, **kwargs)
        rng = np.random.default_rng(0)
        self.actions = rng.integers(0, self.env.single_action_space.n, size=(steps, num_envs), dtype=np.int64)
        self.num_envs, self.steps = num_envs, steps
        self._seed = iter(range(10**6))
        self.env.reset(seed=next(self._seed))

    def steps_per_s(self, reset: bool) -> tuple[float, float]:
        """(steps per wall-clock second, steps per CPU second) of one window."""
        step, actions = self.env.step, self.actions

        def run() -> None:
            for a in actions:
                step(a)

        setup = (lambda: self.env.reset(seed=next(self._seed))) if reset else None
        wall, cpu = _time(run, setup)
        return self.num_envs * self.steps / wall, self.num_envs * self.steps / cpu

    def close(self) -> None:
        self.env.close()


def env_ratio(env_id: str, num_envs: int, m: int, native_steps: int, sync_steps: int, repeats: int,
              sync_repeats: int) -> dict[str, float]:
    """Median steps/s of the native env and of SyncVectorEnv, timed in alternation.

    Returns wall-clock (``native``, ``sync``) and per-CPU-second (``native_cpu``,
    ``sync_cpu``) medians: on a machine shared with other work the CPU-time figure is
    what the process gets per second of a core it has to itself.

    The native env is warmed up first (one timed window, discarded: its prompt buffers
    grow to their steady size); later windows continue its episodes without a reset,
    as a training loop would.
    """
    native = _EnvRun(env_id, num_envs, m, native_steps, None)
    sync = _EnvRun(env_id, num_envs, m, sync_steps, "sync")
    native.steps_per_s(reset=False)  # warm-up
    n_res, s_res = [], []
    for r in range(max(repeats, sync_repeats)):
        if r < repeats:
            n_res.append(native.steps_per_s(reset=False))
        if r < sync_repeats:
            s_res.append(sync.steps_per_s(reset=True))
    native.close()
    sync.close()
    med = lambda xs, i: statistics.median(x[i] for x in xs)
    return {"native": med(n_res, 0), "sync": med(s_res, 0), "native_cpu": med(n_res, 1),
            "sync_cpu": med(s_res, 1)}


def oracle_queries_per_s(env_id: str, n: int, m: int, repeats: int, backend: str) -> float:
    """Median prefix-queries/s of Expert.probs_along on n complete chains (n * m queries per call)."""
    problem = make_problem(env_id, m=m, eta=0.2)
    task, expert = problem.task, problem.expert
    rng = np.random.default_rng(1)
    prompts = task.sample_prompts(rng, n)
    chains = rng.integers(0, task.num_actions, size=(n, m), dtype=np.int64)
    chains[: n // 2] = task.clean_chains(prompts[: n // 2])
    if backend == "torch":
        import torch

        torch.set_num_threads(1)
        prompts, chains = torch.as_tensor(prompts), torch.as_tensor(chains)
    times = [_time(lambda: expert.probs_along(prompts, chains))[0] for _ in range(repeats)]
    return n * m / statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=31, help="chain length (horizon)")
    ap.add_argument("--num-envs", type=int, default=1024, help="sub-envs of each vector env")
    ap.add_argument("--repeats", type=int, default=7, help="timed windows of the native env (median)")
    ap.add_argument("--sync-repeats", type=int, default=3, help="timed windows of SyncVectorEnv (median)")
    ap.add_argument("--families", nargs="*", default=[f for f, _ in FAMILIES],
                    help=f"families to time: {', '.join(repr(f) for f, _ in FAMILIES)}")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not a measurement")
    args = ap.parse_args(argv)
    m, n_envs = args.m, args.num_envs
    unknown = set(args.families) - {f for f, _ in FAMILIES}
    if unknown:
        ap.error(f"unknown families {sorted(unknown)}; valid: {[f for f, _ in FAMILIES]}")
    families = [(f, e) for f, e in FAMILIES if f in args.families]
    scale = 0.05 if args.quick else 1.0
    reps, sync_reps = (1, 1) if args.quick else (args.repeats, args.sync_repeats)
    # Native: 60 episodes per window (a few tenths of a second: CPU-time accounting may be coarse);
    # Sync (tens of ms per call at 1024 envs): one episode.
    native_steps = max(m + 1, int(60 * (m + 1) * scale))
    sync_steps = max(2, int((m + 1) * scale))

    print(f"Env throughput (m={m}, {n_envs} envs), {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, numpy {np.__version__}, "
          f"gymnasium {gym.__version__}")
    print("env steps/s = num_envs * step() calls / s; reset excluded, autoresets included; native and Sync "
          f"timed in alternation, medians of {reps} (native) and {sync_reps} (Sync) windows")
    print(f"{'':>36} {'wall clock':-^38} {'per CPU second':-^38}")
    print(f"{'family':>17} {'env id':>18} {'native steps/s':>15} {'Sync steps/s':>13} {'ratio':>8} "
          f"{'native steps/s':>15} {'Sync steps/s':>13} {'ratio':>8}")
    results = {}
    for fam, env_id in families:
        r = env_ratio(env_id, n_envs, m, native_steps, sync_steps, reps, sync_reps)
        results[fam] = r
        print(f"{fam:>17} {env_id:>18} {r['native']:>15,.0f} {r['sync']:>13,.0f} {r['native'] / r['sync']:>7.1f}x "
              f"{r['native_cpu']:>15,.0f} {r['sync_cpu']:>13,.0f} {r['native_cpu'] / r['sync_cpu']:>7.1f}x")

    batch = 1024 if args.quick else 4096
    print(f"oracle probs_along prefix-queries/s ({batch} complete chains of m={m}, absorbing, eta=0.2; "
          f"torch on the CPU with 1 thread), median of {max(reps, 3)}")
    print(f"{'family':>17} {'numpy q/s':>14} {'torch q/s':>14}")
    for fam, env_id in families:
        qn = oracle_queries_per_s(env_id, batch, m, max(reps, 3), "numpy")
        qt = oracle_queries_per_s(env_id, batch, m, max(reps, 3), "torch")
        print(f"{fam:>17} {qn:>14,.0f} {qt:>14,.0f}")

    print(f"targets at {n_envs} envs (issue 12 item 6: >= 2M steps/s and >= 20x SyncVectorEnv), wall clock:")
    for fam, r in results.items():
        native, ratio = r["native"], r["native"] / r["sync"]
        print(f"{fam:>17}: {native / 1e6:.2f}M steps/s ({'met' if native >= 2e6 else 'MISSED'}), "
              f"{ratio:.1f}x ({'met' if ratio >= 20 else 'MISSED'}); per CPU second "
              f"{r['native_cpu'] / 1e6:.2f}M, {r['native_cpu'] / r['sync_cpu']:.1f}x")
    print(f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: wall-clock figures fall as "
          "other work shares the cores; per-CPU-second figures much less")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
