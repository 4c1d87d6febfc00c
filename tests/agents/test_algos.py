"""Each algorithm's `collect` (and the losses that sample), with a stub policy and a stub expert.

No learning here: the stubs make visible which prefixes an algorithm visits (greedy or sampled
student rollouts, DAgger's mixture roll-in, GKD's student-data fraction) and which tokens its
loss scores (NAIL-R's fresh token).
"""

from __future__ import annotations

import math

import pytest
import torch

from agents.algos import ALGORITHMS, Context
from agents.budget import Budget
from agents.config import TrainConfig
from noisy_expert_gym.tasks import ModAddTask

TASK = ModAddTask(7, 3)  # A = 7 actions, H = 3
A, H = TASK.num_actions, TASK.horizon
GREEDY, SAMPLED, EXPERT = 0, 3, 6  # the stubs' tokens


class StubPolicy:
    """Greedy rollouts write GREEDY, sampled ones SAMPLED; records the temperatures it is asked for."""

    training = False

    def __init__(self) -> None:
        self.temperatures: list[float] = []

    def generate(self, prompts, horizon, temperature=0.0, generator=None, step_fn=None):
        self.temperatures.append(temperature)
        chain = torch.full((prompts.shape[0], horizon), -1, dtype=torch.long)
        for t in range(horizon):
            tok = torch.full((prompts.shape[0],), GREEDY if temperature == 0 else SAMPLED, dtype=torch.long)
            chain[:, t] = tok if step_fn is None else step_fn(t, chain, tok)
        return chain


class StubExpert:
    """A fixed next-token distribution at every prefix; its own actions are always EXPERT."""

    def __init__(self, row: torch.Tensor) -> None:
        self.row, self.num_queries, self.rollouts = row, 0, 0

    def probs_along(self, prompts, chain):
        self.num_queries += chain.numel()
        return self.row.expand(chain.shape[0], chain.shape[1], A).clone()

    def sample(self, obs, generator=None):
        self.num_queries += obs.shape[0]
        return torch.full((obs.shape[0],), EXPERT, dtype=torch.long)

    def rollout(self, prompts, generator=None):
        self.rollouts += 1
        self.num_queries += prompts.shape[0] * H
        return torch.full((prompts.shape[0], H), EXPERT, dtype=torch.long)


ROW = torch.tensor([0.5, 0.04, 0.04, 0.1, 0.04, 0.04, 0.24])  # the expert's distribution at every prefix


def make_ctx(algo: str, batch_size: int = 64, budget: int = 10_000, data_dir: str | None = None,
             **params) -> tuple[Context, object]:
    cfg = TrainConfig(algo=algo, algo_params=params, env_id="NoisyModAdd-m3-v0", budget_trajectories=budget,
                      batch_size=batch_size, device="cpu", precision="fp32", data_dir=data_dir)
    alg = ALGORITHMS[algo]
    ctx = Context(cfg=cfg, task=TASK, expert=StubExpert(ROW), clean_expert=StubExpert(ROW), policy=StubPolicy(),
                  device=torch.device("cpu"), gen=torch.Generator().manual_seed(0), budget=Budget(budget),
                  batch_size=batch_size)
    p = alg.params.model_validate(params)
    if alg.setup is not None:
        alg.setup(ctx, p)
    return ctx, p


@pytest.mark.parametrize("algo,tau", [("nail-f", 0.0), ("nail-r", 0.0), ("nail-mixed", 0.0),
                                      ("opd-f", 1.0), ("opd-r", 1.0)])
def test_online_rollouts_are_greedy_for_nail_and_sampled_for_opd(algo, tau):
    ctx, params = make_ctx(algo)
    batch = ALGORITHMS[algo].collect(ctx, params)
    assert ctx.policy.temperatures == [tau]
    assert (batch.chain == (GREEDY if tau == 0 else SAMPLED)).all()
    # The expert answers at every visited prefix; its sampled labels follow its distribution.
    assert ctx.expert.num_queries == 64 * H and torch.equal(batch.probs[0, 0], ROW)
    assert batch.trajectories == 64 and batch.queries is None
    freq = torch.bincount(batch.actions.flatten(), minlength=A).float() / batch.actions.numel()
    assert abs(freq[0] - 0.5) < 0.12


def _student_logits(favourite: int, n: int = 64) -> torch.Tensor:
    logits = torch.zeros(n, H, A)
    logits[..., favourite] = 20.0  # the student puts ~all its mass on `favourite`
    return logits.requires_grad_()


def test_nail_r_scores_a_fresh_token_not_the_greedy_one():
    """Greedy rollout token GREEDY, but pi_theta ~ delta(SAMPLED): the loss scores a' = SAMPLED."""
    ctx, params = make_ctx("nail-r")
    batch = ALGORITHMS["nail-r"].collect(ctx, params)
    assert (batch.chain == GREEDY).all()
    loss = ALGORITHMS["nail-r"].loss(_student_logits(SAMPLED), batch, params)  # (B, H)
    # w = 1 at a' ~ pi_theta, so the value is -(log pi~(a') - log q(a')) with a' = SAMPLED, q(a') ~ 1.
    torch.testing.assert_close(loss.detach(), torch.full((64, H), -math.log(ROW[SAMPLED])), atol=1e-3, rtol=0)


