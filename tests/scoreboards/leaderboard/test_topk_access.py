"""Top-k boards (`[env] access = "topk"`, `top_k = k`): the harness answers topk / topk_along up to k, counted like
probs / probs_along, refuses probabilities; board files are checked; a built-in top-k learner enters end to end."""

from __future__ import annotations

import numpy as np
import pytest

from scoreboards.leaderboard.boards import load_board
from scoreboards.leaderboard.entries import submit
from scoreboards.leaderboard.submission import ExpertServer, SubmissionRejected
from scoreboards.store import ResultStore

TOPK = """
description = "test top-k board"

[env]
id = "NoisyModAdd-v0"
kwargs = { p = 5, m = 3, eta = 0.2, law = "mixture" }
access = "topk"
top_k = 2

[budget]
trajectories = 4096

[eval]
# p^m = 125 prompts: the scored and curve sets together stay under the quarter the harness may reserve.
prompts = 16
curve_prompts = 8
seeds = [1001]
curve_points = 1

[protocol]
train_seeds = [0]
timeout_s = 120
"""


@pytest.fixture
def problem():
    from noisy_expert_gym import make_problem

    return make_problem("NoisyModAdd-v0", p=5, m=3, eta=0.2, law="mixture").with_rng(np.random.default_rng(0))


def _server(problem, access, top_k=None):
    return ExpertServer(problem.expert, problem.task, np.random.default_rng(1), budget_trajectories=100,
                        budget_queries=10_000, access=access, top_k=top_k)


def test_topk_requests_answer_the_experts_top_k_and_count_like_rows(problem):
    srv = _server(problem, "topk", 2)
    p = srv.handle("prompts", (4,))
    chain = problem.task.clean_chains(p)
    ids, lps = srv.handle("topk_along", (p, chain, 2))
    want = problem.expert.topk_along(p, chain, 2)
    np.testing.assert_array_equal(ids, want.ids)
    np.testing.assert_allclose(lps, want.logprobs, rtol=1e-6)
    assert ids.dtype == np.int64 and lps.dtype == np.float32 and (srv.trajectories, srv.queries) == (4, 12)
    ids1, _ = srv.handle("topk", (problem.task.observe(p, chain[:, :1]), 1))
    assert ids1.shape == (4, 1) and srv.queries == 16
    with pytest.raises(SubmissionRejected, match=r"integer k in \[1, 2\]"):
        srv.handle("topk_along", (p, chain, 3))
    for op, args in (("probs_along", (p, chain)), ("probs", (problem.task.observe(p, chain[:, :1]),))):
        with pytest.raises(SubmissionRejected, match=f"`{op}` refused: this board's expert answers top-k"):
            srv.handle(op, args)
    assert srv.handle("rollout", (p,))[1] is None  # the chain only
    sample = _server(problem, "sample")
    p = sample.handle("prompts", (2,))
    with pytest.raises(SubmissionRejected, match="`topk_along` refused: this board's expert is sample-only"):
        sample.handle("topk_along", (p, problem.task.clean_chains(p), 1))
    full = _server(problem, "full")
    p = full.handle("prompts", (2,))
    assert full.handle("topk_along", (p, problem.task.clean_chains(p), 5))[0].shape == (2, 3, 5)


@pytest.mark.parametrize("edit,msg", [
    (lambda s: s.replace("top_k = 2\n", ""), "`\\[env\\] top_k` is required with access"),
    (lambda s: s.replace('access = "topk"', 'access = "full"'), "applies to it only"),
    (lambda s: s.replace('law = "mixture" }', 'law = "mixture", top_k = 2 }'), "`top_k` applies to access='topk' only|declare `top_k`"),
    (lambda s: s + '\n[[baselines]]\nalgo = "nail-r"\n', "nail-r: it reads the expert's whole rows"),
    (lambda s: s + '\n[[baselines]]\nalgo = "nail-f"\nparams = { estimator = "topk", top_k = 3 }\n',
     "asks for the top 3 tokens"),
])
def test_board_files_are_checked(tmp_path, edit, msg):
    path = tmp_path / "b.toml"
    path.write_text(edit(TOPK))
    with pytest.raises(ValueError, match=msg):
        load_board(path)


def test_topk_board_end_to_end(tmp_path, db_path):
    path = tmp_path / "topk-board.toml"
    path.write_text(TOPK)
    board = load_board(path)
    assert (board.access, board.top_k) == ("topk", 2)
    with ResultStore(db_path) as st:
        e = submit(board, "builtin:nail-f", st, params={"estimator": "topk-tail"}, log=lambda m: None)
        assert e["access"] == "topk" and e["per_seed"][0]["queries"] > 0
        with pytest.raises(ValueError, match="`nail-r` cannot learn on board .*whole rows"):
            submit(board, "builtin:nail-r", st, log=lambda m: None)
        with pytest.raises(ValueError, match="asks for the top 4 tokens"):
            submit(board, "builtin:nail-f", st, params={"estimator": "topk", "top_k": 4}, log=lambda m: None)
