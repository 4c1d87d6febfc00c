"""`neg train`: train one algorithm on one env from the command line.

Every TrainConfig field is an option (``--budget`` is ``--budget-trajectories``);
env and algorithm keyword arguments go through repeatable ``--env-kw k=v`` and
``--algo-kw k=v`` (values parsed as JSON when possible: numbers, booleans).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from typing import Any


def parse_kv(items: list[str] | None, what: str) -> dict[str, Any]:
    """['eta=0.2', 'law=mixture'] -> {'eta': 0.2, 'law': 'mixture'}."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"{what} expects key=value, got `{item}`")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


_SPECIAL = {"env_kwargs", "algo_params", "model", "eval_env_kwargs"}


def _add_config_options(p: argparse.ArgumentParser) -> None:
    from agents.config import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    docs = _field_docs(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name in _SPECIAL or f.name in ("algo", "env_id"):
            continue
        flag = "--" + f.name.replace("_", "-")
        flags = [flag] + (["--budget"] if f.name == "budget_trajectories" else [])
        hint = hints[f.name]
        if hint is bool:
            p.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                           help=docs.get(f.name))
            continue
        base = next((t for t in typing.get_args(hint) if t is not type(None)), hint)
        p.add_argument(*flags, dest=f.name, type=base if base in (int, float) else str, default=None,
                       help=f"{docs.get(f.name, '')} (default: {f.default!r})")


def _field_docs(cls: type) -> dict[str, str]:
    """The one-line docstrings under each dataclass field (read from the source)."""
    import inspect

    lines = inspect.getsource(cls).splitlines()
    docs, last = {}, None
    for line in lines:
        s = line.strip()
        if ":" in s and not s.startswith(('"', "#")) and "=" in s:
            last = s.split(":", 1)[0]
        elif s.startswith('"""') and last:
            docs[last] = s.strip('"')
            last = None
    return docs


def _cmd_train(args: argparse.Namespace) -> int:
    from agents import ALGORITHMS, train

    if args.list:
        for name, alg in ALGORITHMS.items():
            flag = " [clean expert: reference only]" if alg.uses_clean_expert else ""
            print(f"{name:11s} {alg.summary}{flag}\n{'':11s} params: {alg.defaults}")
        return 0
    from agents.config import TrainConfig

    fields = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
              if getattr(args, f.name, None) is not None and f.name not in _SPECIAL}
    fields.update(algo=args.algo, env_id=args.env, env_kwargs=parse_kv(args.env_kw, "--env-kw"),
                  algo_params=parse_kv(args.algo_kw, "--algo-kw"), model=parse_kv(args.model_kw, "--model-kw"),
                  eval_env_kwargs=parse_kv(args.eval_env_kw, "--eval-env-kw"))
    res = train(**fields)
    m = res.final_metrics
    print(f"\n{res.algo} on {res.env_id} {res.env_kwargs}: {res.trajectories} trajectories, "
          f"{res.queries} queries, {res.wall_time:.1f}s on {res.device}")
    for k in ("val_loss", "greedy_full_exact", "greedy_final_exact", "greedy_correct_prefix_len",
              "sampled_full_exact"):
        if k in m:
            print(f"  {k:26s} {m[k]:.4f}")
    if args.out:
        import os

        tmp = f"{args.out}.tmp-{os.getpid()}"
        with open(tmp, "w") as fh:
            json.dump(res.to_dict(), fh, indent=1, default=str)
        os.replace(tmp, args.out)  # never a half-written result file
    return 0


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one imitation algorithm on one env",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algo", default="nail-f", help="algorithm name (see --list)")
    p.add_argument("--env", default="NoisyModAdd-v0", help="env id")
    p.add_argument("--env-kw", action="append", metavar="K=V", help="env keyword argument (repeatable)")
    p.add_argument("--algo-kw", action="append", metavar="K=V", help="algorithm parameter (repeatable)")
    p.add_argument("--model-kw", action="append", metavar="K=V", help="policy config override (repeatable)")
    p.add_argument("--eval-env-kw", action="append", metavar="K=V",
                   help="evaluation-env override of --env-kw, e.g. split=test on GSM-8K (repeatable)")
    p.add_argument("--out", help="write the run result as JSON here")
    p.add_argument("--list", action="store_true", help="list the algorithms and their parameters")
    _add_config_options(p)
    p.set_defaults(func=_cmd_train)


if __name__ == "__main__":  # torchrun -m agents.cli ... / python -m agents.cli ...
    from noisy_expert_gym.cli import main

    sys.exit(main(["train", *sys.argv[1:]]))