def test_opd_r_reuses_its_sampled_rollout_token():
    """Sampled rollout token SAMPLED, pi_theta ~ delta(5): OPD-R scores the rollout token, not a fresh one."""
    ctx, params = make_ctx("opd-r")
    batch = ALGORITHMS["opd-r"].collect(ctx, params)
    logits = _student_logits(5)
    loss = ALGORITHMS["opd-r"].loss(logits, batch, params)
    log_q = torch.log_softmax(logits.detach(), -1)[..., SAMPLED]
    torch.testing.assert_close(loss.detach(), -(math.log(ROW[SAMPLED]) - log_q))


def test_dagger_labels_are_sampled_noisy_expert_tokens():
    """A real noisy expert: DAgger's labels follow pi~ at each visited prefix (one query each)."""
    import numpy as np

    from noisy_expert_gym import make_problem

    prob = make_problem("NoisyModAdd-m3-v0", eta=1.0, law="mixture").with_rng(np.random.default_rng(0))
    ctx, params = make_ctx("dagger", batch_size=2000, beta0=0.0)
    ctx.task, ctx.expert = prob.task, prob.expert
    ALGORITHMS["dagger"].collect(ctx, params)
    labels = ctx.state["buffer"]["labels"]
    # eta = 1, mixture: uniform over the p = 7 residues at every prefix, whatever the chain.
    freq = torch.bincount(labels.flatten(), minlength=A).float() / labels.numel()
    assert (freq - 1 / 7).abs().max() < 0.02, freq
    assert prob.expert.num_queries == 2000 * H


def test_dagger_mixes_expert_tokens_at_rate_beta_and_decays_it_per_round():
    """Per-step mixing: each roll-in token is the expert's with probability beta_i = beta0 * decay**i."""
    n, budget = 4000, 40_000
    ctx, params = make_ctx("dagger", batch_size=n, budget=budget, beta0=0.6, decay=0.5, iterations=4)
    rounds = []
    for i in range(3):
        ctx.budget.trajectories = i * budget // 4  # the start of round i
        ALGORITHMS["dagger"].collect(ctx, params)
        rollin = ctx.state["buffer"]["chain"][-n:]
        assert ((rollin == EXPERT) | (rollin == GREEDY)).all()  # the expert's token or the student's
        rounds.append(float((rollin == EXPERT).float().mean()))
        assert ctx.policy.temperatures[-1] == 0.0  # the student's part is greedy
    for frac, beta in zip(rounds, (0.6, 0.3, 0.15), strict=True):
        assert abs(frac - beta) < 0.02, rounds
    # Every visited prefix is labelled with the expert's sampled answer there (the stub always answers
    # EXPERT), one query per prefix: the roll-in token where the expert acts is that same answer.
    assert ctx.state["buffer"]["chain"].shape == (3 * n, H)
    assert (ctx.state["buffer"]["labels"] == EXPERT).all()
    assert ctx.expert.num_queries == 3 * n * H


@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0])
def test_gkd_learns_on_student_data_a_lam_fraction_of_the_updates(lam):
    ctx, params = make_ctx("gkd", batch_size=4, lam=lam, tau=0.7)
    updates = 400
    on_policy = 0
    for _ in range(updates):
        batch = ALGORITHMS["gkd"].collect(ctx, params)
        student = batch.queries is None  # the expert's own rollouts count their N * H queries themselves
        assert (batch.chain == (SAMPLED if student else EXPERT)).all()
        on_policy += student
    assert all(t == 0.7 for t in ctx.policy.temperatures)  # student data: sampled at tau
    assert len(ctx.policy.temperatures) == on_policy and ctx.expert.rollouts == updates - on_policy
    if lam in (0.0, 1.0):
        assert on_policy == lam * updates
    else:
        assert abs(on_policy / updates - lam) < 0.07


@pytest.mark.parametrize("algo", ["bc", "bc-clean"])
def test_bc_streams_its_expert_dataset_once_then_rereads_it_for_free(algo, tmp_path):
    ctx, params = make_ctx(algo, batch_size=32, budget=64, data_dir=str(tmp_path), epochs=2)  # runs setup
    used, unused = (ctx.clean_expert, ctx.expert) if algo == "bc-clean" else (ctx.expert, ctx.clean_expert)
    assert used.rollouts == 0  # nothing is bought before the first pass reads it (docs/design.md §4.4)
    spent = []
    for rollouts in (1, 2, 2, 2):  # one update's 32 rollouts at a time, then cached in data_dir
        spent.append(ALGORITHMS[algo].collect(ctx, params))
        assert used.rollouts == rollouts and unused.rollouts == 0
    assert len(list(tmp_path.iterdir())) == 1
    assert [b.trajectories for b in spent] == [32, 32, 0, 0]  # the second epoch spends nothing
    assert all((b.chain == EXPERT).all() and torch.equal(b.actions, b.chain) for b in spent)
    assert [b.queries for b in spent] == [32 * H, 32 * H, 0, 0]
