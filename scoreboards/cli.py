"""The `neg` command line: one entry point in the top layer, subcommands from every package.

Each package contributes ``add_subcommands(subparsers)``: the env layer (``neg demo``,
``neg export-minari``, ``neg serve-expert``), the agents (``neg train``, ``neg record``) and the
scoreboards (``neg bench`` in :mod:`scoreboards.commands.bench`, ``neg board`` and
``neg submit`` in :mod:`scoreboards.commands.board`). ``neg CMD`` imports only the
module that adds CMD, and the modules import their heavy dependencies inside the
commands, so ``neg demo`` does not pay for torch. It lives here because only the top layer may import all
three packages.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from noisy_expert_gym.utils import OneLineParser, run_command

#: Modules that contribute subcommands, in help order.
CONTRIBUTORS = ("noisy_expert_gym.demo", "agents.cli", "scoreboards.commands.bench", "scoreboards.commands.board",
                "noisy_expert_gym.bridges.cli", "noisy_expert_gym.serve.cli")
#: Which module adds a command: ``neg CMD`` imports that one only (all of them when it does
#: not add CMD after all).
COMMANDS = {"demo": "noisy_expert_gym.demo", "train": "agents.cli", "bench": "scoreboards.commands.bench",
            "board": "scoreboards.commands.board", "submit": "scoreboards.commands.board",
            "record": "agents.cli", "export-minari": "noisy_expert_gym.bridges.cli",
            "serve-expert": "noisy_expert_gym.serve.cli"}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `neg` parser: every contributor's commands, or only `command`'s module's."""
    parser = OneLineParser(
        prog="neg", description="noisy-expert-gym: imitation learning from a noisy expert.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in (COMMANDS[command],) if command in COMMANDS else CONTRIBUTORS:
        try:
            mod = importlib.import_module(name)
        except ImportError as e:  # a package not installed yet must not break the others
            if e.name and name.startswith(e.name.split(".")[0]):
                continue
            raise
        mod.add_subcommands(sub)
    if command in COMMANDS and command not in sub.choices:
        return build_parser()
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``neg ARGV``; every error is one line, ``neg CMD: error: ...`` with the fix: exit code 2 for
    what the user can fix (a name, a file, a value; usage errors too), 1 for an internal error."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv[0] if argv else None)
    args, extras = parser.parse_known_args(argv)
    leaf = leaf_parser(parser, args)
    if extras:  # reported by the command they were given to, with its --help
        leaf.error(f"unrecognized arguments: {' '.join(extras)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return run_command(leaf.prog, args.func, args)


def leaf_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the command `args` ran (``neg bench list``'s for ``neg bench list ...``): errors are
    reported by it, so they name the whole command and point at its own ``--help``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(getattr(args, action.dest, None) or "")
            if chosen is not None:
                return leaf_parser(chosen, args)
    return parser


if __name__ == "__main__":
    sys.exit(main())
