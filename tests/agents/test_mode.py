"""`nail-mode`: greedy student rollouts, the majority vote of k noisy-expert samples as the label.

Its collect with a stub policy and the real corrupted expert (which prefixes, how many queries),
its labels against the clean expert's and the hidden wrong token's on a fixed prefix set (below and
above the mode-condition boundary, sized by the closed forms of theory_corruption), and its cost
through the trainer.
"""

from __future__ import annotations

import math

import pytest
import torch

from agents import ALGORITHMS, train
from agents.algos import AccessModeError, Context
from agents.algos.mode import argmax_label
from agents.budget import Budget
from agents.config import TrainConfig
from noisy_expert_gym import make_problem
from noisy_expert_gym.noise import wrong_tokens
from noisy_expert_gym.prefix_keys import prefix_keys_along
from noisy_expert_gym.theory_corruption import (
    majority_vote_prob,
    mode_boundary,
    prob_majority_clean,
    state_probs,
)

P, M = 7, 3  # NoisyModAdd p = 7 (A = 7 answer tokens), m = H = 3
N = 128  # prompts per collect: N * H = 384 fixed prefixes
SEED = 5  # the corruption's secret seed


class FixedPolicy:
    """Greedy rollouts: even rows write the clean chain, odd rows a fixed wrong one; records temperatures."""

    training = False

    def __init__(self, task) -> None:
        self.task, self.temperatures = task, []

    def generate(self, prompts, horizon, temperature=0.0, generator=None, step_fn=None):
        self.temperatures.append(temperature)
        chain = self.task.clean_chains(prompts).clone()
        wrong = (prompts[:, :horizon] * 3 + torch.arange(horizon)) % P
        chain[1::2] = wrong[1::2]
        return chain


def make_ctx(eta: float, kappa: float = 1.0, access: str = "sample", **params):
    problem = make_problem("NoisyModAdd-v0", p=P, m=M, eta=eta, law="corrupted", kappa=kappa,
                           corruption_seed=SEED, access=access)
    cfg = TrainConfig(algo="nail-mode", algo_params=params, env_id="NoisyModAdd-v0", batch_size=N, device="cpu")
    ctx = Context(cfg=cfg, task=problem.task, expert=problem.expert, clean_expert=problem.clean_expert,
                  policy=FixedPolicy(problem.task), device=torch.device("cpu"),
                  gen=torch.Generator().manual_seed(0), budget=Budget(10_000), batch_size=N)
    return ctx, ALGORITHMS["nail-mode"].params.model_validate(params)


def wrong_along(ctx, prompts, chain):
    """The hidden wrong token w(s) at every prefix (read from the law's secret key, as only a test may)."""
    clean = ctx.task.clean_along(prompts, chain)
    return wrong_tokens(clean, prefix_keys_along(ctx.task, prompts, chain, SEED), ctx.task.answer_mask)


def prob_vote_not_clean(eta: float, kappa: float, k: int) -> float:
    """P(the vote is not the clean action), summed over the wrong tokens (no 1 - P cancellation)."""
    clean_p, wrong_p, other_p = state_probs("corrupted", eta, kappa, P)
    probs = [clean_p, wrong_p] + [other_p] * (P - 2)
    return sum(majority_vote_prob(probs, k, j) for j in range(1, P))


@pytest.mark.parametrize("k", [1, 4])
def test_collect_rolls_the_student_out_greedily_and_asks_k_samples_per_prefix(k):
    ctx, params = make_ctx(eta=0.3, k=k)
    batch = ALGORITHMS["nail-mode"].collect(ctx, params)
    assert ctx.policy.temperatures == [0.0]  # greedy, as NAIL
    assert torch.equal(batch.chain, FixedPolicy(ctx.task).generate(batch.prompts, M))  # on the student's prefixes
    assert ctx.expert.num_queries == k * N * M  # k queries per visited prefix
    assert batch.trajectories == N and batch.queries is None  # the trainer reads the oracle's count
    assert batch.actions.shape == (N, M) and batch.probs is None
    assert ((batch.actions >= 0) & (batch.actions < P)).all()


def test_k_large_below_the_boundary_gives_exactly_the_clean_expert_labels():
    """eta = 0.2 < 1/2 (kappa = 1) and eta = 0.3 < 2/3 (kappa = 0.5): the vote of k = 151 samples is
    the clean action at every one of the 384 prefixes (clean and erroneous ones alike)."""
    k = 151
    for eta, kappa in [(0.2, 1.0), (0.3, 0.5)]:
        assert eta < mode_boundary(kappa)
        fail = prob_vote_not_clean(eta, kappa, k)
        assert fail < 1e-12, fail  # per prefix: < 4e-10 that any of the 384 fails
        ctx, params = make_ctx(eta=eta, kappa=kappa, k=k)
        batch = ALGORITHMS["nail-mode"].collect(ctx, params)
        clean = ctx.task.clean_along(batch.prompts, batch.chain)
        assert torch.equal(batch.actions, clean)
        assert (batch.chain != ctx.task.clean_chains(batch.prompts)).any()  # erroneous prefixes were visited


