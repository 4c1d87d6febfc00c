"""The `neg` command line: one entry point in the top layer, subcommands from every package.

Each package contributes ``add_subcommands(subparsers)``: the env layer (``neg demo``,
``neg export-minari``, ``neg serve-expert``), the agents (``neg train``, ``neg record``) and the
scoreboards (``neg bench`` in :mod:`scoreboards.commands.bench`, ``neg board`` and
``neg submit`` in :mod:`scoreboards.commands.board`). ``neg CMD`` imports only the
module that adds CMD, and the modules import their heavy dependencies inside the
commands, so ``neg demo`` does not pay for torch. ``neg`` and ``neg --help`` import none of
them: the command list is :data:`COMMANDS` (a test checks it against the modules' own help).
Measured (``benchmarks/cli_startup.py``): ``neg --help`` and argument errors start in well under
a second. It lives here because only the top layer may import all three packages.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Modules that contribute subcommands, in help order.
CONTRIBUTORS = ("noisy_expert_gym.demo", "agents.cli", "scoreboards.commands.bench", "scoreboards.commands.board",
                "noisy_expert_gym.bridges.cli", "noisy_expert_gym.serve.cli")
#: Which module adds a command, and its one-line help: ``neg CMD`` imports that one only (all of them
#: when it does not add CMD after all); ``neg --help`` lists them without importing any.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("noisy_expert_gym.demo", "roll out the noisy expert and compare with the closed forms"),
    "train": ("agents.cli", "train one imitation algorithm on one env"),
    "record": ("agents.cli", "record evaluation episodes of a trained policy (GIF / MP4)"),
    "bench": ("scoreboards.commands.bench", "experiment sweeps: run specs, report and export results"),
    "board": ("scoreboards.commands.board", "leaderboards: show them, enter the built-in baselines"),
    "submit": ("scoreboards.commands.board", "run a submission under a board's protocol and enter it"),
    "export-minari": ("noisy_expert_gym.bridges.cli", "export expert rollouts of an env as a Minari dataset"),
    "serve-expert": ("noisy_expert_gym.serve.cli", "serve a problem's noisy expert over HTTP (OpenAI / vLLM completions)"),
}
DESCRIPTION = "noisy-expert-gym: imitation learning from a noisy expert."


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `neg` parser: every contributor's commands, or only `command`'s module's."""
    from noisy_expert_gym.utils import OneLineParser

    parser = OneLineParser(prog="neg", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in (COMMANDS[command][0],) if command in COMMANDS else CONTRIBUTORS:
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
    if not argv or argv == ["-h"] or argv == ["--help"]:  # the command list alone: nothing imported
        help_parser().parse_args(argv)  # prints the help and exits for -h / --help
        help_parser().print_help()
        return 2
    from noisy_expert_gym.utils import run_command

    parser = build_parser(argv[0] if argv else None)
    args, extras = parser.parse_known_args(argv)
    leaf = leaf_parser(parser, args)
    if extras:  # reported by the command they were given to, with its --help
        leaf.error(f"unrecognized arguments: {' '.join(extras)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return run_command(leaf.prog, args.func, args)


def help_parser() -> argparse.ArgumentParser:
    """``neg``'s parser with every command listed from :data:`COMMANDS` (none of their modules
    imported): what ``neg`` and ``neg --help`` print."""
    parser = argparse.ArgumentParser(prog="neg", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, text) in COMMANDS.items():
        sub.add_parser(name, help=text)
    return parser


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
