"""A board as Markdown (``neg board show``): its protocol in words, ranked entries, reference ceilings.

Every string an entry controls (its name) is escaped (:func:`scoreboards.untrusted.markdown_cell`); whether an entry is
verified comes from its re-runs (:func:`scoreboards.leaderboard.verify.status`). The web
site (:mod:`scoreboards.leaderboard.site`) shows the same rows and protocol lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from noisy_expert_gym.utils import safe_name, write_atomic
from scoreboards.analysis.stats import seed_summary
from scoreboards.leaderboard.board_model import Board
from scoreboards.leaderboard.verify import status
from scoreboards.store import ResultStore
from scoreboards.untrusted import markdown_cell

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
                  "seed (never shown to submissions); training and evaluation on that instance; practice scores on the "
                  "harness's fixed secret, the ranking on a private round's fresh secret drawn after the entries "
                  "are stored")
         if board.hidden else "open (practice board): the task's rule is public"),
        ("env", f"{board.env_id} ({kw})"),
        ("noise law", f"{law}, eta = {board.env_kwargs.get('eta')}" if law else "the env's default"),
        ("expert access", "sample-only: sampled tokens (sample, sample_along, rollout); probabilities refused"
         if board.access == "sample" else
         f"top-k: the top {board.top_k} tokens and their log-probabilities (topk, topk_along), and samples; "
         "probabilities refused" if board.access == "topk" else "full: probabilities and samples"),
        ("budget per run", f"{board.budget_trajectories:,} expert trajectories{q}"),
        ("evaluation", (f"greedy decoding on {board.eval_prompts:,} held-out prompts x {len(board.eval_seeds)} "
                       f"harness-owned seeds, scored by the harness; metric {board.metric}; learning curve at "
                       f"{board.curve_points} points")),
        ("runs", (f"one per training seed {board.train_seeds}; score = mean over runs, 95% Student-t "
                 "CI over runs")),
        ("protocol hash", board.hash),
    ]
    return lines


def board_rows(board: Board, store: ResultStore) -> dict[str, Any]:
    """The board's current entries: ``ranked`` (best first), ``refs`` (clean-expert ceilings), and
    ``stale`` (entries made under an older protocol); each entry has ``verified`` and ``status``."""
    every = store.board_entries(board.name)
    rows = [r for r in every if r["board_hash"] == board.hash]
    checks = store.verifications([r["id"] for r in rows])
    for r in rows:
        r["verified"], r["status"] = status(r, checks.get(r["id"], []))
    ranked = sorted((r for r in rows if r["kind"] != "reference"), key=lambda r: -r["score"])
    return {"ranked": ranked, "refs": [r for r in rows if r["kind"] == "reference"],
            "stale": len(every) - len(rows)}


PRACTICE_NOTE = ("Practice scores are measured at submission on instances drawn from the harness's secret, the "
                 "same for every entry: they can be learned across submissions, so only a private round ranks.")


def private_section(board: Board, store: ResultStore) -> list[str]:
    """Markdown lines of the board's latest private round (:mod:`scoreboards.leaderboard.private`)."""
    from scoreboards.leaderboard.private import private_rows

    got = private_rows(board, store)
    if got is None:
        return ["", "## Ranking (private round)", "",
                f"No private round yet: `neg board private {board.name}` ranks the stored entries on a fresh secret."]
    lines = ["", f"## Ranking (private round {got['round']})", "",
             (f"Every entry below was stored before this round drew its secret (id `{got['secret_id']}`, "
              f"{got['created_at'][:19]}) and was re-run from its stored code on the instances drawn from it."),
             "", "| rank | algorithm | private score (95% CI) | practice score | seeds | entry | code |",
             "|---|---|---|---|---|---|---|"]
    for rank, r in [*((str(i + 1), r) for i, r in enumerate(got["ranked"])), *(("ref", r) for r in got["refs"])]:
        kind = {"builtin": " (built-in)", "reference": " (reference, clean expert)"}.get(r["kind"], "")
        ci = f" {r['ci']}" if r["ci"] else ""
        lines.append(f"| {rank} | {markdown_cell(r['name'])}{kind} | {r['score']:.3f}{ci} | {r['practice_score']:.3f} "
                     f"| {len(r['per_seed'])} | {r['id']} | `{r['code_hash']}` |")
    for r in got["rejected"]:
        lines.append(f"| - | {markdown_cell(r['name'])} | rejected: {markdown_cell(r['detail'] or '')} | "
                     f"{r['practice_score']:.3f} | | {r['id']} | `{r['code_hash']}` |")
    return lines


def render_board(board: Board, store: ResultStore) -> str:
    """The board as Markdown: ranked entries, then unranked reference ceilings."""
    got = board_rows(board, store)
    lines = [f"# Board `{board.name}`", "", board.description, ""]
    if not board.hidden:
        lines += [f"**{OPEN_NOTE}**", ""]
    lines += [f"- {label}: {text}" for label, text in protocol(board)]
    if board.hidden:
        lines += private_section(board, store)
        lines += ["", "## Practice (the board's fixed instances: not a ranking)", "", PRACTICE_NOTE]
    lines += [
        "",
        "| rank | algorithm | score (95% CI) | budget used (traj. / queries) | seeds | verified | entry | code | date |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def row(rank: str, r: dict[str, Any]) -> str:
        ci = seed_summary(r, board.metric).ci_text()
        ci = f" {ci}" if ci else ""
        kind = {"builtin": " (built-in)", "reference": " (reference, clean expert)"}.get(r["kind"], "")
        used = f"{r['trajectories']:,.0f} / {r['queries']:,.0f}"
        return (f"| {rank} | {markdown_cell(r['name'])}{kind} | {r['score']:.3f}{ci} | {used} | {len(r['seeds'])} | "
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
    """Render the board to ``<db dir>/boards/<name>.md`` (atomically; the name as a file name by
    :func:`~noisy_expert_gym.utils.safe_name`: one file per board, never outside ``boards/``); returns the path."""
    path = Path(out) if out else store.path.parent / "boards" / f"{safe_name(board.name)}.md"
    write_atomic(path, render_board(board, store))
    return path


__all__ = ["OPEN_NOTE", "PRACTICE_NOTE", "board_rows", "private_section", "protocol", "render_board", "write_board"]
