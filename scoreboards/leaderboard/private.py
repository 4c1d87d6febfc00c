"""The public/private split of a hidden-rule board (``neg board private BOARD``).

``neg submit`` scores an entry at once on the board's **practice** instances: drawn from the
harness's secret (:mod:`scoreboards.leaderboard.hidden`), the same for every entry for the
board's life. Their rule is never shown to a submission, but it is fixed, so it can be
learned *across* submissions -- from the expert's answers in an earlier run, by a person
reading them, by code that carries a table from one submission to the next -- and a practice
score cannot tell that from learning within the run. The practice table is for practice.

The **ranking** is a private round: :func:`run_round` first fixes the entries it ranks (every
entry of the board's current protocol already stored), then draws a fresh secret
(:func:`secrets.token_bytes`, 32 bytes, never derived from anything a submitter could know),
and re-runs each entry from its stored code (built-ins from their target) on the instances
drawn from that secret, under the same protocol. No entry's code existed after the secret,
so nothing in it can be tuned to those instances: an entry that hard-codes the practice
instance's answers scores at chance there, one that learns from the expert scores as on
practice. Each round's secret is kept in a file private to the harness's user
(``<results dir>/private-rounds/<board>-<round>``, mode 0600) so the harness can re-run it; its
id and each run's commitment to its instances are stored (``private_rounds``,
``private_scores``), and the secret may be published when the round is closed.

Each round ranks the entries stored before it; a later entry waits for the next round.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from noisy_expert_gym.utils import create_atomic, safe_name
from scoreboards.analysis.stats import seed_summary

ROUND_DIR = "private-rounds"
_SECRET_BYTES = 32


def round_secret_path(results_dir: str | Path, board: Any, round_id: int, secret_id: str) -> Path:
    """Where round `round_id` of `board` keeps its secret: named by the board (as a safe file name), the
    round and the secret's id, so a database made afresh beside old rounds' files never reads theirs."""
    return Path(results_dir) / ROUND_DIR / f"{safe_name(board.name)}-{int(round_id)}-{safe_name(secret_id)}"


def load_round_secret(store: Any, board: Any, round_id: int) -> bytes:
    """The secret of a recorded round of `board` in `store` (for re-running it).

    Raises:
        ValueError: `store` has no such round of `board`.
        FileNotFoundError: its results directory does not hold the round's secret.
    """
    from scoreboards.leaderboard.hidden import secret_id

    rnd = next((r for r in store.private_rounds(board.name) if r["id"] == int(round_id)), None)
    if rnd is None:
        raise ValueError(f"board `{board.name}` has no private round {round_id}")
    secret = bytes.fromhex(round_secret_path(store.path.parent, board, rnd["id"], rnd["secret_id"]).read_text().strip())
    if secret_id(secret) != rnd["secret_id"]:
        raise ValueError(f"the secret file of round {round_id} is not the round's secret {rnd['secret_id']}")
    return secret


def run_round(board: Any, store: Any, timeout: float | None = None,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Rank `board`'s stored entries on a fresh secret: draw it, re-run each entry, record the scores.

    Returns:
        ``{"round": round id, "secret_id": ..., "rows": [private score rows]}``.

    Raises:
        ValueError: an open board (its rule is public: there is nothing private to draw), or no
            entries under the board's current protocol.
    """
    from scoreboards.leaderboard.entries import run_entry
    from scoreboards.leaderboard.entry_code import rerun_target
    from scoreboards.leaderboard.hidden import entry_provenance, secret_id
    from scoreboards.leaderboard.submission import SubmissionRejected
    from scoreboards.untrusted import terminal

    if not board.hidden:
        raise ValueError(f"board `{board.name}` is open (its rule is public): a private round needs a hidden-rule "
                         "board, whose instances can be drawn from a fresh secret")
    entries = [e for e in store.board_entries(board.name) if e["board_hash"] == board.hash]
    if not entries:
        raise ValueError(f"board `{board.name}` has no entries under its current protocol to rank "
                         f"(`neg board baselines {board.name}` or `neg submit`)")
    # The entries are fixed (stored) before the secret exists.
    secret = secrets.token_bytes(_SECRET_BYTES)
    round_id = store.add_private_round(board.name, board.hash, secret_id(secret), [e["id"] for e in entries])
    folder = store.path.parent / ROUND_DIR
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    if not create_atomic(round_secret_path(store.path.parent, board, round_id, secret_id(secret)), secret.hex() + "\n",
                         mode=0o600):
        raise RuntimeError(f"round {round_id}'s secret file already exists; remove {folder} if its database is gone")
    commitment = entry_provenance(board, secret)["seed_commitment"]
    for e in entries:
        rerun = e.get("rerun") or {}
        if e["kind"] in ("builtin", "reference"):
            target = e["target"]
        else:
            target = rerun_target(store.path.parent, e["code_ref"]) if e.get("code_ref") else None
        if target is None:
            store.add_private_score(round_id, e["id"], "rejected", detail="its code is not in the code store")
            continue
        try:
            ran = run_entry(board, target, store, params=rerun.get("params"), train=rerun.get("train"),
                            timeout=timeout, name=f"private #{e['id']} {e['name']}", log=log, secret=secret)
        except SubmissionRejected as err:
            store.add_private_score(round_id, e["id"], "rejected", detail=terminal(err.reason, keep_newlines=True))
            continue
        scores = [o.metrics[board.metric] for o in ran["outcomes"]]
        store.add_private_score(round_id, e["id"], "scored", score=sum(scores) / len(scores),
                                per_seed=[{"seed": o.seed, **o.metrics} for o in ran["outcomes"]],
                                seed_commitment=commitment)
    return {"round": round_id, "secret_id": secret_id(secret), "rows": store.private_scores(round_id)}


def private_rows(board: Any, store: Any) -> dict[str, Any] | None:
    """The latest private round of `board`'s current protocol, ranked: ``{"round", "secret_id",
    "created_at", "ranked", "refs", "rejected"}`` (entries with their private ``score``, ``per_seed``,
    interval ``ci``), or None before the first round."""
    rounds = [r for r in store.private_rounds(board.name) if r["board_hash"] == board.hash]
    if not rounds:
        return None
    rnd = rounds[-1]
    by_id = {e["id"]: e for e in store.board_entries(board.name)}
    rows = []
    for s in store.private_scores(rnd["id"]):
        e = by_id.get(s["entry_id"])
        if e is None:
            continue
        row = {**e, "outcome": s["outcome"], "detail": s["detail"], "per_seed": s["per_seed"],
               "score": s["score"] if s["score"] is not None else math.nan, "practice_score": e["score"]}
        row["ci"] = seed_summary(row, board.metric).ci_text() if s["outcome"] == "scored" else ""
        rows.append(row)
    scored = [r for r in rows if r["outcome"] == "scored"]
    return {"round": rnd["id"], "secret_id": rnd["secret_id"], "created_at": rnd["created_at"],
            "ranked": sorted((r for r in scored if r["kind"] != "reference"), key=lambda r: -r["score"]),
            "refs": [r for r in scored if r["kind"] == "reference"],
            "rejected": [r for r in rows if r["outcome"] != "scored"]}


__all__ = ["ROUND_DIR", "load_round_secret", "private_rows", "round_secret_path", "run_round"]