def test_above_the_boundary_the_vote_is_the_hidden_wrong_token():
    """kappa = 1, eta = 0.7 > 1/2: w(s) is the mode; the vote of 9 samples returns it with the closed-form
    probability 1 - prob_majority_clean (only the clean token and w(s) have mass), at most prefixes."""
    eta, k = 0.7, 9
    assert eta > mode_boundary(1.0)
    expected = 1.0 - prob_majority_clean("corrupted", eta, 1.0, P, k)  # 0.901
    ctx, params = make_ctx(eta=eta, k=k)
    fracs = []
    for _ in range(4):
        batch = ALGORITHMS["nail-mode"].collect(ctx, params)
        w = wrong_along(ctx, batch.prompts, batch.chain)
        clean = ctx.task.clean_along(batch.prompts, batch.chain)
        assert ((batch.actions == w) | (batch.actions == clean)).all()
        fracs.append(float((batch.actions == w).float().mean()))
    n = 4 * N * M
    frac = sum(fracs) / 4
    assert abs(frac - expected) < 5 * math.sqrt(expected * (1 - expected) / n), (frac, expected)
    assert frac > 0.8


def test_argmax_label_is_the_clean_token_below_and_the_wrong_one_above_the_boundary():
    for eta, want in [(0.45, "clean"), (0.55, "wrong")]:
        ctx, params = make_ctx(eta=eta, access="full", label="argmax")
        batch = ALGORITHMS["nail-mode"].collect(ctx, params)
        assert ctx.expert.num_queries == N * M  # one row per prefix, whatever k
        ref = ctx.task.clean_along(batch.prompts, batch.chain) if want == "clean" else \
            wrong_along(ctx, batch.prompts, batch.chain)
        assert torch.equal(batch.actions, ref)


def test_argmax_ties():
    probs = torch.tensor([[0.1, 0.45, 0.45], [0.6, 0.2, 0.2]])
    gen = torch.Generator().manual_seed(0)
    assert argmax_label(probs, "lowest", gen).tolist() == [1, 0]
    draws = torch.stack([argmax_label(probs, "random", gen) for _ in range(400)])
    assert set(draws[:, 0].tolist()) == {1, 2} and (draws[:, 1] == 0).all()
    assert abs(float((draws[:, 0] == 1).float().mean()) - 0.5) < 0.1


TINY = {"env_id": "NoisyModAdd-v0", "preset": "tiny", "batch_size": 32, "eval_prompts": 64, "device": "cpu",
        "progress": False, "precision": "fp32"}
CORRUPTED = {"m": 3, "eta": 0.3, "law": "corrupted", "kappa": 0.5}


def _curve(res):
    return [(c["trajectories"], c["queries"], c["train_loss"], c["val_loss"], c["greedy_full_exact"])
            for c in res.curve]


@pytest.mark.parametrize("access", ["full", "sample"])
def test_the_trainer_charges_k_queries_per_prefix(access):
    res = train(algo="nail-mode", algo_params={"k": 3}, env_kwargs={**CORRUPTED, "access": access},
                budget_trajectories=200, seed=1, **TINY)
    assert res.trajectories == 200 and res.queries == 3 * 200 * 3
    capped = train(algo="nail-mode", algo_params={"k": 3}, env_kwargs={**CORRUPTED, "access": access},
                   budget_trajectories=10_000, budget_queries=3 * 32 * 3 * 2, seed=1, **TINY)
    assert capped.trajectories == 64 and capped.queries == 3 * 64 * 3  # the query budget stops it


def test_k1_is_nail_f_draw_for_draw():
    """The vote of one sample is the sample: nail-mode(k=1) and NAIL-F (Monte Carlo) learn the same curve."""
    for access in ("full", "sample"):
        kw = dict(env_kwargs={**CORRUPTED, "access": access}, budget_trajectories=160, seed=2, **TINY)
        assert _curve(train(algo="nail-mode", algo_params={"k": 1}, **kw)) == _curve(train(algo="nail-f", **kw))


@pytest.mark.parametrize("bad,msg", [
    ({"k": 0}, "greater than or equal to 1"),
    ({"k": -3}, "greater than or equal to 1"),
    ({"k": True}, "not a boolean"),
    ({"k": 2.5}, "k"),
    ({"ties": "rnd"}, "Did you mean `random`"),
    ({"label": "mode"}, "vote"),
])
def test_bad_parameters_are_clear_errors(bad, msg):
    with pytest.raises(ValueError, match=msg):
        train(algo="nail-mode", algo_params=bad, env_kwargs=CORRUPTED, budget_trajectories=64, **TINY)


def test_argmax_label_with_a_sample_only_expert_is_refused_before_any_query():
    problem = make_problem("NoisyModAdd-v0", **CORRUPTED, access="sample")
    with pytest.raises(AccessModeError, match=r"access='sample'.*label='vote'"):
        train(algo="nail-mode", algo_params={"label": "argmax"}, problem=problem, env_kwargs=CORRUPTED,
              budget_trajectories=64, **TINY)
    assert problem.expert.num_queries == 0
