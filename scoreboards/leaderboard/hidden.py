"""Hidden-rule boards: the harness's secret, and the hidden task instance of each run.

A board may declare its task as a hidden instance of a family (``[env] hidden =
["automaton_seed", "relabel_seed"]``): for every training seed the harness draws those
keyword arguments from a secret of its own, builds the problem (and so the oracle) in
its own process, and never sends the drawn values, the transition table or the
relabelling to the worker. The submission sees token ids, the public spec (sizes,
horizon, budget) and the expert client; its score measures what it learned from the
expert, because nobody outside the harness knows the rule.

The secret
==========

32 random bytes (:func:`secrets.token_bytes`), in a file private to the harness's user
(mode 0600): ``$NEG_BOARD_SECRET_FILE``, else ``board-secret`` next to the results
database (``results/board-secret``), created on first use. The harness reads it into
memory only. A file others may read is refused (``chmod 600``), and so is a secret in the
environment (``$NEG_BOARD_SECRET``): a process's ``/proc/PID/environ`` keeps the
environment it was started with for its whole life, whatever ``os.environ`` says later.

It is never committed (``results/`` is git-ignored) and never leaves the harness: the
worker process gets the public spec only, and the sandbox shows it neither the results
directory nor the secret's file (:mod:`~scoreboards.leaderboard.submission.sandbox`). Entries record :func:`secret_id` (a hash of the secret: which
secret an entry was made under, revealing nothing of it).

Everything hidden derives from it by HMAC-SHA256 keyed with the secret over
``(board protocol hash, purpose, seed)`` (:func:`derive`): the hidden keyword
arguments of each training seed, and on hidden boards the harness's random streams
too (training prompts, the noisy expert's draws, the held-out evaluation prompts), so
a run is reproducible by whoever holds the secret and unpredictable by anyone else.
Evaluation is on the same hidden instance as the run's training, on held-out prompts
(never issued for training, never shown before ``train`` returns), and the learning
curve on a set apart from them (``curve-prompts``).

Each entry stores a commitment to the hidden values it was run on
(:func:`commitment`: SHA-256 of a secret-derived nonce and the values). The holder of
the secret can later open it (publish the nonce and the values, e.g. when a board is
retired), and anyone can then check every entry was run on those instances; until
then the commitment shows which entries shared instances without revealing them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from noisy_expert_gym.utils import create_atomic
from scoreboards.provenance import canonical_json

#: The environment variable that must not hold the secret (refused: see the module docstring).
SECRET_ENV = "NEG_BOARD_SECRET"
#: The environment variable naming the secret's file.
SECRET_FILE_ENV = "NEG_BOARD_SECRET_FILE"
#: The secret's file name next to the results database.
SECRET_FILE = "board-secret"
#: Keyword arguments a board may hide (each must be one its env accepts).
HIDEABLE = ("automaton_seed", "relabel_seed", "corruption_seed")
_SECRET_BYTES = 32


def secret_path(results_dir: str | Path) -> Path:
    """Where the secret's file is: ``$NEG_BOARD_SECRET_FILE`` or ``<results dir>/board-secret``."""
    return Path(os.environ.get(SECRET_FILE_ENV) or Path(results_dir) / SECRET_FILE)


