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

The file is declared in :mod:`scoreboards.board_model` (its types and constraints are
the validation, and building the env's problem once checks its kwargs);
:func:`load_board` lists every problem in one :class:`BoardError` or returns a
:class:`Board`. :func:`submit` runs
an entry under the protocol (:mod:`scoreboards.submission`) and records it;
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
from scoreboards.board_model import BOARD_METRICS, Board, BoardError, BoardFile
from scoreboards.config import load_toml, shipped, train_problems, validate
from scoreboards.provenance import code_version, file_hash, short_hash
from scoreboards.stats import summarize
from scoreboards.store import ResultStore

BOARD_DIR = Path(__file__).resolve().parent / "boards"


def shipped_boards() -> list[str]:
    return shipped(BOARD_DIR)


def load_board(name_or_path: str | Path) -> Board:
    """Load and validate a board (a shipped name or a TOML path); one :class:`BoardError`
    (a ValueError) lists every problem."""
    path, raw = load_toml(name_or_path, BOARD_DIR, "board", BoardError)
    board = validate(BoardFile, {"name": path.stem, **raw}, str(path), BoardError)
    # The protocol hash covers the file as validated, the default query cap included.
    raw["budget"].setdefault("queries", board.budget.queries)
    return board.to_board(short_hash(raw, n=12))


# ----- entering a board ---------------------------------------------------------------------
def submission_code_hash(target: str) -> str:
    """Hash of a submission's source file (what was run), or of the code version for built-ins."""
    if target.startswith("builtin:"):
        return short_hash(target, code_version(), n=12)
    mod, _, _ = target.rpartition(":")
    if mod.endswith(".py") or "/" in mod:
        return file_hash(mod)
    import importlib.util

    try:
        spec = importlib.util.find_spec(mod)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        return "unknown"
    return file_hash(spec.origin)


def submit(board: Board, target: str, store: ResultStore, name: str | None = None,
           params: dict[str, Any] | None = None, train: dict[str, Any] | None = None,
           timeout: float | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run a submission under the board's protocol (every training seed) and record it.

    ``target`` is ``module:Class``, ``path/to/file.py:Class`` or ``builtin:ALGO`` (the
    project's algorithms through the same path, with ``params``/``train`` for the
    algorithm parameters and training fields; ``builtin:bc-clean`` enters as an unranked
    reference ceiling).

    Returns:
        The stored entry.

    Raises:
        SubmissionRejected: the first rejected run's reason; nothing is recorded.
    """
    from scoreboards.submission import SubmissionRejected, run_submission

    trusted, clean, extra, kind = False, False, None, "submission"
    run_target = target
    if target.startswith("builtin:"):
        algo = target.split(":", 1)[1]
        from agents.algos import check_params, get_algorithm

        alg = get_algorithm(algo)
        if not alg.queries_expert:
            raise ValueError(f"`{algo}` trains outside the student-prefix loop (e.g. from the env's reward); "
                             "a board gives submissions only the expert client")
        problems = check_params(algo, params or {})
        problems += train_problems(train or {})
        if problems:
            raise ValueError("; ".join(problems))
        trusted, clean = True, alg.uses_clean_expert
        kind = "reference" if clean else "builtin"
        extra = {"algo": algo, "algo_params": dict(params or {}), "train": dict(train or {})}
        run_target = "scoreboards.builtin:BuiltinSubmission"
        tag = ",".join(f"{k}={v}" for k, v in (params or {}).items())
        name = name or (f"{algo}({tag})" if tag else algo)
    elif params or train:
        raise ValueError("--param/--train apply to builtin:ALGO targets only")
    name = name or target.rpartition(":")[2]
    outcomes = []
    for seed in board.train_seeds:
        log(f"[{board.name}] {name}: training seed {seed} ...")
        try:
            out = run_submission(board, run_target, seed, trusted=trusted, clean=clean, extra_spec=extra,
                                 timeout=timeout)
        except SubmissionRejected as e:
            raise SubmissionRejected(f"seed {seed}: {e.reason}") from None
        log(f"[{board.name}] {name}: seed {seed}: {board.metric} = {out.metrics[board.metric]:.4f} "
            f"({out.trajectories:,} trajectories, {out.queries:,} queries, {out.wall_time:.1f} s)")
        outcomes.append(out)
    s = summarize([o.metrics[board.metric] for o in outcomes])
    entry = {
        "board": board.name, "board_hash": board.hash, "name": name, "target": target, "kind": kind,
        "code_hash": submission_code_hash(target), "code_version": code_version(), "metric": board.metric,
        "score": s.mean, "ci_low": s.ci_low, "ci_high": s.ci_high, "std": s.std,
        "seeds": list(board.train_seeds),
        "per_seed": [{"seed": o.seed, **o.metrics, "trajectories": o.trajectories, "queries": o.queries,
                      "wall_time": o.wall_time, "sandbox": o.sandbox} for o in outcomes],
        "trajectories": sum(o.trajectories for o in outcomes) / len(outcomes),
        "queries": sum(o.queries for o in outcomes) / len(outcomes),
        "wall_time": sum(o.wall_time for o in outcomes),
    }
    entry["id"] = store.add_board_entry(entry)
    return entry


# ----- rendering ---------------------------------------------------------------------------
def render_board(board: Board, store: ResultStore) -> str:
    """The board as Markdown: ranked entries, then unranked reference ceilings."""
    rows = [r for r in store.board_entries(board.name) if r["board_hash"] == board.hash]
    stale = len(store.board_entries(board.name)) - len(rows)
    ranked = sorted((r for r in rows if r["kind"] != "reference"), key=lambda r: -r["score"])
    refs = [r for r in rows if r["kind"] == "reference"]
    q = f", {board.budget_queries:,} queries" if board.budget_queries else ""
    kw = ", ".join(f"{k}={v}" for k, v in board.env_kwargs.items())
    lines = [
        f"# Board `{board.name}`",
        "",
        board.description,
        "",
        f"- env: `{board.env_id}` ({kw})",
        f"- budget per run: {board.budget_trajectories:,} expert trajectories{q}",
        (f"- evaluation: greedy decoding on {board.eval_prompts:,} held-out prompts x "
         f"{len(board.eval_seeds)} harness-owned seeds, scored by the harness; metric `{board.metric}`"),
        (f"- one run per training seed {board.train_seeds}; score = mean over runs, "
         "95% percentile-bootstrap CI over runs"),
        f"- protocol hash `{board.hash}`",
        "",
        "| rank | algorithm | score (95% CI) | budget used (traj. / queries) | seeds | code | date |",
        "|---|---|---|---|---|---|---|",
    ]

    def row(rank: str, r: dict[str, Any]) -> str:
        no_ci = r["ci_low"] is None or math.isnan(r["ci_low"])
        ci = "" if no_ci else f" [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
        kind = {"builtin": " (built-in)", "reference": " (reference, clean expert)"}.get(r["kind"], "")
        used = f"{r['trajectories']:,.0f} / {r['queries']:,.0f}"
        return (f"| {rank} | {r['name']}{kind} | {r['score']:.3f}{ci} | {used} | {len(r['seeds'])} | "
                f"`{r['code_hash']}` | {r['created_at'][:10]} |")

    lines += [row(str(i + 1), r) for i, r in enumerate(ranked)]
    lines += [row("ref", r) for r in refs]
    if not rows:
        lines.append("| - | (no entries yet: `neg board baselines " + board.name + "` or `neg submit`) | | | | | |")
    if stale:
        lines += ["", (f"{stale} older entr{'y' if stale == 1 else 'ies'} made under a different protocol "
                       "are not shown.")]
    return "\n".join(lines) + "\n"


def write_board(board: Board, store: ResultStore, out: str | Path | None = None) -> Path:
    """Render the board to ``<db dir>/boards/<name>.md`` (atomically); returns the path."""
    path = Path(out) if out else store.path.parent / "boards" / f"{board.name}.md"
    write_atomic(path, render_board(board, store))
    return path


__all__ = ["BOARD_DIR", "BOARD_METRICS", "Board", "BoardError", "load_board", "render_board", "shipped_boards",
           "submission_code_hash", "submit", "write_board"]
