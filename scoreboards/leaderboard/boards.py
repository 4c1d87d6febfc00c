"""Leaderboards: a fixed protocol (env, budget, held-out evaluation) and ranked entries.

A board file (``scoreboards/leaderboard/shipped_boards/NAME.toml``)::

    description = "NoisyModAdd, m = 5, eta = 0.2 (absorbing): learn the chain from a noisy expert"
    cost = "about 1 CPU-minute per entry (3 seeds)"

    [env]
    id = "NoisyModAdd-v0"
    kwargs = { p = 7, m = 5, eta = 0.2, law = "absorbing" }

    [budget]
    trajectories = 20000     # expert trajectories per run
    queries = 200000         # cap on expert prefix-queries (default: trajectories x horizon)

    [eval]
    prompts = 1024           # held-out prompts per evaluation seed
    seeds = [...]            # the harness's held-out evaluation seeds (never shown to submissions)
    metric = "greedy_full_exact"

    [protocol]
    train_seeds = [0, 1, 2]  # one independent run per seed; the score is their mean
    timeout_s = 900          # wall-clock limit per run (training + evaluation)

    [[baselines]]            # the built-in algorithms `neg board baselines NAME` enters
    algo = "nail-f"
    train = { preset = "tiny", batch_size = 256, lr = 3e-3 }

The file is declared in :mod:`scoreboards.leaderboard.board_model` (its types and constraints are
the validation, and building the env's problem once checks its kwargs);
:func:`load_board` lists every problem in one :class:`BoardError` or returns a
:class:`Board` carrying the hash of its protocol. Entering a board is
:mod:`scoreboards.leaderboard.entries`, drawing its table :mod:`scoreboards.leaderboard.render`.
"""

from __future__ import annotations

from pathlib import Path

from scoreboards.config import load_toml, shipped, validate
from scoreboards.leaderboard.board_model import BOARD_METRICS, Board, BoardError, BoardFile
from scoreboards.provenance import short_hash

BOARD_DIR = Path(__file__).resolve().parent / "shipped_boards"
#: Board-file keys for people, outside the protocol hash.
PROSE = ("description", "cost")


def shipped_boards() -> list[str]:
    return shipped(BOARD_DIR)


def load_board(name_or_path: str | Path) -> Board:
    """Load and validate a board (a shipped name or a TOML path); one :class:`BoardError`
    (a ValueError) lists every problem."""
    path, raw = load_toml(name_or_path, BOARD_DIR, "board", BoardError)
    board = validate(BoardFile, {"name": path.stem, **raw}, str(path), BoardError)
    # The protocol hash covers the file as validated, the default query cap included, but not
    # the words for people (description, cost): rewording a board keeps its entries.
    raw["budget"].setdefault("queries", board.budget.queries)
    protocol = {k: v for k, v in raw.items() if k not in PROSE}
    return board.to_board(short_hash(protocol, n=12))


__all__ = ["BOARD_DIR", "BOARD_METRICS", "Board", "BoardError", "load_board", "shipped_boards"]
