"""`neg record` (videos of a trained policy) and `neg export-minari` (expert rollouts as a Minari dataset).

    neg record --checkpoint runs/nail/last.pt --episodes 3 --out videos/
    neg record --algo bc --budget 2000 --env-kw m=3 --preset tiny     # trains first, then records
    neg export-minari --env NoisyModAdd-v0 --env-kw eta=0.2 --episodes 1000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

DEFAULT_RECORD_SEED = 123_456_789  # TrainConfig.eval_seed: evaluation episodes, not training prompts


# --------------------------------------------------------------------------- loading a trained policy
def find_checkpoint(path: str) -> str:
    """A checkpoint file from a file or a checkpoint directory (``last.pt``, else ``ppo.zip``)."""
    if os.path.isdir(path):
        for name in ("last.pt", "ppo.zip"):
            if os.path.exists(os.path.join(path, name)):
                return os.path.join(path, name)
        raise FileNotFoundError(f"no checkpoint (last.pt or ppo.zip) in directory {path}; train with "
                                "`neg train --checkpoint-dir DIR` first")
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return path


def load_policy(checkpoint: str, env_id: str | None = None, env_kwargs: dict[str, Any] | None = None,
                preset: str | None = None, model: dict[str, Any] | None = None,
                device: str = "cpu") -> tuple[Any, str, dict[str, Any]]:
    """Rebuild the trained policy of a checkpoint: ``(policy, env_id, env_kwargs)``.

    Options given here override what the checkpoint stores (``config``, the
    TrainConfig dict of the run; PPO's ``ppo.json``); without either, the
    TrainConfig defaults apply and a mismatch is reported with what to pass.
    """
    from agents.config import TrainConfig
    from agents.trainer import load_checkpoint, make_env

    path = find_checkpoint(checkpoint)
    if path.endswith(".zip"):
        meta_path = os.path.splitext(path)[0] + ".json"
        conf = {}
        if os.path.exists(meta_path):
            with open(meta_path) as fh:
                conf = json.load(fh)
        payload = None
    else:
        payload = load_checkpoint(path)
        conf = payload.get("config") or {}
    defaults = TrainConfig()
    env_id = env_id or conf.get("env_id") or defaults.env_id
    env_kwargs = env_kwargs if env_kwargs is not None else conf.get("env_kwargs", {})
    env = make_env(env_id, env_kwargs)
    task = env.unwrapped.task
    env.close()
    if payload is None:
        from stable_baselines3 import PPO

        from agents.algos.ppo import SB3TokenPolicy

        sb3 = PPO.load(path, device=device)
        if sb3.observation_space.shape != (task.obs_len,):
            raise ValueError(f"PPO model {path} observes shape {sb3.observation_space.shape}, but "
                             f"{env_id} {env_kwargs} has ({task.obs_len},): pass the --env / --env-kw it "
                             "was trained on")
        return SB3TokenPolicy(sb3.policy, task), env_id, env_kwargs
    from agents.hf_policy import build_policy

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


# --------------------------------------------------------------------------- commands
def _cmd_record(args: argparse.Namespace) -> int:
    from agents.cli import parse_kv
    from agents.trainer import make_env
    from noisy_expert_gym.bridges.video import (
        GreedyActor,
        has_moviepy,
        record_episodes,
        resolve_format,
    )

    env_kwargs = parse_kv(args.env_kw, "--env-kw") if args.env_kw else None
    model = parse_kv(args.model_kw, "--model-kw") if args.model_kw else None
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
        env = make_env(env_id, env_kwargs)
        task = env.unwrapped.task
        env.close()
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


def _cmd_export_minari(args: argparse.Namespace) -> int:
    from agents.cli import parse_kv
    from noisy_expert_gym.bridges.minari_io import export_minari

    env_kwargs = parse_kv(args.env_kw, "--env-kw")
    try:
        ds = export_minari(args.env, env_kwargs, num_episodes=args.episodes, seed=args.seed, clean=args.clean,
                           dataset=args.id, overwrite=args.overwrite, data_format=args.data_format,
                           author=args.author)
    except ImportError as e:
        print(f"neg export-minari: error: {e}", file=sys.stderr)
        return 2
    ds_id = ds.spec.dataset_id
    kw = "".join(f" --env-kw {k}={json.dumps(v)}" for k, v in env_kwargs.items())
    algo = "bc-clean" if args.clean else "bc"
    print(f"wrote Minari dataset {ds_id}: {ds.total_episodes} episodes, {ds.total_steps} steps "
          f"({'clean expert: reference data only' if args.clean else 'noisy expert'})")
    print(f"train on it: neg train --algo {algo} --algo-kw dataset={ds_id} --env {args.env}{kw} "
          f"--budget {ds.total_episodes}")
    return 0


def add_subcommands(sub: argparse._SubParsersAction) -> None:
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

    p = sub.add_parser("export-minari", help="export expert rollouts of an env as a Minari dataset",
                       description="Export noisy-expert (or, with --clean, clean-expert) rollouts of an "
                       "env as a Minari dataset in $MINARI_DATASETS_PATH (needs the `minari` extra).")
    p.add_argument("--env", default="NoisyModAdd-v0", help="env id (default: NoisyModAdd-v0)")
    p.add_argument("--env-kw", action="append", metavar="K=V", help="env keyword argument (repeatable)")
    p.add_argument("--episodes", type=int, default=1000, help="number of rollouts (default: 1000)")
    p.add_argument("--seed", type=int, default=0, help="env seed (default: 0)")
    p.add_argument("--clean", action="store_true",
                   help="the clean expert's rollouts (flagged as reference data in the metadata)")
    p.add_argument("--id", help="dataset id (default: noisy-expert/<env>/<noisy|clean>-v0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset with this id")
    p.add_argument("--data-format", choices=("hdf5", "arrow"), default=None,
                   help="Minari storage (default: hdf5 when h5py is installed, else arrow)")
    p.add_argument("--author", default=None, help="recorded in the dataset metadata")
    p.set_defaults(func=_cmd_export_minari)
