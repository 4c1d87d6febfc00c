"""`neg record`: videos of a trained (or freshly trained) policy's greedy episodes.

    neg record --checkpoint runs/nail/last.pt --episodes 3 --out videos/
    neg record --algo bc --budget 2000 --env-kw m=3 --preset tiny     # trains first, then records

The env layer records any ``obs -> action`` callable
(:func:`noisy_expert_gym.bridges.video.record_episodes`); :class:`GreedyActor` turns
a :class:`~agents.contracts.Policy` into one, and :func:`load_policy` rebuilds the
policy of a checkpoint (the trainer's ``last.pt`` or PPO's ``ppo.zip``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from noisy_expert_gym.utils import parse_kv

if TYPE_CHECKING:  # annotations only: `neg record --help` does not load torch
    from agents.contracts import Policy
    from noisy_expert_gym.contracts import TaskCore

DEFAULT_RECORD_SEED = 123_456_789  # TrainConfig.eval_seed: evaluation episodes, not training prompts


class GreedyActor:
    """``obs -> action`` for a policy: its greedy chain from the episode's prompt.

    At the first step of an episode the whole greedy chain is generated once
    (KV-cached for the transformer students); later steps replay it. Because the
    env's state is exactly the chain the policy wrote, this equals asking the
    policy for its argmax at every step.

    Args:
        policy: the student (``generate(prompts (B, P), horizon, temperature=0.0) -> (B, H)``).
        task: the env's task core (``prompt_len``, ``horizon``, ``step_index``).
        device: where the policy lives.
    """

    def __init__(self, policy: Policy, task: TaskCore, device: Any = "cpu") -> None:
        self.policy, self.task, self.device = policy, task, device
        self._prompt: np.ndarray | None = None
        self._chain: np.ndarray | None = None

    def __call__(self, obs: np.ndarray) -> int:
        import torch

        obs = np.asarray(obs)
        prompt = obs[: self.task.prompt_len]
        t = int(self.task.step_index(obs[None])[0])
        if t == 0 or self._prompt is None or not np.array_equal(prompt, self._prompt):
            p = torch.as_tensor(prompt[None], dtype=torch.long, device=self.device)
            self._chain = self.policy.generate(p, self.task.horizon, temperature=0.0)[0].cpu().numpy()
            self._prompt = prompt.copy()
        return int(self._chain[t])


def load_policy(checkpoint: str, env_id: str | None = None, env_kwargs: dict[str, Any] | None = None,
                preset: str | None = None, model: dict[str, Any] | None = None,
                device: str = "cpu") -> tuple[Policy, str, dict[str, Any]]:
    """Rebuild the trained policy of a checkpoint: ``(policy, env_id, env_kwargs)``.

    Options given here override what the checkpoint stores (``config``, the
    TrainConfig dict of the run; PPO's ``ppo.json``); without either, the
    TrainConfig defaults apply and a mismatch is reported with what to pass.
    """
    from agents.checkpoint import find_checkpoint, load_checkpoint
    from agents.config import TrainConfig
    from agents.policies import build_policy
    from noisy_expert_gym.problems import make_problem

    path = find_checkpoint(checkpoint)
    payload, conf = None, {}
    if path.endswith(".zip"):
        meta_path = os.path.splitext(path)[0] + ".json"
        if os.path.exists(meta_path):
            with open(meta_path) as fh:
                conf = json.load(fh)
    else:
        payload = load_checkpoint(path)
        conf = payload.get("config") or {}
    defaults = TrainConfig()
    env_id = env_id or conf.get("env_id") or defaults.env_id
    env_kwargs = env_kwargs if env_kwargs is not None else conf.get("env_kwargs", {})
    task = make_problem(env_id, **env_kwargs).task
    if payload is None:
        from stable_baselines3 import PPO

        from agents.algos.ppo import SB3TokenPolicy

        try:
            sb3 = PPO.load(path, device=device)
        except Exception as e:  # noqa: BLE001  not a zip, truncated, another library's file, ...
            raise ValueError(f"checkpoint `{path}` is corrupt or unreadable ({type(e).__name__}: {e}); "
                             "point --checkpoint at a ppo.zip that `neg train --algo ppo` wrote") from None
        if sb3.observation_space.shape != (task.obs_len,):
            raise ValueError(f"PPO model {path} observes shape {sb3.observation_space.shape}, but "
                             f"{env_id} {env_kwargs} has ({task.obs_len},): pass the --env / --env-kw it "
                             "was trained on")
        return SB3TokenPolicy(sb3.policy, task), env_id, env_kwargs
    preset = preset or conf.get("preset") or defaults.preset
    model = model if model is not None else conf.get("model", {})
    policy = build_policy(TrainConfig(preset=preset, model=model), task, "cpu")
    try:
        policy.load_state_dict(payload["model"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        hint = "" if conf else (" The checkpoint stores no training config: pass the options it was "
                                "trained with (--env, --env-kw, --preset, --model-kw).")
        raise ValueError(f"checkpoint {path} does not fit a `{preset}` policy {model or ''} for {env_id} "
                         f"{env_kwargs} ({first[1].strip() if len(first) > 1 else first[0]}).{hint}") from None
    return policy.to(device).eval(), env_id, env_kwargs


def _cmd_record(args: argparse.Namespace) -> int:
    from noisy_expert_gym.bridges.video import has_moviepy, record_episodes, resolve_format
    from noisy_expert_gym.problems import make_problem

    env_kwargs = parse_kv(args.env_kw, "--env-kw") if args.env_kw else None
    model = parse_kv(args.model_kw, "--model-kw") if args.model_kw else None
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise ValueError(f"--out {args.out} is a file; give a folder for the videos")
    try:
        kind = resolve_format(args.format)
        if args.checkpoint:
            policy, env_id, env_kwargs = load_policy(args.checkpoint, args.env, env_kwargs, args.preset,
                                                     model, device=args.device)
        else:
            from agents import train

            env_id, env_kwargs = args.env or "NoisyModAdd-v0", env_kwargs or {}
            fields: dict[str, Any] = dict(
                algo=args.algo, env_id=env_id, env_kwargs=env_kwargs, budget_trajectories=args.budget,
                algo_params=parse_kv(args.algo_kw, "--algo-kw"), device=args.device,
                model=model or {}, **parse_kv(args.train_kw, "--train-kw"))
            if args.preset:
                fields["preset"] = args.preset
            res = train(**fields)
            policy = res.policy
            print(f"trained {res.algo} on {env_id} {env_kwargs}: {res.trajectories} trajectories, "
                  f"greedy_full_exact {res.final_metrics.get('greedy_full_exact', float('nan')):.3f}")
        task = make_problem(env_id, **env_kwargs).task
        device = next(policy.parameters()).device
        paths = record_episodes(env_id, GreedyActor(policy, task, device), args.out, env_kwargs=env_kwargs,
                                episodes=args.episodes, seed=args.seed, fmt=kind, fps=args.fps)
    except ImportError as e:
        print(f"neg record: error: {e}", file=sys.stderr)
        return 2
    if args.format == "auto" and not has_moviepy():
        print("moviepy is not installed: wrote GIFs with the project's helper "
              "(pip install 'noisy-expert-gym[video]' for MP4 via Gymnasium's RecordVideo)")
    for p in paths:
        print(p)
    return 0


def add_record_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from noisy_expert_gym.bridges.video import FORMATS

    p = sub.add_parser("record", help="record evaluation episodes of a trained policy (GIF / MP4)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="a checkpoint (last.pt from `neg train --checkpoint-dir`, "
                   "ppo.zip) or its directory; without it, a fresh run is trained first")
    p.add_argument("--env", help="env id (default: the checkpoint's, else NoisyModAdd-v0)")
    p.add_argument("--env-kw", action="append", metavar="K=V", help="env keyword argument (repeatable)")
    p.add_argument("--preset", help="policy preset the checkpoint was trained with (if it stores no config)")
    p.add_argument("--model-kw", action="append", metavar="K=V", help="policy config override (repeatable)")
    p.add_argument("--episodes", type=int, default=3, help="episodes to record (default: 3)")
    p.add_argument("--seed", type=int, default=DEFAULT_RECORD_SEED,
                   help=f"episode i is reset with seed + i (default: {DEFAULT_RECORD_SEED})")
    p.add_argument("--out", default="videos", help="output directory (default: videos)")
    p.add_argument("--format", default="auto", choices=FORMATS,
                   help="auto: MP4 when moviepy is installed, else GIF")
    p.add_argument("--fps", type=float, default=None, help="frames per second (default: the env's)")
    p.add_argument("--device", default="cpu", help="device for the policy (default: cpu)")
    g = p.add_argument_group("fresh training (without --checkpoint)")
    g.add_argument("--algo", default="nail-f", help="algorithm (default: nail-f)")
    g.add_argument("--budget", type=int, default=20_000, help="trajectory budget (default: 20000)")
    g.add_argument("--algo-kw", action="append", metavar="K=V", help="algorithm parameter (repeatable)")
    g.add_argument("--train-kw", action="append", metavar="K=V",
                   help="any other TrainConfig field, e.g. batch_size=64 (repeatable)")
    p.set_defaults(func=_cmd_record)
    return p


__all__ = ["DEFAULT_RECORD_SEED", "GreedyActor", "add_record_parser", "load_policy"]