def load_secret(results_dir: str | Path, create: bool = True) -> bytes:
    """The harness's secret, read from its private file into memory (module docstring).

    Args:
        results_dir: the results database's directory (the file's default home).
        create: create the file with fresh random bytes if it does not exist.

    Raises:
        FileNotFoundError: no secret and ``create`` is False.
        ValueError: a malformed secret, a secret file others may read, or a secret in the
            environment.
    """
    if SECRET_ENV in os.environ:
        raise ValueError(f"${SECRET_ENV} is set: the board secret is never in the environment (a process's "
                         f"/proc/PID/environ keeps it for its whole life); put it in a file only you can read "
                         f"(`chmod 600`), name that file in ${SECRET_FILE_ENV}, and unset ${SECRET_ENV}")
    path = secret_path(results_dir)
    if not path.exists():
        if not create:
            raise FileNotFoundError(f"no board secret at {path} (set ${SECRET_FILE_ENV} or create one)")
        # Created whole or not at all (private from the start), and two harnesses starting together
        # agree on one secret.
        create_atomic(path, secrets.token_hex(_SECRET_BYTES) + "\n", mode=0o600)
    with open(path, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if mode & 0o077:
            raise ValueError(f"the board secret {path} can be read by others (mode {mode & 0o777:o}): "
                             f"`chmod 600 {path}`")
        text = f.read(4096)
    try:
        value = bytes.fromhex(text.decode("ascii").strip())
    except ValueError:
        value = b""
    if len(value) < 16:
        raise ValueError(f"the board secret {path} must hold at least 32 hex characters; delete it to make a "
                         "fresh one (entries made under the old secret can then no longer be verified)")
    return value


def secret_id(secret: bytes) -> str:
    """A public name of a secret (a hash of it): which secret an entry was made under."""
    return hashlib.sha256(b"neg-board-secret-id\0" + secret).hexdigest()[:12]


def derive(secret: bytes, board_hash: str, purpose: str, seed: int) -> int:
    """A 63-bit integer drawn from the secret for (board, purpose, seed): HMAC-SHA256."""
    msg = f"neg-board/v1/{board_hash}/{purpose}/{int(seed)}".encode()
    return int.from_bytes(hmac.new(secret, msg, hashlib.sha256).digest()[:8], "big") >> 1


def commitment(secret: bytes, board_hash: str, values: dict[int, dict[str, int]]) -> str:
    """SHA-256 of a secret-derived nonce and the hidden values of each training seed.

    Opened by publishing :func:`commitment_nonce` and the values (never the secret).
    """
    payload = canonical_json({"board": board_hash, "instances": {str(k): v for k, v in sorted(values.items())}})
    return hashlib.sha256(commitment_nonce(secret, board_hash).encode() + payload.encode()).hexdigest()


def commitment_nonce(secret: bytes, board_hash: str) -> str:
    """The nonce that opens a board's commitments (with the hidden values)."""
    return hmac.new(secret, f"neg-board/v1/{board_hash}/nonce".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Instance:
    """What the harness needs to run one training seed of a board: the problem's kwargs
    (hidden values included) and the seeds of its random streams. Never sent to a worker."""

    seed: int
    env_kwargs: dict[str, Any]
    hidden: dict[str, int] = field(default_factory=dict)
    expert_seed: Any = None
    prompt_seed: Any = None
    eval_seeds: list[Any] = field(default_factory=list)
    curve_seed: Any = None
    """The learning curve's prompts (a set apart from the scored ones)."""

    def __repr__(self) -> str:  # never prints the hidden values
        return f"Instance(seed={self.seed}, hidden={sorted(self.hidden)})"

    def eval_rngs(self) -> list[np.random.Generator]:
        return [np.random.default_rng(s) for s in self.eval_seeds]


def instance(board: Any, seed: int, secret: bytes | None) -> Instance:
    """The run of training seed `seed` on `board`: on a hidden board drawn from `secret`.

    Open boards need no secret: their streams derive from the seed and the board's
    hash, so anyone can reproduce them.

    Raises:
        ValueError: a hidden board without a secret.
    """
    salt = board.seed_salt
    if not board.hidden:
        return Instance(seed=seed, env_kwargs=dict(board.env_kwargs),
                        expert_seed=int(np.random.SeedSequence([seed, salt, 1]).generate_state(1)[0]),
                        prompt_seed=[seed, salt, 2], eval_seeds=list(board.eval_seeds), curve_seed=[salt, 3])
    if secret is None:
        raise ValueError(f"board `{board.name}` runs on hidden instances: the harness needs its secret "
                         f"(the file ${SECRET_FILE_ENV} names, or {SECRET_FILE} next to the results database)")
    hidden = {key: derive(secret, board.hash, key, seed) for key in board.hidden}
    return Instance(seed=seed, env_kwargs={**board.env_kwargs, **hidden}, hidden=hidden,
                    expert_seed=derive(secret, board.hash, "expert-rng", seed),
                    prompt_seed=[derive(secret, board.hash, "prompt-rng", seed)],
                    eval_seeds=[[s, derive(secret, board.hash, "eval-prompts", s)] for s in board.eval_seeds],
                    curve_seed=[derive(secret, board.hash, "curve-prompts", 0)])


def entry_provenance(board: Any, secret: bytes | None) -> dict[str, Any]:
    """What an entry records of its instances: the secret's id and the commitment (hidden boards)."""
    if not board.hidden:
        return {"secret_id": None, "seed_commitment": None}
    assert secret is not None
    values = {s: instance(board, s, secret).hidden for s in board.train_seeds}
    return {"secret_id": secret_id(secret), "seed_commitment": commitment(secret, board.hash, values)}


__all__ = ["HIDEABLE", "SECRET_ENV", "SECRET_FILE", "SECRET_FILE_ENV", "Instance", "commitment",
           "commitment_nonce", "derive", "entry_provenance", "instance", "load_secret",
           "secret_id", "secret_path"]
