"""The theory's two controls (issue 22): BC on the noisy expert's probabilities (soft labels) and an
exponential moving average (EMA) of the weights for every learner."""

from __future__ import annotations

import math

import pytest
import torch

from agents import ALGORITHMS, train
from agents.algos import bc
from agents.algos.base import AccessModeError, Batch
from agents.config import TrainConfig
from agents.trainer import update_ema
from noisy_expert_gym import make_problem
from noisy_expert_gym.declarations import ConfigError

TINY = {"env_id": "NoisyPerStepAutomaton-v0", "env_kwargs": {"m": 3}, "preset": "tiny", "batch_size": 32,
        "eval_prompts": 64, "device": "cpu", "progress": False, "precision": "fp32", "eval_sampled": False}
LOOP = sorted(a for a, alg in ALGORITHMS.items() if alg.run is None)


# ----------------------------------------------------------------------------- soft labels
def test_soft_label_loss_on_a_known_row_is_the_forward_kl():
    """labels='probs': the loss at a prefix is KL(pi~ || pi_theta) = sum_a p_a log(p_a / q_a), written out."""
    probs = torch.tensor([[[0.7, 0.2, 0.1], [1 / 3, 1 / 3, 1 / 3]]])  # (1, 2, 3): a clean row, an absorbed one
    logits = torch.tensor([[[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]]])
    batch = Batch(prompts=torch.zeros(1, 3, dtype=torch.long), chain=torch.tensor([[0, 2]]), probs=probs,
                  actions=torch.tensor([[0, 2]]))
    got = bc.loss(logits, batch, bc.BCParams(labels="probs"))
    q = torch.softmax(logits, -1)
    want = [sum(float(p) * math.log(float(p) / float(qq)) for p, qq in zip(probs[0, t], q[0, t])) for t in range(2)]
    assert got[0].tolist() == pytest.approx(want, abs=1e-6)
    # tokens: -log q(token), the sampled label
    tok = bc.loss(logits, batch, bc.BCParams())
    assert tok[0].tolist() == pytest.approx([-math.log(float(q[0, 0, 0])), -math.log(float(q[0, 1, 2]))], abs=1e-6)


def test_soft_labels_read_the_rows_the_rollouts_were_drawn_from_at_no_extra_cost(tmp_path):
    """Same prefixes as token BC (the same cached rollouts), labels = pi~'s rows there; same spending."""
    kw = dict(TINY, algo="bc", budget_trajectories=96, eval_every=96, data_dir=str(tmp_path))
    seen = []
    original = bc.collect

    def spy(ctx, params):
        b = original(ctx, params)
        seen.append((params.labels, b, ctx.expert))
        return b

    bc_alg = ALGORITHMS["bc"]
    ALGORITHMS["bc"] = type(bc_alg)(**{**bc_alg.__dict__, "collect": spy})
    try:
        hard = train(**kw)
        soft = train(**kw, algo_params={"labels": "probs"})
    finally:
        ALGORITHMS["bc"] = bc_alg
    assert (hard.trajectories, hard.queries) == (soft.trajectories, soft.queries) == (96, 96 * 3)
    hard_b = [b for lab, b, _ in seen if lab == "tokens"]
    soft_b = [(b, e) for lab, b, e in seen if lab == "probs"]
    assert len(hard_b) == len(soft_b) == 3
    for h, (s, expert) in zip(hard_b, soft_b):
        assert torch.equal(h.prompts, s.prompts) and torch.equal(h.chain, s.chain) and h.probs is None
        assert torch.allclose(s.probs, expert.probs_along(s.prompts, s.chain))


def test_soft_labels_need_full_access():
    with pytest.raises(AccessModeError, match="labels='tokens'"):
        train(**dict(TINY, algo="bc", env_kwargs={"m": 3, "access": "sample"}, budget_trajectories=32,
                     algo_params={"labels": "probs"}))
    with pytest.raises(ConfigError, match="labels"):
        TrainConfig.build(algo="bc", algo_params={"labels": "soft"})


# ----------------------------------------------------------------------------- EMA
def test_update_ema_is_the_warmed_up_average():
    ema, pol = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    e0 = [p.detach().clone() for p in ema.parameters()]
    for u, want_d in ((0, 0.1), (5, 6 / 15), (1000, 0.99)):
        before = [p.detach().clone() for p in ema.parameters()]
        update_ema(ema, pol, 0.99, u)
        for b, e, p in zip(before, ema.parameters(), pol.parameters()):
            assert torch.allclose(e, want_d * b + (1 - want_d) * p)
    assert not all(torch.equal(a, b) for a, b in zip(e0, ema.parameters()))


@pytest.mark.parametrize("algo", LOOP)
def test_every_learner_takes_ema_evaluates_it_and_resumes_it(algo, tmp_path):
    """With ema_decay the evaluated (and returned) weights are the average, not the trained ones; a
    checkpoint holds the average, so a resumed run reproduces the uninterrupted curve."""
    kw = dict(TINY, algo=algo, budget_trajectories=32 * 4, eval_every=64, seed=3, ema_decay=0.9,
              data_dir=str(tmp_path / "data"))
    if algo == "bc-clean":
        pytest.skip("same loop as bc")
    full = train(**kw)
    plain = train(**{**kw, "ema_decay": 0.0})
    # The same training trajectory (the average does not feed back), another evaluated model.
    assert full.curve[-1]["train_loss"] == plain.curve[-1]["train_loss"]
    assert any(not torch.equal(a, b) for a, b in zip(full.policy.parameters(), plain.policy.parameters()))
    stopped = train(**kw, checkpoint_dir=str(tmp_path / "ck"), stop_at=0.0)
    assert len(stopped.curve) == 1
    resumed = train(**kw, checkpoint_dir=str(tmp_path / "ck"), resume=True)
    strip = lambda res: [{k: v for k, v in r.items() if k != "wall_time"} for r in res.curve]
    assert strip(resumed) == strip(full)
    for a, b in zip(resumed.policy.parameters(), full.policy.parameters(), strict=True):
        assert torch.equal(a, b)


def test_ema_decay_must_be_below_one():
    with pytest.raises(ConfigError, match="ema_decay"):
        TrainConfig.build(ema_decay=1.0)
    assert TrainConfig().ema_decay == 0.0
    assert make_problem("NoisyPerStepAutomaton-v0").task.horizon == 5
