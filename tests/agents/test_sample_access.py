"""Sample-only experts in the trainer: every algorithm's `needs_probs` against what it does.

An algorithm that declares it learns from samples runs against an expert that answers with
sampled tokens only (and, where the full-access path draws the same tokens, learns the same
curve); one that declares it needs probabilities is refused before any query, with an error
naming the access mode and what to use instead.
"""

from __future__ import annotations

import pytest

from agents import ALGORITHMS, train
from agents.algos import AccessModeError, check_expert_access, sample_algorithms
from noisy_expert_gym import make_problem
from noisy_expert_gym.oracle import ExpertAccessError

TINY = {"env_id": "NoisyModAdd-v0", "preset": "tiny", "batch_size": 32, "eval_prompts": 64, "device": "cpu",
        "progress": False, "precision": "fp32"}
KW = {"m": 3, "eta": 0.3, "law": "corrupted", "kappa": 0.5}

# Every student-prefix algorithm with its default parameters and with the parameters that flip `needs_probs`.
CASES = [(name, {}) for name, alg in sorted(ALGORITHMS.items()) if alg.run is None] + [
    ("nail-f", {"estimator": "exact"}), ("opd-f", {"estimator": "exact"}),
    ("nail-mixed", {"beta": 0.0}), ("nail-mixed", {"beta": 0.0, "forward_estimator": "exact"}),
    ("nail-mode", {"label": "argmax"}), ("gkd", {"lam": 1.0, "beta": 0.0}),
]


class Counting:
    """An oracle wrapper that counts every method call made to it (`access` is read, not called)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if callable(attr):
            self.calls.append(name)
        return attr


def _params(name, params):
    return ALGORITHMS[name].params.model_validate(params)


def test_needs_probs_is_declared_as_expected():
    """The declaration itself, per algorithm and parameters (boards refuse entries by it)."""
    got = {(n, tuple(sorted(p.items()))): ALGORITHMS[n].needs_probs(_params(n, p))
           for n, p in [(n, {}) for n in ALGORITHMS] + [(n, p) for n, p in CASES if p]}
    assert got == {
        ("bc", ()): False, ("bc-clean", ()): False, ("dagger", ()): False, ("gkd", ()): True,
        ("nail-f", ()): False, ("nail-mixed", ()): True, ("nail-mode", ()): False, ("nail-r", ()): True,
        ("opd-f", ()): False, ("opd-r", ()): True, ("ppo", ()): False,
        ("nail-f", (("estimator", "exact"),)): True, ("opd-f", (("estimator", "exact"),)): True,
        ("nail-mixed", (("beta", 0.0),)): False,
        ("nail-mixed", (("beta", 0.0), ("forward_estimator", "exact"))): True,
        ("nail-mode", (("label", "argmax"),)): True, ("gkd", (("beta", 0.0), ("lam", 1.0))): True,
    }
    assert sorted(sample_algorithms()) == ["bc", "dagger", "nail-f", "nail-mode", "opd-f"]


@pytest.mark.parametrize("name,params", CASES, ids=[f"{n}{p or ''}" for n, p in CASES])
def test_sample_only_expert_runs_what_learns_from_samples_and_refuses_the_rest_up_front(name, params, tmp_path):
    alg = ALGORITHMS[name]
    problem = make_problem("NoisyModAdd-v0", **KW, access="sample")
    expert, clean = Counting(problem.expert), Counting(problem.clean_expert)
    kw = dict(algo=name, algo_params=params, env_kwargs={**KW, "access": "sample"},
              problem=problem.with_experts(expert, clean), budget_trajectories=96, seed=3,
              data_dir=str(tmp_path), **TINY)
    if alg.needs_probs(_params(name, params)):
        with pytest.raises(AccessModeError, match=rf"`{name}` .*access='sample'") as err:
            train(**kw)
        assert isinstance(err.value, ExpertAccessError) and isinstance(err.value, ValueError)
        assert alg.sample_only_hint and alg.sample_only_hint[1:] in str(err.value)  # what to use instead
        assert expert.calls == [] and clean.calls == []  # refused before any query
        assert expert.inner.num_queries == 0
    else:
        res = train(**kw)  # no ExpertAccessError on the way
        assert res.trajectories == 96 and res.queries >= 96 * 3
        assert not {"probs", "probs_along", "log_prob"} & set(expert.calls + clean.calls)


@pytest.mark.parametrize("name,params", [("nail-f", {}), ("opd-f", {}), ("dagger", {}), ("bc", {})])
def test_sample_only_access_draws_the_full_access_tokens(name, params, tmp_path):
    """The Monte Carlo labels (sample_along(., 1)) are the draws probs_along + one draw per row gave, from
    the same generator: the access mode does not change a seeded curve (BC: the expert's rollouts)."""
    curves = []
    for access in ("full", "sample"):
        res = train(algo=name, algo_params=params, env_kwargs={**KW, "access": access}, budget_trajectories=128,
                    seed=7, data_dir=str(tmp_path / access), **TINY)
        curves.append([(c["trajectories"], c["queries"], c["train_loss"], c["val_loss"]) for c in res.curve])
    assert curves[0] == curves[1]


def test_check_expert_access_reads_the_oracle_the_algorithm_learns_from():
    """bc-clean learns from the clean expert (always full); an oracle without `access` is a full one."""
    sample_only = make_problem("NoisyModAdd-v0", **KW, access="sample")
    gkd = ALGORITHMS["gkd"]
    check_expert_access(gkd, _params("gkd", {}), sample_only.clean_expert)  # full: fine
    check_expert_access(gkd, _params("gkd", {}), object())  # no `access` attribute: full
    with pytest.raises(AccessModeError, match="generalized JSD"):
        check_expert_access(gkd, _params("gkd", {}), sample_only.expert)
    check_expert_access(ALGORITHMS["nail-f"], _params("nail-f", {}), sample_only.expert)  # mc: fine
