"""Entering a board (``neg submit``, ``neg board baselines``): every training seed run, the entry recorded.

:func:`submit` runs a submission (or a built-in algorithm, ``builtin:ALGO``) under the board's
protocol (:mod:`scoreboards.leaderboard.submission`: a sandboxed worker, a budgeted expert
client, held-out evaluation by the harness), one run per training seed, and records the
entry with what makes it verifiable: its code's digest and stored copy
(:mod:`scoreboards.leaderboard.entry_code`), how to re-run it, the library versions, the
protocol hash and, on a hidden-rule board, the commitment to its instances
(:mod:`scoreboards.leaderboard.hidden`). Entries are recorded only when every seed's run is
accepted; their rows carry the board's hash, so a changed protocol starts a fresh table.
:func:`run_entry` runs the seeds without recording (``neg board verify`` re-runs with it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scoreboards.analysis.stats import count_failed, summarize
from scoreboards.config import train_problems
from scoreboards.leaderboard.board_model import Board
from scoreboards.provenance import code_version, short_hash
from scoreboards.store import ResultStore


def submission_code_hash(target: str) -> str:
    """Short hash of a submission's code: every file of a directory submission, the file, or the
    module's source file (:mod:`scoreboards.leaderboard.entry_code`); the code version for built-ins."""
    from scoreboards.leaderboard.entry_code import code_digest, submission_code

    if target.startswith("builtin:"):
        return short_hash(target, code_version(), n=12)
    try:
        return code_digest(submission_code(target))[:12]
    except (ValueError, OSError):
        return "unknown"


def check_builtin(board: Board, algo: str, params: dict[str, Any] | None, train: dict[str, Any] | None) -> Any:
    """The built-in algorithm `algo`, if it may enter `board` with these settings.

    Raises:
        ValueError: an unknown algorithm, bad parameters or training fields, an algorithm outside
            the expert protocol, or one that needs probabilities on a sample-only board.
    """
    from agents.algos import check_params, get_algorithm
    from scoreboards.leaderboard.builtin import needs_probs

    alg = get_algorithm(algo)
    if not alg.queries_expert:
        raise ValueError(f"`{algo}` trains outside the student-prefix loop (e.g. from the env's reward); "
                         "a board gives submissions only the expert client")
    problems = check_params(algo, params or {})
    problems += train_problems(train or {})
    if problems:
        raise ValueError("; ".join(problems))
    if board.access == "topk":
        from scoreboards.leaderboard.builtin import topk_refusal

        why = topk_refusal(algo, params, board.top_k)
        if why:
            raise ValueError(f"`{algo}` cannot learn on board `{board.name}`, whose expert answers its top "
                             f"{board.top_k} tokens and samples (access = \"topk\"): {why}")
    elif board.access != "full" and needs_probs(algo, params):
        raise ValueError(f"`{algo}` needs the expert's probabilities (probs, probs_along or log_prob), and "
                         f"board `{board.name}` has a sample-only expert (access = \"sample\"): enter an "
                         "algorithm that learns from sampled tokens (one whose `needs_probs` is False)")
    return alg


def board_secret(board: Board, store: ResultStore) -> bytes | None:
    """The harness's secret for a hidden-rule board (None for an open board)."""
    from scoreboards.leaderboard.hidden import load_secret

    return load_secret(store.path.parent) if board.hidden else None


