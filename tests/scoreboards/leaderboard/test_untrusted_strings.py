"""Every string a submission controls (entry name, target, class name, rejection reasons, re-run
details) is data wherever it is shown: the web site (HTML), the terminal (``neg board show``,
``neg submit``, ``neg board verify``, ``neg board publish``), the board's Markdown."""

from __future__ import annotations

import re

import pytest

from scoreboards.cli import main
from scoreboards.leaderboard.boards import load_board
from scoreboards.leaderboard.render import render_board
from scoreboards.leaderboard.site import _environment, publish
from scoreboards.store import ResultStore
from scoreboards.untrusted import markdown_cell, terminal
from tests.scoreboards.leaderboard.test_site import BOARD, _entry

#: A name that is markup, a terminal command (clear screen, cursor home, a window title, a bidi
#: override), a Markdown cell break and a new table row.
HOSTILE = "<script>alert(1)</script>\x1b[2J\x1b[H\x1b]0;owned\x07\u202e|x|\n| 9 | fake row |"
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture
def board_and_db(tmp_path):
    p = tmp_path / "site-board.toml"
    p.write_text(BOARD)
    board = load_board(p)
    db = tmp_path / "results" / "neg.sqlite"
    with ResultStore(db) as st:
        st.add_board_entry(_entry(board, HOSTILE, "submission", 0.875, 0.85, 0.9, 1000,
                                  target=f"x.py:{HOSTILE}"))
        st.add_board_entry(_entry(board, "plain", "builtin", 0.5, 0.4, 0.6, 1000))
    return board, p, db


def test_terminal_and_markdown_escapes():
    assert terminal("a\x1b[2Jb\u202ec\r\x00") == "a\\x1b[2Jb\\u202ec\\x0d\\x00"
    assert terminal("a\nb\tc", keep_newlines=True) == "a\nb\tc" and terminal("a\nb") == "a\\x0ab"
    assert terminal("accents é, ü and 漢字 stay") == "accents é, ü and 漢字 stay"
    cell = markdown_cell("a|b\nc <img src=x> [l](u) `x` \x1b[2J")
    assert "\n" not in cell and "\x1b" not in cell
    assert re.search(r"(?<!\\)[|<>\[\]`]", cell) is None  # every special character escaped


def test_markdown_table_keeps_a_hostile_name_in_its_cell(board_and_db):
    board, _, db = board_and_db
    with ResultStore(db) as st:
        md = render_board(board, st)
    assert not CONTROL.search(md) and "<script>" not in md
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    header, *entries = rows
    assert len(entries) == 2  # the name's newline and "| 9 | fake row |" made no row
    cells = len(re.findall(r"(?<!\\)\|", header))
    assert all(len(re.findall(r"(?<!\\)\|", r)) == cells for r in entries)
    assert r"\<script\>alert(1)\</script\>\\x1b\[2J" in md


def test_terminal_output_of_board_show_and_publish_has_no_control_characters(board_and_db, tmp_path, capsys):
    _, path, db = board_and_db
    assert main(["board", "show", str(path), "--db", str(db)]) == 0
    assert main(["board", "publish", "--boards", str(path), "--out", str(tmp_path / "site"), "--db", str(db)]) == 0
    out = capsys.readouterr()
    assert not CONTROL.search(out.out + out.err)
    assert r"\\x1b\[2J" in out.out  # shown, visibly (as Markdown: its backslash and bracket escaped)


def test_terminal_output_of_submit_and_verify_has_no_control_characters(board_and_db, monkeypatch, capsys):
    """A rejection's reason carries the submission's own error message; a re-run's detail its name."""
    from scoreboards.leaderboard import entries, verify
    from scoreboards.leaderboard.submission import SubmissionRejected

    _, path, db = board_and_db

    def rejected(*a, **k):
        raise SubmissionRejected(f"train raised RuntimeError: {HOSTILE}")

    monkeypatch.setattr(entries, "submit", rejected)
    assert main(["submit", "tests.scoreboards.subs:TableLearner", "--board", str(path), "--name", HOSTILE,
                 "--db", str(db)]) == 1
    monkeypatch.setattr(verify, "verify_entry", lambda *a, **k: verify.Verification("cannot_rerun", HOSTILE))
    assert main(["board", "verify", str(path), "1", "--db", str(db)]) == 1
    out = capsys.readouterr()
    assert "REJECTED" in out.err and "cannot_rerun" in out.out
    assert not CONTROL.search(out.out + out.err), (out.out + out.err)
    assert "\\x1b[2J" in out.err and "\\x1b[2J" in out.out


def test_site_escapes_hostile_strings(board_and_db, tmp_path):
    board, _, db = board_and_db
    env = _environment()
    assert env.autoescape is True  # every template, whatever its file name
    for name in env.list_templates(extensions=["j2"]):
        assert "|safe" not in env.loader.get_source(env, name)[0].replace(" ", ""), name
    with ResultStore(db) as st:
        index = publish([board], st, tmp_path / "site")
    page = (index.parent / "boards" / "site-board.html").read_text()
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not CONTROL.search(page) and "\\x1b[2J" in page
    assert "x.py:&lt;script&gt;" in page  # the target too
    assert "<script" not in index.read_text() and not CONTROL.search(index.read_text())
