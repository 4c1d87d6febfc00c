"""Every budget is a hard cap: trajectories and queries, for every algorithm.

The kind of fault: a budget checked before a batch but not applied to it, so the last batch
overshoots. The spend is counted here independently of the trainer's bookkeeping: by
proxies around the oracles that charge what the harness would (a prefix answered is a query;
a chain asked for at once -- ``probs_along`` / ``rollout`` -- is a trajectory; the
``probs_along`` of a chain the expert has just rolled out is already paid for).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from agents import ALGORITHMS, train
from agents.budget import Budget, BudgetExceeded
from noisy_expert_gym import make_problem

TINY = {"env_id": "NoisyModAdd-v0", "preset": "tiny", "batch_size": 32, "eval_prompts": 32, "device": "cpu",
        "progress": False, "precision": "fp32", "eval_every": 10**6}  # one evaluation, at the end
KW = {"m": 3, "eta": 0.1}
H = 3
LOOP = sorted(a for a, alg in ALGORITHMS.items() if alg.run is None)


class Metered:
    """An oracle seen through the harness's meter."""

    def __init__(self, inner):
        self.inner, self.queries, self.trajectories, self._last = inner, 0, 0, None
        self.single = 0  # single-prefix queries: the harness charges one trajectory per H of them

    @property
    def charged(self):
        """Trajectories as a board's harness charges them."""
        return self.trajectories + -(-self.single // H)

    @property
    def num_queries(self):
        return self.queries

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def probs(self, obs):
        self.queries += obs.shape[0]
        self.single += obs.shape[0]
        return self.inner.probs(obs)

    def sample(self, obs, generator=None):
        self.queries += obs.shape[0]
        self.single += obs.shape[0]
        return self.inner.sample(obs, generator=generator)

    def probs_along(self, prompts, chain):
        last = self._last
        if not (last is not None and torch.equal(last[0], prompts) and torch.equal(last[1], chain)):
            self.queries += chain.numel()
            self.trajectories += chain.shape[0]
        return self.inner.probs_along(prompts, chain)

    def rollout(self, prompts, generator=None):
        chain = self.inner.rollout(prompts, generator=generator)
        self.queries += chain.numel()
        self.trajectories += chain.shape[0]
        self._last = (prompts, chain)
        return chain

    def sample_along(self, prompts, chain, k=1, generator=None):
        self.queries += k * chain.numel()
        self.trajectories += chain.shape[0]
        return self.inner.sample_along(prompts, chain, k, generator=generator)


def metered_run(algo, tmp_path, **fields):
    import numpy as np

    base = make_problem("NoisyModAdd-v0", **KW).with_rng(np.random.default_rng(0))
    expert, clean = Metered(base.expert), Metered(base.clean_expert)
    res = train(algo=algo, env_kwargs=KW, problem=base.with_experts(expert, clean), data_dir=str(tmp_path),
                **TINY, **fields)
    return res, expert.queries + clean.queries


@pytest.mark.parametrize("trajectories,queries", [(100, None), (10_000, 2000), (150, 301)])
@pytest.mark.parametrize("algo", LOOP)
def test_both_budgets_are_exact_caps(algo, trajectories, queries, tmp_path):
    """Budgets that divide neither the batch (32) nor the horizon (3): the run spends exactly what
    they afford, min(trajectories, queries // q) trajectories of the q queries the algorithm declares
    per trajectory (H, or k H for nail-mode), never more."""
    alg = ALGORITHMS[algo]
    q = alg.queries_per_trajectory(alg.params(), H)
    res, metered = metered_run(algo, tmp_path, budget_trajectories=trajectories, budget_queries=queries)
    affordable = trajectories if queries is None else min(trajectories, queries // q)
    assert res.trajectories == affordable
    assert res.queries == metered == affordable * q  # what the oracles answered, counted outside
    assert queries is None or metered <= queries
    assert res.curve[-1]["trajectories"] == affordable and res.curve[-1]["queries"] == affordable * q


@pytest.mark.parametrize("params,per_trajectory", [({"k": 3}, 3 * H), ({"k": 1}, H),
                                                   ({"k": 3, "label": "argmax"}, H)])
def test_nail_mode_with_k_samples_per_prefix_stays_within_the_query_cap(params, per_trajectory, tmp_path):
    """nail-mode queries k times per visited prefix: its declared cost is k H per trajectory, so a
    query cap of 2000 buys 2000 // 9 = 222 trajectories at k = 3 (not 666, which would spend 5,994;
    before the declaration, planned at H per trajectory, the run hit BudgetExceeded at its 7th batch)."""
    res, metered = metered_run("nail-mode", tmp_path, budget_trajectories=10_000, budget_queries=2000,
                               algo_params=params)
    assert res.trajectories == 2000 // per_trajectory
    assert res.queries == metered == res.trajectories * per_trajectory <= 2000


def test_the_issue_example_nail_f_under_a_query_cap(tmp_path):
    """`budget_queries=2000`, batch 256: 2,304 queries were spent; now at most 2,000 (666 * 3 = 1,998)."""
    res = train(algo="nail-f", env_kwargs={"m": 3}, budget_trajectories=100_000, budget_queries=2000,
                batch_size=256, preset="tiny", device="cpu", progress=False, eval_prompts=32)
    assert res.queries == 1998 and res.trajectories == 666


def test_bc_epochs_after_the_query_cap_still_run(tmp_path):
    """Later BC epochs re-read spent data for free: a spent query budget does not cut them."""
    res = train(algo="bc", env_kwargs=KW, budget_trajectories=64, budget_queries=100, algo_params={"epochs": 3},
                data_dir=str(tmp_path), **TINY)
    assert res.trajectories == 33 and res.queries == 99
    assert res.curve[-1]["update"] == 3 * 2  # 2 updates (32 + 1) per epoch, 3 epochs


def test_a_query_cap_below_one_trajectory_is_a_clear_error():
    with pytest.raises(ValueError, match="buys no trajectory.*at least 3"):
        train(algo="nail-f", env_kwargs=KW, budget_trajectories=64, budget_queries=2, **TINY)


def test_an_algorithm_that_overspends_is_stopped_not_recorded(monkeypatch):
    """The plan takes the algorithm's declared queries per trajectory (H by default); an algorithm
    spending more hits BudgetExceeded."""
    from agents.algos.base import Algorithm, Batch
    from agents.algos.online import NAILForward, collect_online, loss_forward

    def greedy(ctx, params):
        b = collect_online(ctx, params)
        ctx.expert.probs_along(b.prompts, b.chain)  # a second query per prefix
        return b

    monkeypatch.setitem(ALGORITHMS, "greedy-q", Algorithm("greedy-q", "test", NAILForward, greedy, loss_forward))
    assert Batch  # the contract's batch type is what collect_online returns
    with pytest.raises(BudgetExceeded, match="more than 3 per trajectory"):
        train(algo="greedy-q", env_kwargs=KW, budget_trajectories=64, budget_queries=64 * 3, **TINY)


# ----- PPO: episodes ---------------------------------------------------------------------------
PPO = {"n_envs": 8, "episodes_per_env": 2, "n_epochs": 1, "minibatch_size": 24, "embed_dim": 8, "hidden": 16}


@pytest.mark.parametrize("budget", [60, 16, 41])
def test_ppo_episodes_never_exceed_the_budget(budget):
    """Sub-envs play in lockstep: PPO spends the largest multiple of n_envs (8) within the budget
    (it rounded up to whole rollouts of 16 before: 64 for 60)."""
    res = train(algo="ppo", algo_params=PPO, budget_trajectories=budget, env_kwargs=KW, eval_prompts=16,
                device="cpu", progress=False, eval_every=16)
    assert res.trajectories == budget - budget % 8 and res.curve[-1]["trajectories"] == res.trajectories


def test_ppo_budget_below_one_round_is_a_clear_error():
    with pytest.raises(ValueError, match="less than one round.*n_envs=8"):
        train(algo="ppo", algo_params=PPO, budget_trajectories=5, env_kwargs=KW, device="cpu", progress=False)


# ----- the plan itself, for any budget -----------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(trajectories=st.integers(1, 5000), queries=st.one_of(st.none(), st.integers(1, 20000)),
       h=st.integers(1, 40), batch=st.integers(1, 300), world=st.integers(1, 4))
def test_the_plan_spends_what_the_budget_affords_and_never_more(trajectories, queries, h, batch, world):
    if queries is not None and queries < h:
        with pytest.raises(ValueError, match="buys no trajectory"):
            Budget(trajectories, queries, h)
        return
    budgets = [Budget(trajectories, queries, h) for _ in range(world)]  # one per rank, kept in step
    affordable = trajectories if queries is None else min(trajectories, queries // h)
    updates = budgets[0].updates(batch * world, world)
    for _ in range(updates):
        shares = [b.share(batch, world, r) for r, b in enumerate(budgets)]
        total = shares[0][1]
        assert all(t == total for _, t in shares) and sum(s for s, _ in shares) == total
        assert all(1 <= s <= batch for s, _ in shares)
        for b in budgets:
            b.charge(total, total * h)
    spent = budgets[0].trajectories
    assert spent <= affordable and affordable - spent < world  # all of it, but a remainder < world ranks
    assert budgets[0].share(batch, world, 0) == (0, 0)
    assert queries is None or budgets[0].queries <= queries


@pytest.mark.parametrize("algo", ["bc", "bc-clean", "nail-f", "dagger", "gkd"])
def test_every_learner_is_charged_as_it_collects(algo, tmp_path, monkeypatch):
    """Issue 27, case 5: one budget rule for every learner, in benches and on boards. A trajectory is
    charged when the expert produces it, and an offline learner collects its dataset as its first
    pass reads it: at every evaluation, what the trainer's budget says was spent (the bench's curve)
    equals what the expert was asked for (the board's count). BC bought its whole dataset up front,
    so the board saw 256 trajectories spent while the bench curve said 64, 128, 192."""
    import numpy as np

    from agents.evaluation import HeldOut

    base = make_problem("NoisyModAdd-v0", **KW).with_rng(np.random.default_rng(0))
    expert, clean = Metered(base.expert), Metered(base.clean_expert)
    asked = []
    evaluate = HeldOut.evaluate

    def metered_evaluate(self, *args, **kwargs):
        asked.append(expert.charged + clean.charged)
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(HeldOut, "evaluate", metered_evaluate)
    res = train(algo=algo, env_kwargs=KW, problem=base.with_experts(expert, clean), data_dir=str(tmp_path),
                **{**TINY, "eval_every": 64}, budget_trajectories=256)
    assert [p["trajectories"] for p in res.curve] == [64, 128, 192, 256]
    assert asked == [64, 128, 192, 256]
