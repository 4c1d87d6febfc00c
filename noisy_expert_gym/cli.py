"""The `neg` command line: one entry point, subcommands contributed by each package.

Each package exposes ``add_subcommands(subparsers)`` in its own ``cli`` module;
they are imported lazily so ``neg demo`` does not pay for torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Modules that contribute subcommands, in help order.
_CONTRIBUTORS = ("noisy_expert_gym.demo", "agents.cli", "scoreboards.cli", "noisy_expert_gym.bridges.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neg", description="noisy-expert-gym: imitation learning from a noisy expert.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _CONTRIBUTORS:
        try:
            mod = importlib.import_module(name)
        except ImportError as e:  # a package not installed yet must not break the others
            if e.name and name.startswith(e.name.split(".")[0]):
                continue
            raise
        mod.add_subcommands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as e:
        print(f"neg {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
