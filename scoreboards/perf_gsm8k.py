"""Benchmark of NoisyGSM8K's reference teacher and env: ``python -m scoreboards.perf_gsm8k``.

Prints, measured in one run on the GSM-8K data (``--data-dir``, else
``$NEG_GSM8K_DIR``, else ``../shared/data/gsm8k`` beside the repository):

- reference-teacher prefix queries/s: ``probs_along`` over a batch of complete
  chains (clean reference chains and the noisy expert's own rollouts; numpy and
  torch), the oracle alone (``clean_along``), single-prefix ``probs`` on batches
  and one prefix at a time, and the noisy expert's ``rollout``;
- env steps/s: replaying reference solutions, and with the noisy expert
  choosing each action (one ``sample`` query per step).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _rate(fn: Callable[[], Any], work: int, repeats: int) -> float:
    """Best-of-`repeats` units of `work` per second."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return work / best


def main(argv: list[str] | None = None) -> None:
    from noisy_expert_gym import make_problem
    from noisy_expert_gym.tasks.gsm8k.reference import ReferenceExpert

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default=os.environ.get("NEG_GSM8K_DIR") or str(REPO.parent / "shared/data/gsm8k"),
                    help="GSM-8K JSONL directory")
    ap.add_argument("--split", default="train", help="train or test")
    ap.add_argument("--batch", type=int, default=64, help="chains / prefixes per batched query")
    ap.add_argument("--eta", type=float, default=0.01, help="noise level of the absorbing law")
    ap.add_argument("--episodes", type=int, default=20, help="env episodes per measurement")
    ap.add_argument("--repeats", type=int, default=3, help="best of this many timings")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    problem = make_problem("NoisyGSM8K-v0", data_dir=args.data_dir, split=args.split, eta=args.eta)
    load_s = time.perf_counter() - t0
    env = problem.make_env()  # the env steps over the same problem (nothing is loaded twice)
    u = env.unwrapped
    task = problem.task
    n, h, r = args.batch, task.horizon, args.repeats
    print(f"NoisyGSM8K-v0 {args.split}: {task.num_problems} problems, P={task.prompt_len}, H={h}, "
          f"A={task.num_actions}, absorbing eta={args.eta}; loaded in {load_s:.2f} s")

    rng = np.random.default_rng(0)
    prompts = task.sample_prompts(rng, n)
    clean_chains = task.clean_chains(prompts)
    expert = ReferenceExpert(task, law="absorbing", eta=args.eta, rng=np.random.default_rng(1))
    noisy_chains = expert.rollout(prompts)
    rows: list[tuple[str, float, str]] = []

    def add(name: str, rate: float, unit: str = "prefix queries/s") -> float:
        rows.append((name, rate, unit))
        return rate

    def fresh(f: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            task._cache = None  # time the oracle, not its one-entry cache
            return f()
        return run

    along = add(f"probs_along, {n} reference chains (numpy)",
                _rate(fresh(lambda: expert.probs_along(prompts, clean_chains)), n * h, r))
    add(f"probs_along, {n} noisy-expert chains (numpy)",
        _rate(fresh(lambda: expert.probs_along(prompts, noisy_chains)), n * h, r))
    tp, tc = torch.as_tensor(prompts), torch.as_tensor(noisy_chains)
    add(f"probs_along, {n} noisy-expert chains (torch)", _rate(fresh(lambda: expert.probs_along(tp, tc)), n * h, r))
    add(f"clean_along only (the oracle), {n} noisy chains",
        _rate(fresh(lambda: task.clean_along(prompts, noisy_chains)), n * h, r))
    ref_len = np.array([len(task.reference_tokens(i)) for i in task.problem_index(prompts)])
    t = rng.integers(0, ref_len)  # a random prefix of each reference solution
    gen = np.where(np.arange(h)[None, :] < t[:, None], clean_chains, task.pad_token)
    obs = task.observe(prompts, gen)
    batch_rate = add(f"probs, batch of {n} single prefixes", _rate(fresh(lambda: expert.probs(obs)), n, r))

    def one_at_a_time() -> None:
        for i in range(n):
            expert.probs(obs[i])
    single_rate = add("probs, one prefix per call", _rate(fresh(one_at_a_time), n, r))
    expert.reset_queries()
    t0 = time.perf_counter()
    expert.rollout(prompts[:16])
    add("rollout of the noisy expert, 16 prompts", expert.num_queries / (time.perf_counter() - t0))

    # ----- env steps -------------------------------------------------------------
    solutions = [task.reference_tokens(i) for i in range(task.num_problems)]

    def replay() -> int:
        steps = 0
        for e in range(args.episodes):
            env.reset(seed=e)
            for a in solutions[u._problem]:
                env.step(a)
                steps += 1
        return steps

    t0 = time.perf_counter()
    steps = replay()
    add("env.step, replaying reference solutions", steps / (time.perf_counter() - t0), "steps/s")

    def with_expert() -> int:
        steps, done = 0, False
        for e in range(args.episodes):
            o, _ = env.reset(seed=e)
            done = False
            while not done:
                o, _, term, trunc, _ = env.step(int(u.expert.sample(o)))
                done = term or trunc
                steps += 1
        return steps

    t0 = time.perf_counter()
    steps = with_expert()
    add("env.step + expert.sample per step", steps / (time.perf_counter() - t0), "steps/s")

    width = max(len(name) for name, _, _ in rows)
    for name, rate, unit in rows:
        print(f"  {name:<{width}}  {rate:>12,.0f} {unit}")
    print(f"ratios: probs_along / one-prefix probs = {along / single_rate:,.0f}x; "
          f"batched / one-prefix probs = {batch_rate / single_rate:,.1f}x")


if __name__ == "__main__":
    main()
