"""`neg demo`: a short look at a chain-of-thought task and its noisy expert (no training).

``neg demo`` shows NoisyModAdd; ``neg demo --env NoisyS5-v0`` (or ``NoisyAutomaton-v0``,
``NoisyDFA-v0``, with ``--env-kw key=value`` for their options) a state-tracking task.
"""

from __future__ import annotations

import argparse
from typing import Any

from noisy_expert_gym import theory
from noisy_expert_gym.problems import family_of, make_problem
from noisy_expert_gym.utils import parse_kv


def _problem(env_id: str, eta: float, law: str, m: int, p: int, env_kwargs: dict[str, Any]) -> Any:
    kwargs = {"m": m, "eta": eta, "law": law, **env_kwargs}
    if family_of(env_id).name == "modadd":
        kwargs.setdefault("p", p)
    return make_problem(env_id, **kwargs)


def run_demo(eta: float = 0.2, law: str = "absorbing", m: int = 31, p: int = 7, episodes: int = 2000,
             seed: int = 0, env_id: str = "NoisyModAdd-v0", **env_kwargs: Any) -> dict[str, float]:
    """Roll the noisy expert out in the native vector env; compare with the closed forms.

    ``p`` applies to NoisyModAdd only; ``env_kwargs`` are the env's other options
    (``automaton``, ``n``, ``relabel_seed``, ...).
    """
    problem = _problem(env_id, eta, law, m, p, env_kwargs)
    env = problem.make_vec(episodes)
    obs, _ = env.reset(seed=seed)
    expert = env.unwrapped.expert
    for _ in range(m):
        obs, _, term, _, info = env.step(expert.sample(obs))
    assert term.all()
    forms = theory.closed_forms(problem.task, law, eta)
    out = {
        "fully_clean": float(info["full_exact"].mean()),
        "fully_clean_theory": forms["fully_clean"],
        "final_correct": float(info["final_exact"].mean()),
        "final_correct_theory": forms["final_correct"],
        "correct_prefix": float(info["correct_prefix_len"].mean()),
        "correct_prefix_theory": forms["correct_prefix"],
        "queries": expert.num_queries,
    }
    env.close()
    return out


def _cmd(args: argparse.Namespace) -> int:
    env_kwargs = parse_kv(args.env_kw, "--env-kw")
    problem = _problem(args.env, args.eta, args.law, args.m, args.p, env_kwargs)
    single = problem.make_env(render_mode="ansi")
    obs, _ = single.reset(seed=args.seed)
    done = False
    while not done:
        obs, _, done, _, _ = single.step(single.unwrapped.expert.sample(obs))
    print(f"One noisy-expert episode of {args.env} ({problem.task!r}, law={args.law}, eta={args.eta}):")
    print(single.render())
    res = run_demo(args.eta, args.law, args.m, args.p, args.episodes, args.seed, args.env, **env_kwargs)
    print(f"{args.episodes} noisy-expert rollouts (measured vs exact):")
    for k in ("fully_clean", "final_correct", "correct_prefix"):
        print(f"  {k:15s} {res[k]:.4f}   theory {res[k + '_theory']:.4f}")
    print(f"  expert queries  {res['queries']}")
    return 0


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="roll out the noisy expert and compare with the closed forms")
    p.add_argument("--env", default="NoisyModAdd-v0",
                   help="env id: NoisyModAdd-v0, NoisyAutomaton-v0, NoisyDFA-v0, NoisyS5-v0, ...")
    p.add_argument("--env-kw", action="append", metavar="KEY=VALUE",
                   help="another option of the env, e.g. automaton=modadd or relabel_seed=3 (repeatable)")
    p.add_argument("--eta", type=float, default=0.2)
    p.add_argument("--law", default="absorbing")
    p.add_argument("--m", type=int, default=31)
    p.add_argument("--p", type=int, default=7, help="NoisyModAdd's modulus")
    p.add_argument("--episodes", type=int, default=20000)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd)