def run_entry(board: Board, target: str, store: ResultStore, params: dict[str, Any] | None = None,
              train: dict[str, Any] | None = None, timeout: float | None = None, name: str = "",
              log: Callable[[str], None] = print, secret: bytes | None = None) -> dict[str, Any]:
    """Run every training seed of an entry; nothing is recorded.

    Args:
        secret: draw a hidden board's instances from this secret (a private round's,
            :mod:`scoreboards.leaderboard.private`) instead of the harness's.

    Returns:
        ``{"outcomes", "kind", "code_ref", "run_target", "extra"}``.

    Raises:
        SubmissionRejected: the first rejected run's reason.
    """
    from scoreboards.leaderboard.entry_code import store_code
    from scoreboards.leaderboard.submission import SubmissionRejected, run_submission

    clean, extra, kind, code_ref = False, None, "submission", None
    if target.startswith("builtin:"):
        algo = target.split(":", 1)[1]
        alg = check_builtin(board, algo, params, train)
        clean = alg.uses_clean_expert
        kind = "reference" if clean else "builtin"
        extra = {"algo": algo, "algo_params": dict(params or {}), "train": dict(train or {})}
        run_target = "scoreboards.leaderboard.builtin:BuiltinSubmission"
    elif params or train:
        raise ValueError("--param/--train apply to builtin:ALGO targets only")
    else:
        try:  # the code is stored first; file and directory submissions run from that copy
            code_ref, run_target = store_code(target, store.path.parent)
        except (ValueError, OSError) as e:
            raise SubmissionRejected(f"malformed submission: {e}") from None
        if board.baseline_train:
            # The board's baseline student settings (public: they are in the board file), which an
            # algorithm class trains with when the worker runs it through the adapter; a submission
            # class may read or ignore them.
            extra = {"train": dict(board.baseline_train)}
    from scoreboards.untrusted import terminal

    secret = secret if secret is not None else board_secret(board, store)
    name = terminal(name)  # the log reaches a terminal; the name is the submitter's
    outcomes = []
    for seed in board.train_seeds:
        log(f"[{board.name}] {name}: training seed {seed} ...")
        try:
            out = run_submission(board, run_target, seed, clean=clean, extra_spec=extra, timeout=timeout,
                                 secret=secret, protect=[store.path.parent])
        except SubmissionRejected as e:
            raise SubmissionRejected(f"seed {seed}: {e.reason}") from None
        if count_failed([out.metrics.get(board.metric)]):  # an entry is ranked over every seed: none may fail
            raise SubmissionRejected(f"seed {seed}: {board.metric} is {out.metrics.get(board.metric)} (a failed "
                                     "run); an entry is scored over every training seed: fix the run and submit again")
        log(f"[{board.name}] {name}: seed {seed}: {board.metric} = {out.metrics[board.metric]:.4f} "
            f"({out.trajectories:,} trajectories, {out.queries:,} queries, {out.wall_time:.1f} s)")
        outcomes.append(out)
    return {"outcomes": outcomes, "kind": kind, "code_ref": code_ref, "run_target": run_target, "extra": extra,
            "secret": secret}


def submit(board: Board, target: str, store: ResultStore, name: str | None = None,
           params: dict[str, Any] | None = None, train: dict[str, Any] | None = None,
           timeout: float | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run a submission under the board's protocol (every training seed) and record it.

    ``target`` is ``module:Class``, ``path/to/file.py:Class``, ``path/to/dir/:Class`` or
    ``builtin:ALGO`` (the project's algorithms through the same path, with
    ``params``/``train`` for the algorithm parameters and training fields;
    ``builtin:bc-clean`` enters as an unranked reference ceiling). A submission's code is
    copied into the results directory first (:mod:`scoreboards.leaderboard.entry_code`), so the entry
    can be re-run (:func:`scoreboards.leaderboard.verify.verify_entry`).

    Returns:
        The stored entry.

    Raises:
        SubmissionRejected: the first rejected run's reason; nothing is recorded.
        ValueError: a built-in that may not enter this board (see :func:`check_builtin`).
    """
    from scoreboards.leaderboard.hidden import entry_provenance
    from scoreboards.provenance import package_versions

    if target.startswith("builtin:"):
        tag = ",".join(f"{k}={v}" for k, v in (params or {}).items())
        algo = target.split(":", 1)[1]
        name = name or (f"{algo}({tag})" if tag else algo)
    name = name or target.rpartition(":")[2]
    ran = run_entry(board, target, store, params=params, train=train, timeout=timeout, name=name, log=log)
    outcomes = ran["outcomes"]
    s = summarize([o.metrics[board.metric] for o in outcomes], metric=board.metric)
    entry = {
        "board": board.name, "board_hash": board.hash, "name": name, "target": target, "kind": ran["kind"],
        "code_hash": (ran["code_ref"] or "")[:12] or submission_code_hash(target), "code_ref": ran["code_ref"],
        "code_version": code_version(), "versions": {**package_versions(), "harness": code_version()},
        "rerun": {"target": target, "params": dict(params or {}), "train": dict(train or {})},
        "metric": board.metric, "rule": board.rule, "access": board.access,
        **entry_provenance(board, ran["secret"]),
        "score": s.mean, "ci_low": s.ci_low, "ci_high": s.ci_high, "std": s.std,
        "seeds": list(board.train_seeds),
        "per_seed": [{"seed": o.seed, **o.metrics, "trajectories": o.trajectories, "queries": o.queries,
                      "wall_time": o.wall_time, "sandbox": o.sandbox} for o in outcomes],
        "curves": [{"seed": o.seed, "points": o.curve} for o in outcomes],
        "trajectories": sum(o.trajectories for o in outcomes) / len(outcomes),
        "queries": sum(o.queries for o in outcomes) / len(outcomes),
        "wall_time": sum(o.wall_time for o in outcomes),
        "sandbox": _isolation(outcomes),
    }
    entry["id"] = store.add_board_entry(entry)
    return entry


def _isolation(outcomes: list[Any]) -> str:
    """How an entry's workers were isolated: their one mode (``bwrap``, ``none``), else ``mixed``."""
    modes = {o.sandbox for o in outcomes}
    return modes.pop() if len(modes) == 1 else "mixed"


__all__ = ["board_secret", "check_builtin", "run_entry", "submission_code_hash", "submit"]
