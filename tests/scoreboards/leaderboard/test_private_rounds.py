"""The public/private split: practice scores on the harness's fixed instances at submission, the
ranking on a private round whose secret is drawn after the entries are stored."""

from __future__ import annotations

import stat

import pytest

from scoreboards.cli import main
from scoreboards.leaderboard import hidden
from scoreboards.leaderboard.boards import load_board
from scoreboards.leaderboard.entries import submit
from scoreboards.leaderboard.private import (
    load_round_secret,
    private_rows,
    round_secret_path,
    run_round,
)
from scoreboards.leaderboard.render import render_board
from scoreboards.leaderboard.site import publish
from scoreboards.store import ResultStore
from tests.scoreboards.leaderboard.board_files import HIDDEN_M3, board_toml
from tests.scoreboards.leaderboard.test_hidden_boards import SUBS

#: The hidden test board (modadd n = 7, m = 3 under a secret relabelling) with two training seeds.
BOARD = board_toml(description="private-round test board", env_id="NoisyAutomaton-v0", kwargs=HIDDEN_M3,
                   env=['hidden = ["relabel_seed"]'], trajectories=2048, queries=12288, eval=["curve_points = 2"],
                   train_seeds=(0, 1), timeout_s=120)
#: A submission that learns nothing and answers with the practice instances' clean expert, whose
#: hidden values it carries (what a submitter could learn from earlier practice runs).
HARD_CODED = '''
import numpy as np

PRACTICE = {practice!r}


class HardCoded:
    def __init__(self, spec):
        from noisy_expert_gym import make_problem

        self.task = make_problem(spec["env_id"], **spec["env_kwargs"], **PRACTICE[spec["seed"]]).task

    def train(self, expert):
        pass

    def act(self, observations):
        return np.asarray(self.task.clean_actions(np.asarray(observations)), dtype=np.int64)
'''


@pytest.fixture
def board(tmp_path):
    p = tmp_path / "private-test.toml"
    p.write_text(BOARD)
    return load_board(p)


def test_hard_coding_the_practice_instances_scores_chance_in_a_private_round(board, secret, tmp_path, db_path):
    practice = {s: hidden.instance(board, s, secret).hidden for s in board.train_seeds}
    code = tmp_path / "hard_coded.py"
    code.write_text(HARD_CODED.format(practice=practice))
    quiet = {"log": lambda m: None}
    with ResultStore(db_path) as st:
        cheat = submit(board, f"{code}:HardCoded", st, **quiet)
        learner = submit(board, f"{SUBS}:TableLearner", st, **quiet)
        assert cheat["score"] == 1.0 and cheat["trajectories"] == 0  # perfect on practice, learning nothing
        assert learner["score"] > 0.9
        got = run_round(board, st, **quiet)
        rows = {r["entry_id"]: r for r in got["rows"]}
        assert {r["outcome"] for r in rows.values()} == {"scored"}
        # m = 3, n = 7 on 64 held-out prompts per seed: chance of a full chain is 1/343.
        assert rows[cheat["id"]]["score"] <= 0.05, rows[cheat["id"]]
        assert rows[learner["id"]]["score"] > 0.9, rows[learner["id"]]  # learning from the expert holds
        ranked = private_rows(board, st)["ranked"]
        assert [r["id"] for r in ranked] == [learner["id"], cheat["id"]]
        md = render_board(board, st)
        page = publish([board], st, tmp_path / "site").parent / "boards" / "private-test.html"
        fresh = load_round_secret(st, board, got["round"])
    assert 'id="private-ranking"' in page.read_text() and "HardCoded" in page.read_text()
    # Issue 27: the round's secret is marked official or local (a test harness's: local).
    assert '<p class="secret local" id="private-secret">' in page.read_text()
    assert f"## Ranking (private round {got['round']})" in md and "## Practice" in md
    # The round's secret is fresh, private and recorded by id only.
    assert fresh != secret and got["secret_id"] == hidden.secret_id(fresh) != hidden.secret_id(secret)
    path = round_secret_path(db_path.parent, board, got["round"], got["secret_id"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert fresh.hex() not in md


def test_each_round_draws_a_new_secret_and_ranks_only_what_was_stored_before(board, secret, db_path):
    quiet = {"log": lambda m: None}
    with ResultStore(db_path) as st:
        first = submit(board, f"{SUBS}:AddingCheat", st, **quiet)
        one = run_round(board, st, **quiet)
        second = submit(board, f"{SUBS}:AddingCheat", st, name="later", **quiet)
        assert [r["entry_id"] for r in st.private_scores(one["round"])] == [first["id"]]
        two = run_round(board, st, **quiet)
        assert two["secret_id"] != one["secret_id"]
        assert [r["entry_id"] for r in st.private_scores(two["round"])] == [first["id"], second["id"]]
        assert private_rows(board, st)["round"] == two["round"]


def test_private_rounds_need_a_hidden_board_and_entries(board, secret, tmp_path, db_path, capsys):
    with ResultStore(db_path) as st:
        with pytest.raises(ValueError, match="is open"):
            run_round(load_board("modadd-m5-eta0.2"), st)
        with pytest.raises(ValueError, match="no entries"):
            run_round(board, st)
        assert "No private round yet: `neg board private" in render_board(board, st)
    p = tmp_path / "private-test.toml"
    assert main(["board", "private", str(p), "--db", str(db_path)]) == 2
    assert "no entries under its current protocol" in capsys.readouterr().err
