"""The leaderboards as a static web site (``neg board publish --out DIR``; open ``DIR/index.html``).

No server: an index of the boards, then one page per board with its protocol (env,
noise law, expert access, budget, evaluation, hidden or open rule), the ranked table
(score with CI, budget spent in trajectories and queries, seeds, verified or not, date,
code hash), the built-in baselines among the entries and the clean-expert ceiling
below them, and learning curves (SVG, matplotlib) of every entry as the harness
measured them during training.

Pages are Jinja2 templates (``scoreboards/leaderboard/templates/``) with autoescaping on: every
string from a submission (its name, its target) is escaped as text, with its control characters
written as visible escapes (:func:`scoreboards.untrusted.terminal`), and figures are
embedded as ``<img>`` (an SVG there runs no script; matplotlib draws text as paths).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from noisy_expert_gym.utils import safe_name, write_atomic
from scoreboards.analysis.stats import seed_summary
from scoreboards.leaderboard.board_model import Board
from scoreboards.leaderboard.private import private_rows
from scoreboards.leaderboard.render import OPEN_NOTE, PRACTICE_NOTE, board_rows, protocol
from scoreboards.provenance import code_version, now
from scoreboards.store import ResultStore
from scoreboards.untrusted import terminal

TEMPLATES = Path(__file__).resolve().parent / "templates"


def slug(name: str) -> str:
    """A file name for a board or entry name: the name where it is made of [A-Za-z0-9._-] only, else the
    name with ``_`` for the others and a hash suffix -- two names, two files
    (:func:`~noisy_expert_gym.utils.safe_name`)."""
    return safe_name(name)


def entry_figure_name(board: str, entry_id: int) -> str:
    """The file of an entry's learning curve in ``curves/``: ``<slug>-entry-<id>.svg``."""
    return f"{slug(board)}-entry-{int(entry_id)}.svg"


def board_figure_name(board: str) -> str:
    """The file of a board's learning curves in ``curves/``: ``<slug>.board.svg`` -- never an entry's figure
    (those end ``-entry-<id>.svg``; board ``x-entry-3`` and board ``x``'s entry 3 were one file)."""
    return f"{slug(board)}.board.svg"


def _environment() -> Any:
    try:
        import jinja2
    except ImportError:  # pragma: no cover - a dependency of the package
        raise RuntimeError("publishing the web site needs Jinja2: pip install jinja2") from None
    from markupsafe import Markup

    def finalize(value: Any) -> Any:  # every plain string shown: control characters visible, then escaped
        return terminal(value, keep_newlines=True) if isinstance(value, str) and not isinstance(value, Markup) \
            else value

    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, finalize=finalize,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _plain(label: str) -> str:
    """A label matplotlib draws as given (a `$` would start mathtext)."""
    return label.replace("$", r"\$")


def _curves(entry: dict[str, Any]) -> list[list[dict[str, Any]]]:
    return [c.get("points") or [] for c in entry.get("curves") or []]


def _figures(board: Board, entries: list[dict[str, Any]], out: Path) -> str | None:
    """One SVG per entry and one with every entry; returns the board figure's path (relative)."""
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "path"}):  # text as outlines: no markup in the SVG
        return _draw(board, entries, out)


def _draw(board: Board, entries: list[dict[str, Any]], out: Path) -> str | None:
    from scoreboards.analysis.plots import learning_curves

    fig_dir = out / "curves"
    by_label: dict[str, list[list[dict[str, Any]]]] = {}
    for e in entries:
        curves = _curves(e)
        e["curve_file"] = None
        if not any(curves):
            continue
        label = _plain(terminal(f"#{e['id']} {e['name']}"))
        by_label[label] = curves
        path = fig_dir / entry_figure_name(board.name, int(e["id"]))
        if learning_curves({label: curves}, path, metrics=(board.metric,), fmt="svg") is not None:
            e["curve_file"] = f"../curves/{path.name}"
    if not by_label:
        return None
    path = fig_dir / board_figure_name(board.name)
    made = learning_curves(by_label, path, title=_plain(board.name), metrics=(board.metric,), fmt="svg")
    return f"../curves/{path.name}" if made is not None else None


def _entry_view(e: dict[str, Any], metric: str) -> dict[str, Any]:
    """An entry as the page shows it: its interval from its seeds (flagged when too few)."""
    s = seed_summary(e, metric)
    return {**e, "ci": s.ci_text(), "few_seeds": s.few_seeds}


def publish(boards: list[Board], store: ResultStore, out: str | Path) -> Path:
    """Write the site for `boards` into `out`; returns the path of ``index.html``."""
    out = Path(out)
    (out / "boards").mkdir(parents=True, exist_ok=True)
    (out / "curves").mkdir(parents=True, exist_ok=True)
    env = _environment()
    common = {"generated": now(), "harness": code_version()}
    write_atomic(out / "style.css", (TEMPLATES / "style.css").read_bytes())
    summary = []
    for board in boards:
        got = board_rows(board, store)
        entries = got["ranked"] + got["refs"]
        board_curve = _figures(board, entries, out)
        page = env.get_template("board.html.j2").render(
            root="../", board=board, protocol=protocol(board), open_note=OPEN_NOTE,
            ranked=[_entry_view(e, board.metric) for e in got["ranked"]],
            refs=[_entry_view(e, board.metric) for e in got["refs"]],
            stale=got["stale"], board_curve=board_curve, private=private_rows(board, store) if board.hidden else None,
            practice_note=PRACTICE_NOTE, **common)
        write_atomic(out / "boards" / f"{slug(board.name)}.html", page)
        kw = ", ".join(f"{k}={v}" for k, v in board.env_kwargs.items())
        summary.append({"name": board.name, "slug": slug(board.name), "rule": board.rule, "access": board.access,
                        "env": f"{board.env_id} ({kw})", "budget": board.budget_trajectories,
                        "entries": len(entries), "best": got["ranked"][0] if got["ranked"] else None})
    index = out / "index.html"
    write_atomic(index, env.get_template("index.html.j2").render(root="", boards=summary, **common))
    return index


__all__ = ["TEMPLATES", "publish", "slug"]
