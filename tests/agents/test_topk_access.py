"""Top-k experts and per-query logit noise in the trainer.

Every algorithm's declared access need against what it does under ``access="topk"``: what learns from top-k
answers or samples runs (one query per visited prefix for a top-k answer), what reads whole rows is refused
before any query with what to use instead; the top-k estimators' k against the expert's; the logit noise's
draws come from the run's generator (a seeded run is reproducible)."""

from __future__ import annotations

import pytest
import torch

from agents import ALGORITHMS, train
from agents.algos import AccessModeError, access_needed, check_expert_access
from noisy_expert_gym import make_problem
from tests.agents.test_sample_access import Counting

TINY = {"env_id": "NoisyModAdd-v0", "preset": "tiny", "batch_size": 32, "eval_prompts": 64, "device": "cpu",
        "progress": False, "precision": "fp32"}
KW = {"m": 3, "eta": 0.3, "law": "mixture"}
TOPK = {**KW, "access": "topk", "top_k": 3}

#: (algorithm, parameters) -> the least access mode that answers it.
NEEDS = [
    ("nail-f", {}, "sample"), ("nail-f", {"estimator": "exact"}, "full"), ("nail-f", {"estimator": "topk"}, "topk"),
    ("nail-f", {"estimator": "topk-tail", "top_k": 2}, "topk"), ("opd-f", {"estimator": "topk"}, "topk"),
    ("opd-r", {}, "full"), ("nail-r", {}, "full"), ("gkd", {}, "full"),
    ("nail-mixed", {"beta": 0.0, "forward_estimator": "topk"}, "topk"), ("nail-mixed", {}, "full"),
    ("nail-mixed", {"beta": 0.0}, "sample"), ("nail-mode", {}, "sample"),
    ("nail-mode", {"label": "argmax"}, "full"), ("nail-mode", {"label": "argmax", "ties": "lowest"}, "topk"),
    ("bc", {}, "sample"), ("dagger", {}, "sample"),
]


def _params(name, params):
    return ALGORITHMS[name].params.model_validate(params)


@pytest.mark.parametrize("name,params,needed", NEEDS, ids=[f"{n}{p or ''}" for n, p, _ in NEEDS])
def test_access_needed_is_declared_as_expected(name, params, needed):
    assert access_needed(ALGORITHMS[name], _params(name, params)) == needed


@pytest.mark.parametrize("name,params,needed", NEEDS, ids=[f"{n}{p or ''}" for n, p, _ in NEEDS])
def test_topk_expert_runs_what_needs_at_most_topk_and_refuses_the_rest_up_front(name, params, needed, tmp_path):
    problem = make_problem("NoisyModAdd-v0", **TOPK)
    expert, clean = Counting(problem.expert), Counting(problem.clean_expert)
    kw = dict(algo=name, algo_params=params, env_kwargs=TOPK, problem=problem.with_experts(expert, clean),
              budget_trajectories=64, seed=3, data_dir=str(tmp_path), **TINY)
    if needed == "full":
        with pytest.raises(AccessModeError, match=rf"`{name}` .*access='topk'") as err:
            train(**kw)
        hint = ALGORITHMS[name].topk_hint
        assert not hint or hint[1:] in str(err.value)
        assert expert.calls == [] and clean.calls == [] and expert.inner.num_queries == 0
    else:
        res = train(**kw)
        assert res.trajectories == 64
        assert not {"probs", "probs_along", "log_prob"} & set(expert.calls)
        if needed == "topk" and name != "nail-mode":
            assert "topk_along" in expert.calls and res.queries == 64 * 3  # one top-k answer per prefix


def test_the_algorithms_k_against_the_experts():
    topk = make_problem("NoisyModAdd-v0", **TOPK).expert
    full = make_problem("NoisyModAdd-v0", **KW).expert
    nail = ALGORITHMS["nail-f"]
    check_expert_access(nail, _params("nail-f", {"estimator": "topk", "top_k": 2}), topk)
    with pytest.raises(AccessModeError, match="asks for the top 4 tokens.*top_k=3"):
        check_expert_access(nail, _params("nail-f", {"estimator": "topk", "top_k": 4}), topk)
    with pytest.raises(AccessModeError, match="without a k.*set the algorithm's `top_k`"):
        check_expert_access(nail, _params("nail-f", {"estimator": "topk"}), full)
    check_expert_access(nail, _params("nail-f", {"estimator": "topk", "top_k": 7}), full)
    with pytest.raises(ValueError, match="`top_k` applies to the top-k forward estimators"):
        _params("nail-f", {"top_k": 2})


def test_full_access_topk_estimator_answers_from_the_rows_top_k(tmp_path):
    """Under full access the top-k estimators ask topk_along with their k: the same answers, the same count."""
    problem = make_problem("NoisyModAdd-v0", **KW)
    expert = Counting(problem.expert)
    res = train(algo="nail-f", algo_params={"estimator": "topk-tail", "top_k": 2}, env_kwargs=KW,
                problem=problem.with_experts(expert, problem.clean_expert), budget_trajectories=64, seed=1,
                data_dir=str(tmp_path), **TINY)
    assert set(expert.calls) >= {"topk_along"} and "probs_along" not in expert.calls and res.queries == 64 * 3


def test_nail_mode_top1_of_a_topk_expert_is_the_lowest_tie_argmax(tmp_path):
    """label='argmax', ties='lowest': the full expert's row argmax and the topk expert's top-1 are the same label,
    so the seeded curves are identical."""
    curves = []
    for kw in (KW, TOPK):
        res = train(algo="nail-mode", algo_params={"label": "argmax", "ties": "lowest"}, env_kwargs=kw,
                    budget_trajectories=96, seed=5, data_dir=str(tmp_path), **TINY)
        curves.append([(c["trajectories"], c["queries"], c["train_loss"], c["val_loss"]) for c in res.curve])
    assert curves[0] == curves[1]


@pytest.mark.parametrize("name,params", [("nail-f", {}), ("nail-f", {"estimator": "exact"}),
                                         ("nail-f", {"estimator": "topk-tail", "top_k": 2}), ("bc", {}),
                                         ("gkd", {}), ("dagger", {})])
def test_logit_noise_runs_are_reproducible_and_differ_from_the_noiseless_run(name, params, tmp_path):
    def run(kw, sub):
        res = train(algo=name, algo_params=params, env_kwargs=kw, budget_trajectories=64, seed=2,
                    data_dir=str(tmp_path / sub), **TINY)
        return [(c["trajectories"], c["queries"], c["train_loss"]) for c in res.curve]

    jitter = {**KW, "logit_noise": 1.0}
    a, b = run(jitter, "a"), run(jitter, "b")
    assert a == b
    assert a != run(KW, "c")


def test_losses_take_the_batchs_top_k():
    from agents.algos.base import Batch
    from agents.algos.online import NAILForward, loss_forward
    from noisy_expert_gym.topk import topk_of

    rows = torch.softmax(torch.randn(2, 3, 5), -1)
    logits = torch.randn(2, 3, 5)
    b = Batch(torch.zeros(2, 1), torch.zeros(2, 3, dtype=torch.long), topk=topk_of(rows, 5))
    from agents import losses as L
    torch.testing.assert_close(loss_forward(logits, b, NAILForward(estimator="topk-tail", top_k=5)),
                               L.forward_kl(logits, rows))
