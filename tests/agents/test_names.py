"""The agent layer's derived names are injective in what defines them (issue 24, case 5).

A policy teacher's fingerprint (BC caches its datasets under it; ``t={t:g}`` made t = 1.0000001 and
1.0000002 one teacher, so a run at one temperature read the other's cached dataset), BC's dataset cache
file and a checkpoint's identity key, on close floats.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from agents import TrainConfig
from agents.algos.bc import dataset_path
from agents.budget import Budget
from agents.checkpoint import identity_key
from agents.policies import build_policy
from agents.teachers import PolicyTeacher
from noisy_expert_gym import make_problem

POSITIVE = st.floats(1e-3, 10.0, allow_nan=False)


def close(values: st.SearchStrategy[float]) -> st.SearchStrategy[tuple[float, float]]:
    """A float and its neighbour, or two floats equal to six significant digits."""
    return st.one_of(values.map(lambda x: (x, math.nextafter(x, math.inf))),
                     values.map(lambda x: (x, x * (1 + 3e-8))))


@pytest.fixture(scope="module")
def teacher_policy():
    problem = make_problem("NoisyModAdd-v0", m=3)
    torch.manual_seed(0)
    return problem.task, build_policy(TrainConfig(preset="tiny", device="cpu"), problem.task, torch.device("cpu"))


@settings(max_examples=100, deadline=None)
@given(pair=close(POSITIVE))
def test_policy_teachers_at_close_temperatures_have_two_fingerprints(pair, teacher_policy):
    task, policy = teacher_policy
    a, b = (PolicyTeacher(task, policy, t=t, fingerprint="w").fingerprint for t in pair)
    assert a != b


def _bc_path(eta: float, tmp: str) -> str:
    cfg = TrainConfig(algo="bc", env_kwargs={"m": 3, "eta": eta}, data_dir=tmp)
    task = make_problem("NoisyModAdd-v0", m=3, eta=eta).task
    ctx = SimpleNamespace(cfg=cfg, budget=Budget(64), task=task, clean_expert=None, expert=None)
    return dataset_path(ctx, clean=False, chunk=cfg.batch_size)


@settings(max_examples=60, deadline=None)
@given(pair=close(st.floats(1e-3, 0.99, allow_nan=False)))
def test_bc_dataset_caches_of_close_etas_are_two_files(pair):
    assert _bc_path(pair[0], "/cache") != _bc_path(pair[1], "/cache")


@settings(max_examples=60, deadline=None)
@given(pair=close(st.floats(1e-5, 1.0, allow_nan=False)))
def test_checkpoint_identities_of_close_learning_rates_differ(pair):
    assert identity_key(TrainConfig(lr=pair[0])) != identity_key(TrainConfig(lr=pair[1]))
