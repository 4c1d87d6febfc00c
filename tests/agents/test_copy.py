"""The agent layer's public objects pickle and deep-copy, and the copy behaves as the original.

Configurations, run results with their trained policy, a problem whose experts are a trained policy
(:class:`~agents.teachers.PolicyTeacher`) and the env over it (gym#1866, Gymnasium#292: what a user
sends to a worker process or snapshots with ``copy.deepcopy``).
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch

from agents import TrainConfig, train
from agents.teachers import PolicyTeacher
from noisy_expert_gym import make_problem

pytestmark = pytest.mark.usefixtures("one_torch_thread")

COPIES = {"pickle": lambda o: pickle.loads(pickle.dumps(o)), "deepcopy": copy.deepcopy}
TINY = {"env_id": "NoisyModAdd-v0", "env_kwargs": {"m": 3, "eta": 0.1}, "preset": "tiny", "batch_size": 16,
        "eval_prompts": 16, "device": "cpu", "progress": False, "precision": "fp32"}


@pytest.fixture(scope="module")
def result():
    return train(algo="nail-f", budget_trajectories=32, seed=1, **TINY)


@pytest.mark.parametrize("how", COPIES)
def test_a_run_copies_config_result_and_a_policy_teacher_problem(result, how):
    """The run's config and result (its trained policy included), and a problem whose experts are
    that policy, with the env over it (configs and results copied before; problems did not)."""
    cfg = TrainConfig.build(algo="nail-mixed", algo_params={"beta": 0.3}, **TINY)
    assert COPIES[how](cfg) == cfg
    twin_result = COPIES[how](result)
    assert twin_result.to_dict() == result.to_dict()
    problem = make_problem("NoisyModAdd-v0", **TINY["env_kwargs"])
    prompts = problem.task.sample_prompts(torch.Generator().manual_seed(0), 8)
    with torch.no_grad():  # the trained policy came along, weights and all
        assert torch.equal(twin_result.policy.generate(prompts, 3, temperature=0.0),
                           result.policy.generate(prompts, 3, temperature=0.0))
    problem = problem.with_experts(*PolicyTeacher.pair(problem.task, result.policy, t=2.0)).with_rng(
        np.random.default_rng(3))
    twin = COPIES[how](problem)
    prompts = problem.task.sample_prompts(np.random.default_rng(0), 5)
    obs = problem.task.observe(prompts, np.zeros((5, 0), np.int64))

    def answers(p):
        return [np.asarray(x).tolist() for x in (p.expert.probs(obs), p.expert.sample(obs),
                                                 p.clean_expert.sample(obs), p.expert.sample(obs))]

    assert answers(twin) == answers(problem)
    env = problem.make_env()
    env.reset(seed=0)
    copied = COPIES[how](env)
    steps = [(copied.step(a)[:4], env.step(a)[:4]) for a in (1, 2, 3)]
    assert all(repr(a) == repr(b) for a, b in steps)
