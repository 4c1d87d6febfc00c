"""Leaderboards: a fixed protocol (env, budget, held-out evaluation) and ranked entries.

A board file (``scoreboards/boards/NAME.toml``)::

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
:class:`Board`. :func:`submit` runs
an entry under the protocol (:mod:`scoreboards.leaderboard.submission`) and records it;
:func:`render_board` draws the table. Entries are recorded only when every seed's run
is accepted; their rows carry the board's hash, so a changed protocol starts a fresh
table.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from noisy_expert_gym._util import write_atomic
from scoreboards.leaderboard.board_model import BOARD_METRICS, Board, BoardError, BoardFile
from scoreboards.config import load_toml, shipped, train_problems, validate
from scoreboards.provenance import code_version, short_hash
from scoreboards.analysis.stats import summarize
from scoreboards.store import ResultStore

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


# ----- entering a board ---------------------------------------------------------------------
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
    if board.access != "full" and needs_probs(algo, params):
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
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every training seed of an entry; nothing is recorded.

    Returns:
        ``{"outcomes", "kind", "code_ref", "run_target", "extra"}``.

    Raises:
        SubmissionRejected: the first rejected run's reason.
    """
    from scoreboards.leaderboard.entry_code import store_code
    from scoreboards.leaderboard.submission import SubmissionRejected, run_submission

    trusted, clean, extra, kind, code_ref = False, False, None, "submission", None
    if target.startswith("builtin:"):
        algo = target.split(":", 1)[1]
        alg = check_builtin(board, algo, params, train)
        trusted, clean = True, alg.uses_clean_expert
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
    secret = board_secret(board, store)
    outcomes = []
    for seed in board.train_seeds:
        log(f"[{board.name}] {name}: training seed {seed} ...")
        try:
            out = run_submission(board, run_target, seed, trusted=trusted, clean=clean, extra_spec=extra,
                                 timeout=timeout, secret=secret)
        except SubmissionRejected as e:
            raise SubmissionRejected(f"seed {seed}: {e.reason}") from None
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
    s = summarize([o.metrics[board.metric] for o in outcomes])
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


# ----- rendering ---------------------------------------------------------------------------
OPEN_NOTE = ("Open practice board: the task's rule is public, so a submission can score without learning "
             "from the expert (reading the rule off the prompt); rankings that measure learning from the "
             "expert are on the hidden-rule boards.")


def protocol(board: Board) -> list[tuple[str, str]]:
    """The board's protocol as (label, text) lines, for people (Markdown and the web site)."""
    q = f", {board.budget_queries:,} queries" if board.budget_queries else ""
    kw = ", ".join(f"{k}={v}" for k, v in board.env_kwargs.items())
    law = board.env_kwargs.get("law")
    lines = [
        ("rule", (f"hidden: {', '.join(board.hidden)} drawn by the harness from its secret for each training "
                  "seed (never shown to submissions); training and evaluation on that instance")
         if board.hidden else "open (practice board): the task's rule is public"),
        ("env", f"{board.env_id} ({kw})"),
        ("noise law", f"{law}, eta = {board.env_kwargs.get('eta')}" if law else "the env's default"),
        ("expert access", "sample-only: sampled tokens (sample, sample_along, rollout); probabilities refused"
         if board.access == "sample" else "full: probabilities and samples"),
        ("budget per run", f"{board.budget_trajectories:,} expert trajectories{q}"),
        ("evaluation", (f"greedy decoding on {board.eval_prompts:,} held-out prompts x {len(board.eval_seeds)} "
                       f"harness-owned seeds, scored by the harness; metric {board.metric}; learning curve at "
                       f"{board.curve_points} points")),
        ("runs", (f"one per training seed {board.train_seeds}; score = mean over runs, 95% percentile-bootstrap "
                 "CI over runs")),
        ("protocol hash", board.hash),
    ]
    return lines


def board_rows(board: Board, store: ResultStore) -> dict[str, Any]:
    """The board's current entries: ``ranked`` (best first), ``refs`` (clean-expert ceilings), and
    ``stale`` (entries made under an older protocol); each entry has ``verified`` and ``status``."""
    from scoreboards.leaderboard.verify import status

    every = store.board_entries(board.name)
    rows = [r for r in every if r["board_hash"] == board.hash]
    checks = store.verifications([r["id"] for r in rows])
    for r in rows:
        r["verified"], r["status"] = status(r, checks.get(r["id"], []))
    ranked = sorted((r for r in rows if r["kind"] != "reference"), key=lambda r: -r["score"])
    return {"ranked": ranked, "refs": [r for r in rows if r["kind"] == "reference"],
            "stale": len(every) - len(rows)}


def _md(text: str) -> str:
    """Text from a submission inside a Markdown table cell: no markup, no cell breaks."""
    return "".join(f"\\{c}" if c in "\\`*_[]<>|#!" else c for c in str(text)).replace("\n", " ")


def render_board(board: Board, store: ResultStore) -> str:
    """The board as Markdown: ranked entries, then unranked reference ceilings."""
    got = board_rows(board, store)
    lines = [f"# Board `{board.name}`", "", board.description, ""]
    if not board.hidden:
        lines += [f"**{OPEN_NOTE}**", ""]
    lines += [f"- {label}: {text}" for label, text in protocol(board)]
    lines += [
        "",
        "| rank | algorithm | score (95% CI) | budget used (traj. / queries) | seeds | verified | entry | code | date |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def row(rank: str, r: dict[str, Any]) -> str:
        no_ci = r["ci_low"] is None or math.isnan(r["ci_low"])
        ci = "" if no_ci else f" [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
        kind = {"builtin": " (built-in)", "reference": " (reference, clean expert)"}.get(r["kind"], "")
        used = f"{r['trajectories']:,.0f} / {r['queries']:,.0f}"
        return (f"| {rank} | {_md(r['name'])}{kind} | {r['score']:.3f}{ci} | {used} | {len(r['seeds'])} | "
                f"{r['status']} | {r['id']} | `{r['code_hash']}` | {r['created_at'][:10]} |")

    lines += [row(str(i + 1), r) for i, r in enumerate(got["ranked"])]
    lines += [row("ref", r) for r in got["refs"]]
    if not got["ranked"] and not got["refs"]:
        lines.append("| - | (no entries yet: `neg board baselines " + board.name + "` or `neg submit`) | | | | | | | |")
    if got["stale"]:
        lines += ["", (f"{got['stale']} older entr{'y' if got['stale'] == 1 else 'ies'} made under a different "
                       "protocol are not shown.")]
    return "\n".join(lines) + "\n"


def write_board(board: Board, store: ResultStore, out: str | Path | None = None) -> Path:
    """Render the board to ``<db dir>/boards/<name>.md`` (atomically); returns the path."""
    path = Path(out) if out else store.path.parent / "boards" / f"{board.name}.md"
    write_atomic(path, render_board(board, store))
    return path


__all__ = ["BOARD_DIR", "BOARD_METRICS", "OPEN_NOTE", "Board", "BoardError", "board_rows", "board_secret",
           "check_builtin", "load_board", "protocol", "render_board", "run_entry", "shipped_boards",
           "submission_code_hash", "submit", "write_board"]
