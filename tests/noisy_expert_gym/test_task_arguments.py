"""Every public task entry point that takes ``(rng, n)`` checks them: swapped arguments give a
TypeError naming the right order, not an AttributeError from deep inside (issue 27)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import noisy_expert_gym
from noisy_expert_gym.tasks import GSM8KTask
from tests.noisy_expert_gym.test_gsm8k_task import TINY

#: Every registered id's task but GSM8K's (it needs data: built from the tiny problems of its tests).
TASKS = {env_id: noisy_expert_gym.make_problem(env_id).task
         for env_id, (family, _) in noisy_expert_gym.REGISTRY.items() if family != "gsm8k"}
TASKS["GSM8K"] = GSM8KTask(TINY, tokenizer="char", max_new_tokens=48)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_swapped_rng_and_n_name_the_order(name):
    task = TASKS[name]
    rng = np.random.default_rng(0)
    with pytest.raises(TypeError, match=r"sample_prompts\(rng, n\).*swapped"):
        task.sample_prompts(8, rng)
    with pytest.raises(TypeError, match=r"sample_prompts\(rng, n\).*swapped"):
        task.sample_prompts(8, torch.Generator().manual_seed(0))
    with pytest.raises(TypeError, match=r"n must be an integer"):
        task.sample_prompts(rng, 2.5)
    with pytest.raises(ValueError, match=r"n must be >= 0"):
        task.sample_prompts(rng, -1)
    if hasattr(task, "sample_symbols"):
        with pytest.raises(TypeError, match=r"sample_symbols\(rng, n\).*swapped"):
            task.sample_symbols(8, rng)
        with pytest.raises(TypeError, match=r"rng must be a numpy Generator"):
            task.sample_symbols(torch.Generator(), 8)  # numpy only
    # The right order still works, numpy and torch, with numpy integer counts.
    assert task.sample_prompts(rng, np.int64(3)).shape[0] == 3
    assert task.sample_prompts(torch.Generator().manual_seed(0), 3).shape[0] == 3


@pytest.mark.parametrize(("eta", "says"), [("abc", "a number in [0, 1], got 'abc' (str)"),
                                          (True, "a number in [0, 1], got True (bool)"),
                                          (None, "a number in [0, 1], got None (NoneType)"),
                                          (1.5, "in [0, 1], got 1.5"), (-0.1, "in [0, 1], got -0.1")])
def test_a_bad_eta_says_what_it_must_be(eta, says):
    """A string or a boolean is not out of range, it is not a number: the message says so (it said
    "must be in [0, 1], got 'abc'")."""
    from noisy_expert_gym.noise import check_eta

    with pytest.raises(ValueError, match=re.escape(f"`eta` must be {says}")):
        check_eta(eta)
    for ok in (0, 1, 0.25, np.float32(0.5), np.int64(1)):
        assert check_eta(ok) == ok
