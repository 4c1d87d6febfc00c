"""`neg demo`: a short look at NoisyModAdd and its noisy expert (no training)."""

from __future__ import annotations

import argparse

import gymnasium as gym

from noisy_expert_gym import theory


def run_demo(eta: float = 0.2, law: str = "absorbing", m: int = 31, p: int = 7, episodes: int = 2000,
             seed: int = 0) -> dict[str, float]:
    """Roll the noisy expert out in the native vector env; compare with the closed forms."""
    env = gym.make_vec("NoisyModAdd-v0", num_envs=episodes, p=p, m=m, eta=eta, law=law)
    obs, _ = env.reset(seed=seed)
    expert = env.unwrapped.expert
    for _ in range(m):
        obs, _, term, _, info = env.step(expert.sample(obs))
    assert term.all()
    out = {
        "fully_clean": float(info["full_exact"].mean()),
        "fully_clean_theory": theory.prob_fully_clean(law, eta, p, m),
        "final_correct": float(info["final_exact"].mean()),
        "final_correct_theory": theory.prob_final_correct(law, eta, p, m),
        "correct_prefix": float(info["correct_prefix_len"].mean()),
        "correct_prefix_theory": theory.expected_correct_prefix(law, eta, p, m),
        "queries": expert.num_queries,
    }
    env.close()
    return out


def _cmd(args: argparse.Namespace) -> int:
    single = gym.make("NoisyModAdd-v0", p=args.p, m=args.m, eta=args.eta, law=args.law, render_mode="ansi")
    obs, _ = single.reset(seed=args.seed)
    done = False
    while not done:
        obs, _, done, _, _ = single.step(single.unwrapped.expert.sample(obs))
    print(f"One noisy-expert episode (p={args.p}, m={args.m}, law={args.law}, eta={args.eta}):")
    print(single.render())
    res = run_demo(args.eta, args.law, args.m, args.p, args.episodes, args.seed)
    print(f"{args.episodes} noisy-expert rollouts (measured vs exact):")
    for k in ("fully_clean", "final_correct", "correct_prefix"):
        print(f"  {k:15s} {res[k]:.4f}   theory {res[k + '_theory']:.4f}")
    print(f"  expert queries  {res['queries']}")
    return 0


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="roll out the noisy expert and compare with the closed forms")
    p.add_argument("--eta", type=float, default=0.2)
    p.add_argument("--law", default="absorbing")
    p.add_argument("--m", type=int, default=31)
    p.add_argument("--p", type=int, default=7)
    p.add_argument("--episodes", type=int, default=20000)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd)
