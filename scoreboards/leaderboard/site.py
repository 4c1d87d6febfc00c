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

What a reader can trust (issue 27):

- **No host paths.** A submission's target is shown as its file's name (``my_algo.py:MyAlgo``,
  not the submitter's ``/home/...`` path: :func:`public_target`), and every string the pages
  print passes :func:`scrub_paths`, which cuts any absolute path to its last component.
- **Official or local secret**, per board: whether its hidden-rule entries were made under an
  official harness secret (its id listed in ``official_secrets.txt`` beside this module, as the
  maintainers publish it) or under a local one (a score that estimates the official one and
  proves nothing to anyone else: scoreboards/README.md, "What a local score proves").
- **Curves**: one y-scale per board, shared by the board's figure and every entry's, from 0; the
  x-axis from 0 trajectories (the harness measures no point there: the caption says so); figures
  >= 800 px wide with an 11 pt legend; legends by rank and name, in the table's order.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from noisy_expert_gym.utils import safe_name, write_atomic
from scoreboards.analysis.stats import metric_bounds, seed_summary
from scoreboards.leaderboard.board_model import Board
from scoreboards.leaderboard.private import private_rows
from scoreboards.leaderboard.render import OPEN_NOTE, PRACTICE_NOTE, board_rows, protocol
from scoreboards.provenance import code_version, now
from scoreboards.store import ResultStore
from scoreboards.untrusted import terminal

TEMPLATES = Path(__file__).resolve().parent / "templates"
#: The official harness secrets' ids (one per line; ``#`` comments), as the maintainers publish them.
OFFICIAL_SECRETS = Path(__file__).resolve().parent / "official_secrets.txt"
#: Figure sizes in inches. An SVG's width is in points (1 pt = 4/3 CSS px): 10.5 in = 756 pt =
#: 1008 px for the board's figure, 9 in = 864 px for an entry's.
BOARD_FIGSIZE, ENTRY_FIGSIZE = (10.5, 5.4), (9.0, 4.4)
#: The curves' legend and tick labels, in points.
LEGEND_PT = 11
#: An absolute POSIX path (``/a/b``, ``/a/b.py``) or a home-relative one (``~/a``), not preceded by a
#: word character, a dot or a slash (so ``1/7``, ``../curves/x.svg`` and URLs are left alone).
_ABS_PATH = re.compile(r"(?<![\w./:~])(?:~/|/)(?:[^\s/:;,'\"<>()\[\]]+/)+([^\s/:;,'\"<>()\[\]]*)")


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


def scrub_paths(text: str) -> str:
    """`text` with every absolute (or ``~/``) path cut to its last component: ``/home/u/a/b.py:X`` ->
    ``b.py:X``. Applied to every string a page prints, so no host path is published."""
    return _ABS_PATH.sub(lambda m: m.group(1), text)


def public_target(target: str) -> str:
    """A submission's target as published: a file's name without its directory (``dir/my.py:Name`` ->
    ``my.py:Name``); module and ``builtin:`` targets as they are."""
    path, sep, name = str(target).rpartition(":")
    if sep and ("/" in path or "\\" in path or path.endswith(".py")):
        base = re.split(r"[/\\]", path)[-1]
        return f"{base}:{name}"
    return scrub_paths(str(target))


def official_secret_ids(path: str | Path = OFFICIAL_SECRETS) -> frozenset[str]:
    """The ids listed in `path` (one per line, ``#`` comments); empty if it does not exist."""
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        return frozenset()
    return frozenset(t for line in lines if (t := line.split("#", 1)[0].strip()))


def secret_mark(board: Board, entries: list[dict[str, Any]], official: frozenset[str]) -> dict[str, str]:
    """Which harness secret a board's entries were made under: ``kind`` (``official``, ``local``,
    ``mixed``, ``none`` for an open board or no entries) and a sentence for readers."""
    if not board.hidden:
        return {"kind": "none", "text": "Open board: no harness secret is involved (the rule is public)."}
    ids = sorted({str(e["secret_id"]) for e in entries if e.get("secret_id")})
    if not ids:
        return {"kind": "none", "text": "No entries yet."}
    local = [i for i in ids if i not in official]
    shown = ", ".join(ids)
    if not local:
        return {"kind": "official", "text": f"Official scores: every entry ran under the official harness "
                                            f"secret (id {shown})."}
    what = ("Local scores: every entry ran under a local harness secret" if len(local) == len(ids) else
            "Mixed: some entries ran under a local harness secret")
    return {"kind": "local" if len(local) == len(ids) else "mixed",
            "text": f"{what} (id {', '.join(local)}), not the official one: each estimates the official "
                    "score on another instance of the task and proves nothing to anyone else."}


def _environment() -> Any:
    try:
        import jinja2
    except ImportError:  # pragma: no cover - a dependency of the package
        raise RuntimeError("publishing the web site needs Jinja2: pip install jinja2") from None
    from markupsafe import Markup

    def finalize(value: Any) -> Any:  # every plain string shown: control characters visible, no host paths
        return scrub_paths(terminal(value, keep_newlines=True)) if isinstance(value, str) \
            and not isinstance(value, Markup) else value

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


def _label(e: dict[str, Any]) -> str:
    """An entry's legend label: its rank and name, as the table shows them."""
    name = terminal(public_target(e["name"]) if "/" in str(e["name"]) else str(e["name"]))
    rank = e.get("rank")
    return _plain(f"{rank}. {name}" if isinstance(rank, int) else f"ref. {name} (clean expert)")


def y_scale(board: Board, entries: list[dict[str, Any]]) -> tuple[float, float]:
    """The board's one y-range for its curves: from 0 to just above the highest mean + 1 std
    (accuracies at most 1.0); (0, 1) when nothing was measured."""
    from scoreboards.analysis.stats import curve_band

    top = 0.0
    for e in entries:
        curves = [c for c in _curves(e) if c]
        if curves:
            _, mean, std = curve_band(curves, board.metric)
            if mean.size:
                top = max(top, float(np.nanmax(mean + std)))
    if top <= 0 or not math.isfinite(top):
        return (0.0, 1.0)
    hi = top * 1.1
    return (0.0, min(hi, 1.02) if metric_bounds(board.metric)[1] == 1.0 else hi)


def _draw(board: Board, entries: list[dict[str, Any]], out: Path) -> str | None:
    from scoreboards.analysis.plots import _color_map, learning_curves

    fig_dir = out / "curves"
    ylim = y_scale(board, entries)
    colors = _color_map([_label(e) for e in entries])
    note = (f"The harness measures each run at {board.curve_points} equal fractions of the budget (the last after "
            "training), not at 0 trajectories.")
    by_label: dict[str, list[list[dict[str, Any]]]] = {}
    for e in entries:  # the table's order: ranked, then the references
        curves = _curves(e)
        e["curve_file"] = None
        if not any(curves):
            continue
        label = _label(e)
        by_label[label] = curves
        path = fig_dir / entry_figure_name(board.name, int(e["id"]))
        if learning_curves({label: curves}, path, metrics=(board.metric,), fmt="svg", ylim=ylim,
                           figsize=ENTRY_FIGSIZE, legend_fontsize=LEGEND_PT, colors=colors, note=note) is not None:
            e["curve_file"] = f"../curves/{path.name}"
    if not by_label:
        return None
    path = fig_dir / board_figure_name(board.name)
    made = learning_curves(by_label, path, title=_plain(board.name), metrics=(board.metric,), fmt="svg",
                           ylim=ylim, figsize=BOARD_FIGSIZE, legend_fontsize=LEGEND_PT, colors=colors, note=note)
    return f"../curves/{path.name}" if made is not None else None


def _entry_view(e: dict[str, Any], metric: str, official: frozenset[str]) -> dict[str, Any]:
    """An entry as the page shows it: its interval from its seeds (flagged when too few), its target
    without host paths, and whether its secret is an official one."""
    s = seed_summary(e, metric)
    sid = e.get("secret_id")
    return {**e, "ci": s.ci_text(), "few_seeds": s.few_seeds, "target": public_target(e.get("target") or ""),
            "secret_kind": ("official" if sid in official else "local") if sid else None}


def publish(boards: list[Board], store: ResultStore, out: str | Path,
            official: frozenset[str] | None = None) -> Path:
    """Write the site for `boards` into `out`; returns the path of ``index.html``.

    `official`: the official harness secrets' ids (default: :func:`official_secret_ids`); each board
    says whether its entries ran under one of them or under a local secret.
    """
    out = Path(out)
    official = official_secret_ids() if official is None else frozenset(official)
    (out / "boards").mkdir(parents=True, exist_ok=True)
    (out / "curves").mkdir(parents=True, exist_ok=True)
    env = _environment()
    common = {"generated": now(), "harness": code_version()}
    write_atomic(out / "style.css", (TEMPLATES / "style.css").read_bytes())
    summary = []
    for board in boards:
        got = board_rows(board, store)
        for rank, e in enumerate(got["ranked"], 1):
            e["rank"] = rank
        entries = got["ranked"] + got["refs"]
        board_curve = _figures(board, entries, out)
        secret = secret_mark(board, entries, official)
        page = env.get_template("board.html.j2").render(
            root="../", board=board, protocol=protocol(board), open_note=OPEN_NOTE, secret=secret, official=official,
            ranked=[_entry_view(e, board.metric, official) for e in got["ranked"]],
            refs=[_entry_view(e, board.metric, official) for e in got["refs"]],
            stale=got["stale"], board_curve=board_curve, private=private_rows(board, store) if board.hidden else None,
            practice_note=PRACTICE_NOTE, **common)
        write_atomic(out / "boards" / f"{slug(board.name)}.html", page)
        kw = ", ".join(f"{k}={v}" for k, v in board.env_kwargs.items())
        summary.append({"name": board.name, "slug": slug(board.name), "rule": board.rule, "access": board.access,
                        "env": f"{board.env_id} ({kw})", "budget": board.budget_trajectories,
                        "entries": len(entries), "best": got["ranked"][0] if got["ranked"] else None,
                        "secret": secret})
    index = out / "index.html"
    write_atomic(index, env.get_template("index.html.j2").render(root="", boards=summary, **common))
    return index


__all__ = ["OFFICIAL_SECRETS", "TEMPLATES", "board_figure_name", "entry_figure_name", "official_secret_ids",
           "public_target", "publish", "scrub_paths",
           "secret_mark", "slug", "y_scale"]
