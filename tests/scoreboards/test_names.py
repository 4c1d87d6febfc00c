"""The harness's derived names are injective in what defines them (issue 24, case 5).

A spec's entry labels (``beta={v:g}`` made two grid points one label, and the spec was refused as
labelling two entries alike), its runs' keys and env groups, the report's figure files and the web
site's board files (``a b`` and ``a_b`` were one page), on close floats and on names that differ only
in characters a file name cannot hold.
"""

from __future__ import annotations

import math
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoreboards.analysis.report import _slug
from scoreboards.leaderboard.site import slug
from scoreboards.sweeps.specs import parse_spec
from tests.scoreboards.conftest import TINY_SPEC

BETA = st.floats(0.0, 1.0, allow_nan=False)


def close(values: st.SearchStrategy[float]) -> st.SearchStrategy[tuple[float, float]]:
    """A float and its neighbour, or two floats equal to six significant digits."""
    return st.one_of(values.map(lambda x: (x, math.nextafter(x, -1.0) if x > 0 else math.nextafter(x, 1.0))),
                     st.integers(100_000, 999_999).map(lambda k: (k / 1e6, k / 1e6 + 2e-8)))


def _spec(beta: list[float], eta: list[float]):
    raw = tomllib.loads(TINY_SPEC)
    raw["algorithms"] = [{"name": "nail-mixed", "grid": {"beta": beta}}]
    raw["env"]["grid"] = {"eta": eta}
    return parse_spec(raw, check_envs=False)


@settings(max_examples=60, deadline=None)
@given(beta=close(BETA), eta=close(st.floats(0.0, 0.9, allow_nan=False)))
def test_close_grid_values_give_distinct_labels_groups_and_keys(beta, eta):
    spec = _spec(list(beta), list(eta))
    runs = spec.runs()
    assert len({r.label for r in runs}) == 2 and len({r.group for r in runs}) == 2
    assert len({r.key for r in runs}) == len(runs)


def test_the_labels_still_read_as_before():
    spec = _spec([0.0, 0.25], [0.2])
    assert sorted({r.label for r in spec.runs()}) == ["nail-mixed(beta=0)", "nail-mixed(beta=0.25)"]


NAMES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=10)


@settings(max_examples=300, deadline=None)
@given(a=NAMES, b=NAMES)
def test_board_files_and_report_figures_are_one_per_name(a, b):
    if a != b:
        assert slug(a) != slug(b)
        assert _slug(a) != _slug(b)


def test_readable_names_stay_as_they_were():
    assert slug("hidden-s5") == "hidden-s5" and _slug("eta=0.2,m=4") == "eta=0.2,m=4"
    assert slug("my board") != slug("my_board") == "my_board"


@settings(max_examples=300, deadline=None)
@given(a=NAMES, b=NAMES, i=st.integers(1, 10**6), j=st.integers(1, 10**6))
def test_site_figures_are_one_per_board_and_entry(a, b, i, j):
    """Board ``x-entry-3``'s figure was ``x-entry-3.svg``, the file of board ``x``'s entry 3."""
    from scoreboards.leaderboard.site import board_figure_name, entry_figure_name

    assert board_figure_name(a) != entry_figure_name(b, j)
    assert board_figure_name("x-entry-3") != entry_figure_name("x", 3)
    if (a, i) != (b, j):
        assert entry_figure_name(a, i) != entry_figure_name(b, j)
    if a != b:
        assert board_figure_name(a) != board_figure_name(b)


@pytest.mark.parametrize("name", ["../outside", "a/b", "my board"])
def test_board_markdown_stays_in_boards_and_apart(name, tmp_path):
    """write_board named the file by the raw board name: ``../outside`` wrote beside ``boards/``, ``a/b``
    failed, ``my board`` and ``my_board`` would be one file once slugged without a hash."""
    from scoreboards.leaderboard.boards import load_board
    from scoreboards.leaderboard.render import write_board
    from scoreboards.store import ResultStore
    from tests.scoreboards.leaderboard.test_site import BOARD

    src = tmp_path / "b.toml"
    src.write_text(f'name = "{name}"\n' + BOARD)
    store = ResultStore(tmp_path / "db" / "r.sqlite")
    path = write_board(load_board(src), store)
    assert path.parent == tmp_path / "db" / "boards" and path.exists()
    assert path.name != "my_board.md"
