"""Re-running a board entry from its stored code (``neg board verify BOARD ENTRY``).

An entry records what is needed to run it again (:mod:`scoreboards.leaderboard.entries`): its code's
digest (the copy under ``<results dir>/code/``) or, for a built-in, the algorithm with its
parameters and training fields; the board's protocol hash; on a hidden-rule board the
secret's id and a commitment to the hidden instances. :func:`verify_entry` checks those
still hold, re-runs every training seed under the same protocol, and records the outcome:

- ``reproduced``: every training seed's re-run score equals the stored one, within the
  board's ``verify_tolerance`` (0 on the CPU boards: equal, as a deterministic entry is --
  the harness's streams are seeded, so equal code on equal libraries repeats itself);
- ``not_reproduced``: some seed's score differs by more (the detail names it);
- ``cannot_rerun``: the code is not stored, the protocol changed, this harness does not
  hold the secret the entry was made under, or the re-run was rejected.

A mean that lands inside the stored interval is not a reproduction: with three seeds the
interval can span most of [0, 1] while one seed's score is not repeated at all. An entry is
shown as **verified** when its run and a re-run were both sandboxed (``sandbox`` is not
``none``) and the re-run reproduced every seed: :func:`status`. (Rows an older harness
recorded as ``within_ci`` are not verified.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scoreboards.provenance import code_version

#: Outcomes that count as a successful re-run.
REPRODUCED = ("reproduced",)


@dataclass(frozen=True)
class Verification:
    """The outcome of one re-run."""

    outcome: str
    detail: str
    score: float | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in REPRODUCED


def verify_entry(board: Any, entry_id: int, store: Any, timeout: float | None = None,
                 log: Callable[[str], None] = print) -> Verification:
    """Re-run entry `entry_id` of `board` from its stored code and record the outcome.

    Raises:
        ValueError: the board has no such entry.
    """
    from scoreboards.leaderboard.entries import board_secret, run_entry
    from scoreboards.leaderboard.entry_code import rerun_target
    from scoreboards.leaderboard.hidden import entry_provenance, secret_id
    from scoreboards.leaderboard.submission import SubmissionRejected

    entry = store.board_entry(entry_id)
    if entry is None or entry["board"] != board.name:
        raise ValueError(f"board `{board.name}` has no entry {entry_id} (`neg board show {board.name}` lists them)")

    def done(outcome: str, detail: str, score: float | None = None, per_seed: Any = None,
             sandbox: str | None = None) -> Verification:
        store.add_verification(entry_id, outcome, score=score, per_seed=per_seed, detail=detail, sandbox=sandbox)
        return Verification(outcome, detail, score)

    if entry["board_hash"] != board.hash:
        return done("cannot_rerun", f"made under protocol {entry['board_hash']}; the board's protocol is now "
                                    f"{board.hash}")
    if board.hidden:
        secret = board_secret(board, store)
        if entry.get("secret_id") != secret_id(secret):
            return done("cannot_rerun", f"made under harness secret {entry.get('secret_id')}; this harness holds "
                                        f"{secret_id(secret)}: only the holder of that secret can re-run it")
        if entry_provenance(board, secret)["seed_commitment"] != entry.get("seed_commitment"):
            return done("cannot_rerun", "the hidden instances do not match the entry's commitment")
    rerun = entry.get("rerun") or {}
    notes = []
    if entry["kind"] in ("builtin", "reference"):
        target = entry["target"]
        if entry["code_version"] != code_version():
            notes.append(f"built-in made with code {entry['code_version']}, re-run with {code_version()}")
    else:
        target = rerun_target(store.path.parent, entry["code_ref"]) if entry.get("code_ref") else None
        if target is None:
            return done("cannot_rerun", "its code is not in this results directory's code store "
                                        f"(code/{entry.get('code_ref') or '?'})")
    try:
        ran = run_entry(board, target, store, params=rerun.get("params"), train=rerun.get("train"),
                        timeout=timeout, name=f"verify #{entry_id} {entry['name']}", log=log)
    except SubmissionRejected as e:
        return done("cannot_rerun", f"the re-run was rejected: {e.reason}")
    outcomes = ran["outcomes"]
    scores = [o.metrics[board.metric] for o in outcomes]
    score = sum(scores) / len(scores)
    stored = {r["seed"]: r[board.metric] for r in entry["per_seed"]}
    per_seed = [{"seed": o.seed, **o.metrics} for o in outcomes]
    sandboxes = {getattr(o, "sandbox", None) or "none" for o in outcomes}
    sandbox = sandboxes.pop() if len(sandboxes) == 1 else "mixed"
    tol = float(getattr(board, "verify_tolerance", 0.0))
    off = [(o.seed, stored.get(o.seed), s) for o, s in zip(outcomes, scores)
           if stored.get(o.seed) is None or not abs(stored[o.seed] - s) <= max(tol, 1e-12)]
    if set(stored) != {o.seed for o in outcomes}:
        off += [(seed, stored.get(seed), None) for seed in sorted(set(stored) - {o.seed for o in outcomes})]
    within = "equal to" if tol == 0 else f"within {tol:g} of"
    if not off:
        outcome, detail = "reproduced", f"every seed's {board.metric} is {within} the stored one"
    else:
        outcome = "not_reproduced"
        detail = "; ".join(f"seed {seed}: re-run {'-' if got is None else f'{got:.4f}'} vs stored "
                           f"{'-' if want is None else f'{want:.4f}'}" for seed, want, got in off[:5])
        detail += f" (a reproduction needs every seed {within} the stored one)"
    return done(outcome, "; ".join([detail, *notes]), score=score, per_seed=per_seed, sandbox=sandbox)


def status(entry: dict[str, Any], verifications: list[dict[str, Any]]) -> tuple[bool, str]:
    """(verified, a short label) of an entry from its re-runs (latest first counts)."""
    last = verifications[-1] if verifications else None
    sandboxed = (entry.get("sandbox") or "none") != "none"
    if last is None:
        return False, "not re-run" + ("" if sandboxed else ", not sandboxed")
    if last["outcome"] == "cannot_rerun":
        return False, "cannot be re-run"
    if last["outcome"] not in REPRODUCED:
        return False, "not reproduced"
    if not sandboxed or (last.get("sandbox") or "none") == "none":
        return False, "re-run reproduced, not sandboxed"
    return True, "verified"


__all__ = ["REPRODUCED", "Verification", "status", "verify_entry"]
