"""`neg train`: train one algorithm on one problem from the command line (and `neg record`).

Every TrainConfig field is an option, generated from its declaration (type,
choices, default, description): ``--budget-trajectories`` (alias ``--budget``),
``--lr``, ``--schedule {constant,cosine}``, ``--progress/--no-progress``, ...
Dictionary fields are repeatable ``K=V`` options (values parsed as JSON when
possible: numbers, booleans): ``--env-kw`` (env_kwargs), ``--algo-kw``
(algo_params), ``--model-kw`` (model), ``--eval-env-kw`` (eval_env_kwargs).

``add_subcommands(sub)`` adds ``train`` and ``record`` to the ``neg`` parser;
``python -m agents.cli ...`` (and ``torchrun -m agents.cli ...``) is ``neg train``
alone, without the other layers' commands.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import typing
from collections.abc import Sequence
from typing import Any

from noisy_expert_gym.utils import OneLineParser, parse_kv, run_command, write_atomic

#: Flags that are not ``--<field-name>``: dictionaries as repeatable K=V options, short aliases.
FLAGS: dict[str, tuple[str, ...]] = {
    "env_id": ("--env",), "env_kwargs": ("--env-kw",), "algo_params": ("--algo-kw",), "model": ("--model-kw",),
    "eval_env_kwargs": ("--eval-env-kw",), "budget_trajectories": ("--budget-trajectories", "--budget"),
}


def _base_type(hint: Any) -> Any:
    """``int`` for ``int | None``, ``Annotated[int, ...]``; a Literal or dict stays itself."""
    if typing.get_origin(hint) is typing.Annotated:
        return _base_type(typing.get_args(hint)[0])
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, __import__("types").UnionType) and len(args) == 1:
        return _base_type(args[0])
    return hint


def add_config_options(p: argparse.ArgumentParser) -> None:
    """One option per TrainConfig field, from its declaration; every default is None (= the field's)."""
    from agents.config import TrainConfig

    for name, f in TrainConfig.model_fields.items():
        flags = FLAGS.get(name, ("--" + name.replace("_", "-"),))
        hint = _base_type(f.annotation)
        doc = f.description or ""
        if hint is bool:
            p.add_argument(*flags, dest=name, action=argparse.BooleanOptionalAction, default=None, help=doc)
        elif typing.get_origin(hint) is dict or hint is dict:
            p.add_argument(*flags, dest=name, action="append", metavar="K=V", help=f"{doc} (K=V, repeatable)")
        elif typing.get_origin(hint) is typing.Literal:
            p.add_argument(*flags, dest=name, choices=typing.get_args(hint), default=None,
                           help=f"{doc} (default: {f.get_default()})")
        else:
            p.add_argument(*flags, dest=name, type=hint if hint in (int, float) else str, default=None,
                           help=f"{doc} (default: {f.get_default(call_default_factory=True)!r})")


def config_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields given on the command line (K=V lists parsed)."""
    from agents.config import TrainConfig

    out = {}
    for name in TrainConfig.model_fields:
        v = getattr(args, name, None)
        if isinstance(v, list):
            v = parse_kv(v, FLAGS.get(name, (name,))[0])
        if v is not None:
            out[name] = v
    return out


def _cmd_train(args: argparse.Namespace) -> int:
    from agents import ALGORITHMS, get_algorithm, train

    if args.list:
        if args.algo:  # `--algo path.py:Name --list`: that algorithm (a plugin is loaded) and its parameters
            get_algorithm(args.algo)
        for name, alg in ALGORITHMS.items():
            if args.algo and name != args.algo:
                continue
            flag = " [clean expert: reference only]" if alg.uses_clean_expert else ""
            flag += " [no expert queries: not for boards]" if not alg.queries_expert else ""
            print(f"{name:11s} {alg.summary}{flag}\n{'':11s} params: {alg.defaults}")
        return 0
    if args.out and os.path.isdir(args.out):  # before training, not after
        raise ValueError(f"--out {args.out} is a folder; give a file path for the result JSON")
    res = train(**config_fields(args))
    m = res.final_metrics
    print(f"\n{res.algo} on {res.env_id} {res.env_kwargs}: {res.trajectories} trajectories, "
          f"{res.queries} queries, {res.wall_time:.1f}s on {res.device}")
    for k in ("val_loss", "greedy_full_exact", "greedy_final_exact", "greedy_correct_prefix_len",
              "greedy_expert_mode_full", "sampled_full_exact"):
        if k in m:
            print(f"  {k:26s} {m[k]:.4f}")
    if args.out:  # never a half-written result file
        write_atomic(args.out, json.dumps(res.to_dict(), indent=1, default=str))
    return 0


def configure_train(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``neg train``'s options on parser `p`."""
    p.add_argument("--out", help="write the run result as JSON here")
    p.add_argument("--list", action="store_true", help="list the algorithms and their parameters (with --algo: "
                                                       "that one, e.g. a plugin `path/to/file.py:Name`)")
    add_config_options(p)
    p.set_defaults(func=_cmd_train, command="train")
    return p


def add_train_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    return configure_train(sub.add_parser("train", help="train one imitation algorithm on one env",
                                          description=__doc__,
                                          formatter_class=argparse.RawDescriptionHelpFormatter))


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    """``neg train`` and ``neg record``."""
    from agents.record import add_record_parser

    add_train_parser(sub)
    add_record_parser(sub)


def main(argv: Sequence[str] | None = None) -> int:
    """``neg train`` on its own (``python -m agents.cli`` / ``torchrun -m agents.cli``); errors are one
    line on stderr, exit code 2 (:func:`noisy_expert_gym.utils.run_command`)."""
    parser = configure_train(OneLineParser(prog="python -m agents.cli", description=__doc__,
                                           formatter_class=argparse.RawDescriptionHelpFormatter))
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    return run_command(parser.prog, args.func, args)


if __name__ == "__main__":  # torchrun -m agents.cli ... / python -m agents.cli ...
    sys.exit(main())
