"""Benches and boards count a learner's budget the same way (docs/design.md §4.4).

Issue 27, case 5 (the kind: two views of one learner that disagree). On a board the harness
counts what the expert is asked for; in `neg bench` the trainer counts what a batch spends. BC
bought its whole dataset through the expert before its first update, so the board charged it
everything up front (its curve points at 8k and 16k trajectories were an untrained model, or
absent), while the bench charged it as it was read. Now BC collects its data as its first pass
reads it, and both curves have their points at the same trajectories.
"""

from __future__ import annotations

import pytest

from agents import train
from scoreboards.leaderboard.boards import load_board
from scoreboards.leaderboard.submission import run_submission
from tests.scoreboards.leaderboard.board_files import board_toml

BOARD = board_toml(description="budget accounting", top=['cost = "seconds"'], trajectories=512, prompts=64,
                   seeds=[1001], eval=['curve_points = 4'], timeout_s=120, tail='\n[[baselines]]\nalgo = "bc"\n')
TRAIN = {"preset": "tiny", "batch_size": 64, "device": "cpu", "precision": "fp32"}


@pytest.mark.parametrize("algo", ["bc", "nail-f"])
def test_bench_and_board_charge_a_learner_alike(algo, tmp_path):
    p = tmp_path / "b.toml"
    p.write_text(BOARD)
    board = load_board(p)
    out = run_submission(board, "scoreboards.leaderboard.builtin:BuiltinSubmission", 0,
                         extra_spec={"algo": algo, "algo_params": {}, "train": TRAIN})
    bench = train(algo=algo, env_id="NoisyModAdd-v0", env_kwargs=board.env_kwargs, budget_trajectories=512,
                  eval_every=128, eval_prompts=64, progress=False, data_dir=str(tmp_path / "data"), **TRAIN)
    assert [c["trajectories"] for c in out.curve] == [c["trajectories"] for c in bench.curve] == [128, 256, 384, 512]
    assert out.trajectories == bench.trajectories == 512
