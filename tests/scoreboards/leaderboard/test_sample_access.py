"""Sample-only boards: the expert answers with sampled tokens only, as a teacher behind an API does."""

from __future__ import annotations

import types

import numpy as np
import pytest

from scoreboards.leaderboard.boards import load_board
from scoreboards.leaderboard.builtin import needs_probs
from scoreboards.leaderboard.entries import submit
from scoreboards.leaderboard.submission import ExpertServer, SubmissionRejected
from scoreboards.store import ResultStore
from tests.scoreboards.leaderboard.board_files import board_toml

SUBS = "tests.scoreboards.subs"
SAMPLE = board_toml(description="test sample-only board", env=['access = "sample"'], trajectories=8192,
                    queries=20000, eval=['curve_points = 1'])


@pytest.fixture
def expert():
    from noisy_expert_gym import make_problem

    problem = make_problem("NoisyModAdd-v0", m=3, eta=0.2).with_rng(np.random.default_rng(0))
    return problem


def _server(problem, access, **budget):
    kw = {"budget_trajectories": 100, "budget_queries": 10_000, **budget}
    return ExpertServer(problem.expert, problem.task, np.random.default_rng(1), access=access, **kw)


@pytest.mark.parametrize("op", ["probs", "probs_along", "log_prob"])
def test_sample_only_server_refuses_probabilities(expert, op):
    srv = _server(expert, "sample")
    p = srv.handle("prompts", (4,))
    chain = np.zeros((4, 3), np.int64)
    args = {"probs": (expert.task.observe(p, chain[:, :1]),), "probs_along": (p, chain),
            "log_prob": (expert.task.observe(p, chain[:, :1]), np.zeros(4, np.int64))}[op]
    with pytest.raises(SubmissionRejected, match=f"`{op}` refused: this board's expert is sample-only"):
        srv.handle(op, args)
    assert (srv.trajectories, srv.queries) == (0, 0)


def test_sample_along_counts_a_trajectory_per_chain_and_k_queries_per_prefix(expert):
    for access in ("sample", "full"):
        srv = _server(expert, access)
        p = srv.handle("prompts", (8,))
        chain = expert.task.clean_chains(p)
        s = srv.handle("sample_along", (p, chain, 5))
        assert s.shape == (8, 3, 5) and s.dtype == np.int64
        assert (srv.trajectories, srv.queries) == (8, 8 * 3 * 5)
        # eta = 0.2, absorbing, clean prefixes: the clean token is the majority at nearly every prefix.
        votes = np.apply_along_axis(np.bincount, 2, s, minlength=7).argmax(2)
        assert (votes == chain).mean() > 0.8
        chain_only, probs = srv.handle("rollout", (p,))
        assert chain_only.shape == (8, 3) and (probs is None) == (access == "sample")
        for bad_k in (0, 1.5, True, 10_000):
            with pytest.raises(SubmissionRejected, match="integer k in"):
                srv.handle("sample_along", (p, chain, bad_k))
    srv = _server(expert, "sample", budget_queries=400)
    p = srv.handle("prompts", (8,))
    with pytest.raises(SubmissionRejected, match="over budget: 408 expert queries"):
        srv.handle("sample_along", (p, expert.task.clean_chains(p), 17))


def test_sample_only_board_end_to_end(tmp_path, db_path):
    """A learner from samples enters; asking for probabilities is refused in the client (the run goes
    on) and, sent past the client, ends the run; a built-in that needs probabilities is refused up front."""
    path = tmp_path / "sample-board.toml"
    path.write_text(SAMPLE)
    board = load_board(path)
    assert board.access == "sample"
    with ResultStore(db_path) as st:
        e = submit(board, f"{SUBS}:SampleLearner", st, log=lambda m: None)
        assert e["access"] == "sample" and e["score"] > 0.8
        assert e["per_seed"][0]["queries"] <= 20000
        with pytest.raises(SubmissionRejected, match="`probs` refused: this board's expert is sample-only"):
            submit(board, f"{SUBS}:AsksProbsOnSampleBoard", st, log=lambda m: None)
        with pytest.raises(ValueError, match="`nail-r` needs the expert's probabilities"):
            submit(board, "builtin:nail-r", st, log=lambda m: None)
        with pytest.raises(ValueError, match="`nail-f` needs the expert's probabilities"):
            submit(board, "builtin:nail-f", st, params={"estimator": "exact"}, log=lambda m: None)
        assert len(st.board_entries(board.name)) == 1


def test_sample_only_board_refuses_baselines_that_need_probabilities(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(SAMPLE + '\n[[baselines]]\nalgo = "gkd"\n')
    with pytest.raises(ValueError, match="gkd need the expert's probabilities"):
        load_board(path)


def test_needs_probs_reads_the_algorithm_record(monkeypatch):
    """An algorithm declares `needs_probs` (a bool, or a function of its parameters); one that does
    not is taken to need probabilities."""
    from agents import algos

    # The built-ins' records: the Monte Carlo forward estimators, BC, DAgger and nail-mode learn from
    # sampled tokens; the exact estimators, reverse KL and GKD read the rows.
    assert not needs_probs("nail-f") and not needs_probs("bc") and not needs_probs("dagger")
    assert not needs_probs("nail-mode") and not needs_probs("opd-f")
    assert needs_probs("nail-f", {"estimator": "exact"}) and needs_probs("nail-r") and needs_probs("gkd")
    assert needs_probs("nail-mixed", {"beta": 0.5}) and not needs_probs("nail-mixed", {"beta": 0.0})
    params = types.SimpleNamespace(model_validate=lambda d: types.SimpleNamespace(**{"estimator": "mc", **d}))
    fake = {"from-samples": types.SimpleNamespace(needs_probs=False, params=params),
            "by-estimator": types.SimpleNamespace(needs_probs=lambda p: p.estimator == "exact", params=params)}
    real = algos.get_algorithm
    monkeypatch.setattr(algos, "get_algorithm", lambda name: fake.get(name) or real(name))
    assert not needs_probs("from-samples")
    assert not needs_probs("by-estimator") and needs_probs("by-estimator", {"estimator": "exact"})
