"""The leaderboard web site: static pages from the store, checked as HTML and in a real headless browser."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from scoreboards.leaderboard.boards import load_board
from scoreboards.leaderboard.site import publish
from scoreboards.store import ResultStore

EVIL = "<script>alert(1)</script>"
BOARD = """
description = "site test board <b>not bold</b>"

[env]
id = "NoisyAutomaton-v0"
kwargs = { automaton = "modadd", n = 7, m = 3, eta = 0.2, law = "absorbing" }
hidden = ["relabel_seed"]

[budget]
trajectories = 1000

[eval]
prompts = 64
seeds = [11]
curve_prompts = 16

[protocol]
train_seeds = [0, 1]
"""
#: Chromium as Debian ships it (`.ci/install-browser`); Playwright drives it (its own download is not used).
CHROMIUM = os.environ.get("NEG_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _entry(board, name, kind, score, lo, hi, traj, sandbox=None, **extra):
    curve = [{"trajectories": traj * i / 2, "queries": traj * 3 * i / 2, "greedy_full_exact": score * i / 2}
             for i in (1, 2)]
    return {"board": board.name, "board_hash": board.hash, "name": name, "target": f"x.py:{name}", "kind": kind,
            "code_hash": "abcdef123456", "code_ref": "abcdef123456" + "0" * 52, "code_version": "0.1.0+test",
            "metric": board.metric, "score": score, "ci_low": lo, "ci_high": hi, "std": 0.01, "seeds": [0, 1],
            "per_seed": [{"seed": s, "greedy_full_exact": score + d} for s, d in ((0, -0.0125), (1, 0.0125))], "trajectories": traj,
            "queries": traj * 3, "wall_time": 1.0, "rule": board.rule, "access": board.access,
            "secret_id": "0123456789ab", "seed_commitment": "f" * 64, "sandbox": sandbox,
            "curves": [{"seed": s, "points": curve} for s in (0, 1)], "versions": {"python": "3"}, **extra}


@pytest.fixture
def site(tmp_path):
    p = tmp_path / "site-board.toml"
    p.write_text(BOARD)
    board = load_board(p)
    with ResultStore(tmp_path / "results" / "neg.sqlite") as st:
        ids = {}
        ids["evil"] = st.add_board_entry(_entry(board, EVIL, "submission", 0.875, 0.85, 0.9, 1000, "bwrap"))
        ids["nail"] = st.add_board_entry(_entry(board, "nail-f", "builtin", 0.5, 0.25, 0.75, 1000))
        ids["ref"] = st.add_board_entry(_entry(board, "bc-clean", "reference", 1.0, 1.0, 1.0, 1000))
        st.add_verification(ids["evil"], "reproduced", score=0.875, sandbox="bwrap")
        st.add_board_entry({**_entry(board, "stale", "submission", 0.9, 0.9, 0.9, 10), "board_hash": "old"})
        index = publish([board, load_board("modadd-m5-eta0.2")], st, tmp_path / "site")
    return {"index": index, "board": board, "ids": ids}


def test_publish_writes_pages_curves_and_escapes_submissions(site):
    index = site["index"]
    page = (index.parent / "boards" / "site-board.html").read_text()
    assert EVIL not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>not bold</b>" not in page  # board text is escaped too
    assert "0.875" in page and "[0.716, 1.000] (2 seeds: too few)" in page and "older entry made under a different protocol" in page
    assert "hidden: relabel_seed drawn by the harness" in page and "open-note" not in page
    svgs = sorted(p.name for p in (index.parent / "curves").glob("*.svg"))
    assert svgs == ["site-board-entry-1.svg", "site-board-entry-2.svg", "site-board-entry-3.svg", "site-board.board.svg"]
    assert "<script" not in (index.parent / "curves" / "site-board.board.svg").read_text()
    open_page = (index.parent / "boards" / "modadd-m5-eta0.2.html").read_text()
    assert 'id="open-note"' in open_page and "No entries yet" in open_page
    html = index.read_text()
    assert 'href="boards/site-board.html"' in html and "open (practice)" in html


def _browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                                   "(pip install 'noisy-expert-gym[web]'; .ci/install-browser)")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/install-browser)")
    return sync_api


def test_site_in_a_headless_browser(site, tmp_path):
    """Loads the pages in Chromium: the ranked rows and their numbers are in the DOM, the submission
    named <script>alert(1)</script> shows as text and runs nothing, the curves load."""
    sync_api = _browser()
    dialogs: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1400})
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(site["index"].as_uri())
            rows = page.locator("#boards tbody tr")
            assert rows.count() == 2
            assert page.locator("tr[data-board='site-board'] td.entries").inner_text() == "3"
            page.click("text=site-board")
            page.wait_for_load_state("load")
            ranking = page.locator("#ranking tbody tr.entry")
            assert ranking.count() == 2
            first, second = ranking.nth(0), ranking.nth(1)
            assert first.locator("td.name").inner_text().strip() == EVIL  # text, not markup
            assert first.locator("td.score").inner_text() == "0.875"
            assert first.locator("td.ci").inner_text() == "[0.716, 1.000] (2 seeds: too few)"
            assert first.locator("td.trajectories").inner_text() == "1,000"
            assert first.locator("td.queries").inner_text() == "3,000"
            assert "verified" in first.locator("td.verified").inner_text()
            assert second.locator("td.name").inner_text().startswith("nail-f")
            assert "not re-run" in second.locator("td.verified").inner_text()
            assert page.locator("#ceiling tbody tr.entry td.score").inner_text() == "1.000"
            assert page.locator("script").count() == 0
            assert page.evaluate("() => document.getElementById('curves').naturalWidth") > 0
            # Issue 27: the board's curves render at >= 800 px; the secret is marked on the page.
            assert page.evaluate("() => document.getElementById('curves').getBoundingClientRect().width") >= 800
            assert page.locator("#secret").inner_text().startswith("Local scores")
            assert page.locator("img.entry-curve").first.evaluate("e => e.getBoundingClientRect().width") >= 800
            out = Path(os.environ.get("NEG_SITE_SCREENSHOT_DIR", tmp_path))
            out.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out / "board.png"), full_page=True)
        finally:
            browser.close()
    assert dialogs == []
    assert (out / "board.png").stat().st_size > 10_000


def _site_files(root: Path) -> dict[Path, str]:
    return {p: p.read_text(errors="replace") for p in root.rglob("*") if p.is_file()}


def test_no_host_path_is_published(tmp_path, monkeypatch):
    """Issue 27: the site published each entry's absolute local file path. A results dir under a
    temporary path, a submission from a file under it: no page, style or figure holds that path."""
    p = tmp_path / "site-board.toml"
    p.write_text(BOARD)
    board = load_board(p)
    home = tmp_path / "home" / "alice" / "work"
    monkeypatch.setenv("HOME", str(home))
    with ResultStore(tmp_path / "results" / "neg.sqlite") as st:
        st.add_board_entry({**_entry(board, "mine", "submission", 0.5, 0.4, 0.6, 1000, "bwrap"),
                            "target": f"{home}/algos/my_algo.py:Mine"})
        st.add_board_entry({**_entry(board, f"{home}/algos/named_by_path.py:X", "submission", 0.4, 0.3, 0.5,
                                     1000, "bwrap"), "target": "~/algos/other.py:X"})
        index = publish([board], st, tmp_path / "site")
    files = _site_files(index.parent)
    assert len(files) >= 5
    for path, text in files.items():
        assert str(tmp_path) not in text and "/home/alice" not in text and "~/algos" not in text, path
    page = (index.parent / "boards" / "site-board.html").read_text()
    assert "<code>my_algo.py:Mine</code>" in page and "<code>other.py:X</code>" in page
    assert "named_by_path.py:X" in page  # a name that is a path keeps its file name only


def test_official_or_local_secret_is_marked_per_board(site, tmp_path):
    """Each hidden-rule board says whether its entries ran under the official secret or a local one."""
    root = site["index"].parent
    page = (root / "boards" / "site-board.html").read_text()
    assert 'class="secret local" id="secret"' in page and "Local scores" in page and "0123456789ab" in page
    assert "local secret <code>0123456789ab</code>" in page
    assert 'class="secret none" id="secret"' in (root / "boards" / "modadd-m5-eta0.2.html").read_text()
    index = site["index"].read_text()
    assert '<td class="secret local"' in index and '<td class="secret none"' in index
    with ResultStore(tmp_path / "results" / "neg.sqlite") as st:
        official = publish([site["board"]], st, tmp_path / "official-site", official={"0123456789ab"})
    page = (official.parent / "boards" / "site-board.html").read_text()
    assert 'class="secret official" id="secret"' in page and "Official scores" in page
    assert "official secret <code>0123456789ab</code>" in page


def test_curves_are_large_share_one_y_scale_from_zero_and_are_labelled_by_rank(tmp_path, monkeypatch):
    """Issue 27: ~400 px figures with a 7 pt legend, per-entry y-scales, legends by entry id."""
    import re

    from scoreboards.analysis import plots

    calls = []
    real = plots.learning_curves

    def spy(curves_by_label, path, **kw):
        calls.append((list(curves_by_label), kw))
        return real(curves_by_label, path, **kw)

    monkeypatch.setattr(plots, "learning_curves", spy)
    p = tmp_path / "site-board.toml"
    p.write_text(BOARD)
    board = load_board(p)
    with ResultStore(tmp_path / "results" / "neg.sqlite") as st:
        st.add_board_entry(_entry(board, "low", "submission", 0.2, 0.1, 0.3, 1000))
        st.add_board_entry(_entry(board, "high", "submission", 0.6, 0.5, 0.7, 1000))
        st.add_board_entry(_entry(board, "bc-clean", "reference", 0.9, 0.9, 0.9, 1000))
        index = publish([board], st, tmp_path / "site")
    board_call = calls[-1]
    assert board_call[0] == ["1. high", "2. low", "ref. bc-clean (clean expert)"]  # the table's order
    ylims = {kw["ylim"] for _, kw in calls}
    assert len(ylims) == 1 and next(iter(ylims))[0] == 0.0 and next(iter(ylims))[1] >= 0.9  # one scale, from 0
    assert all(kw["legend_fontsize"] >= 10 for _, kw in calls)
    assert "not at 0 trajectories" in board_call[1]["note"]
    for svg in (index.parent / "curves").glob("*.svg"):
        width_pt = float(re.search(r'<svg[^>]*\swidth="([\d.]+)pt"', svg.read_text()).group(1))
        assert width_pt * 4 / 3 >= 800, (svg.name, width_pt)
    page = (index.parent / "boards" / "site-board.html").read_text()
    assert "not at 0 trajectories" in page and "legend by rank and name" in page
