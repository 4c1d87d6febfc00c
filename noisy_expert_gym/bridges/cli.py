"""`neg export-minari`: expert rollouts of an env as a Minari dataset.

    neg export-minari --env NoisyModAdd-v0 --env-kw eta=0.2 --episodes 1000

(``neg record``, which needs a learner, lives with the learners: :mod:`agents.record`.)
"""

from __future__ import annotations

import argparse
import json
import sys

from noisy_expert_gym.utils import parse_kv


def _cmd_export_minari(args: argparse.Namespace) -> int:
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
