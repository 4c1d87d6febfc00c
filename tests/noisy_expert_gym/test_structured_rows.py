"""The oracle's structured rows (Expert.structured_along, noise.MixtureRows) equal its dense ones
(probs_along), are counted alike, and draw what the dense rows draw. How learners read them:
tests/agents/test_expert_rows.py."""

from __future__ import annotations

import pytest
import torch

from noisy_expert_gym import make_problem
from noisy_expert_gym.noise import MixtureRows
from noisy_expert_gym.oracle import ExpertAccessError
from noisy_expert_gym.utils import sample_categorical
from tests.structured_inputs import LAWS, chains, gsm8k_problem


@pytest.mark.parametrize(("law", "eta"), LAWS)
def test_structured_rows_are_the_dense_rows(gsm8k_dir: str, law: str, eta: float) -> None:
    problem = gsm8k_problem(gsm8k_dir, law, eta)
    prompts, chain = chains(problem.task, 6, 0)
    dense_expert, struct_expert = problem.expert, problem.expert.with_rng(None)
    dense = dense_expert.probs_along(prompts, chain)
    s = struct_expert.structured_along(prompts, chain)
    assert isinstance(s, MixtureRows) and s.shape == tuple(dense.shape)
    torch.testing.assert_close(s.dense(), dense)
    assert struct_expert.num_queries == dense_expert.num_queries == chain.numel()  # counted alike
    a = torch.randint(0, problem.task.num_actions, chain.shape, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(s.prob_at(a), dense.gather(-1, a[..., None])[..., 0])
    torch.testing.assert_close(s.prob_at(s.clean), s.prob_clean())
    # The absorbing law's uniform weight is 1 exactly where the prefix has left the path.
    if law == "absorbing":
        err = torch.as_tensor(problem.task.error_along(prompts, chain))
        assert torch.equal(s.weight == 1.0, err if eta < 1 else torch.ones_like(err))



@pytest.mark.parametrize(("law", "eta"), LAWS)
def test_structured_draws_are_the_dense_draws(gsm8k_dir: str, law: str, eta: float) -> None:
    problem = gsm8k_problem(gsm8k_dir, law, eta)
    prompts, chain = chains(problem.task, 64, 6)
    s = problem.expert.structured_along(prompts, chain)
    a = s.sample(torch.Generator().manual_seed(7))
    b = sample_categorical(s.dense(), torch.Generator().manual_seed(7))
    # The same uniform per row and the same inverse CDF; only float rounding at a step may differ.
    assert (a != b).float().mean() < 1e-3
    assert bool(s.support[a].logical_or(a == s.clean).all())  # never outside pi~'s support


def test_structured_draws_have_the_right_law() -> None:
    """Many draws from one row: the clean token's and a uniform token's frequencies."""
    support = torch.zeros(50, dtype=torch.bool)
    support[10:30] = True  # n = 20; the clean token 3 is outside U, token 20 inside
    for clean_id, w in ((3, 0.4), (20, 0.4), (20, 1.0), (3, 0.0)):
        n_draws = 200_000
        s = MixtureRows(torch.full((n_draws, 1), clean_id), torch.full((n_draws, 1), w), support)
        a = s.sample(torch.Generator().manual_seed(8))[:, 0]
        freq = torch.bincount(a, minlength=50).double() / n_draws
        want = s.dense()[0, 0].double()
        assert (freq - want).abs().max() < 4e-3, (clean_id, w)


def test_only_full_access_mixture_laws_have_the_form() -> None:
    problem = make_problem("NoisyModAdd-v0", m=4, law="corrupted", eta=0.2)
    p = problem.task.sample_prompts(torch.Generator().manual_seed(0), 2)
    c = torch.zeros((2, problem.task.horizon), dtype=torch.long)
    assert not problem.expert.has_structured_rows and problem.clean_expert.has_structured_rows
    with pytest.raises(ValueError, match="no structured form"):
        problem.expert.structured_along(p, c)
    assert problem.expert.num_queries == 0  # refused before counting
    sample_only = make_problem("NoisyModAdd-v0", m=4, access="sample").expert
    assert not sample_only.has_structured_rows
    with pytest.raises(ExpertAccessError, match="structured_along"):
        sample_only.structured_along(p, c)
    with pytest.raises(ValueError, match="torch"):
        problem.clean_expert.structured_along(p.numpy(), c.numpy())
    with pytest.raises(ValueError, match="complete chains"):
        problem.clean_expert.structured_along(p, c[:, :2])
