"""The losses and the trainer read the expert's rows in either form alike (agents.expert_rows, agents.losses);
the oracle's structured rows themselves: tests/noisy_expert_gym/test_structured_rows.py."""

from __future__ import annotations

import pytest
import torch

from agents import expert_rows as rows
from agents import losses
from agents.algos import Batch
from agents.algos.online import NAILMixed, OPDForward, collect_online, loss_forward, loss_mixed
from noisy_expert_gym import make_problem
from noisy_expert_gym.noise import MixtureRows
from tests.structured_inputs import LAWS, chains, gsm8k_problem


@pytest.mark.parametrize(("law", "eta"), LAWS)
def test_losses_and_gradients_equal_the_dense_ones(gsm8k_dir: str, law: str, eta: float) -> None:
    problem = gsm8k_problem(gsm8k_dir, law, eta)
    prompts, chain = chains(problem.task, 4, 2)
    s = problem.expert.structured_along(prompts, chain)
    dense = s.dense().double()
    logits = torch.randn(*dense.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for ours, ref in ((losses.forward_kl_rows, losses.forward_kl), (losses.reverse_kl_rows, losses.reverse_kl)):
        x1, x2 = logits.clone().requires_grad_(), logits.clone().requires_grad_()
        v1, v2 = ours(x1, s), ref(x2, dense)
        torch.testing.assert_close(v1, v2)
        v1.sum().backward()
        v2.sum().backward()
        torch.testing.assert_close(x1.grad, x2.grad)
        torch.testing.assert_close(ours(logits, dense), v2)  # the dense form passes through


def test_masked_student_tokens_follow_the_dense_conventions(gsm8k_dir: str) -> None:
    problem = gsm8k_problem(gsm8k_dir, "absorbing", 0.2)
    prompts, chain = chains(problem.task, 3, 4)
    s = problem.expert.structured_along(prompts, chain)
    dense = s.dense()
    logits = torch.randn(dense.shape, generator=torch.Generator().manual_seed(5))
    off = ~s.support
    off[s.clean.flatten()] = False  # tokens with pi~ = 0 at every prefix
    logits[..., off] = -torch.inf
    for ours, ref in ((losses.forward_kl_rows, losses.forward_kl), (losses.reverse_kl_rows, losses.reverse_kl)):
        v1, v2 = ours(logits, s), ref(logits, dense)
        assert torch.isfinite(v1).all()
        torch.testing.assert_close(v1, v2)


def test_expert_rows_chooses_the_form(gsm8k_dir: str) -> None:
    problem = gsm8k_problem(gsm8k_dir, "absorbing", 0.1)
    prompts, chain = chains(problem.task, 2, 9)
    assert problem.task.num_actions < rows.STRUCTURED_MIN_ACTIONS
    assert torch.is_tensor(rows.expert_rows(problem.expert, prompts, chain, "auto"))  # small vocabulary: dense
    assert isinstance(rows.expert_rows(problem.expert, prompts, chain, "structured"), MixtureRows)
    corrupted = make_problem("NoisyModAdd-v0", m=4, law="corrupted", eta=0.2)
    p = corrupted.task.sample_prompts(torch.Generator().manual_seed(0), 2)
    c = torch.zeros((2, corrupted.task.horizon), dtype=torch.long)
    assert not rows.is_structured(corrupted.expert) and rows.is_structured(corrupted.clean_expert)
    assert torch.is_tensor(rows.expert_rows(corrupted.expert, p, c, "auto"))
    with pytest.raises(ValueError, match="no structured form"):
        rows.expert_rows(corrupted.expert, p, c, "structured")
    with pytest.raises(ValueError, match="unknown expert form"):
        rows.expert_rows(problem.expert, prompts, chain, "sparse")


class _Ctx:
    """The parts of the trainer's Context that collect_online reads."""

    def __init__(self, problem, form: str, seed: int = 0) -> None:
        from agents.config import TrainConfig
        from agents.policy import TransformerPolicy, make_config

        task = problem.task
        torch.manual_seed(seed)
        self.task, self.expert, self.device = task, problem.expert, torch.device("cpu")
        self.cfg = TrainConfig(expert_form=form, precision="fp32")
        self.policy = TransformerPolicy(make_config("tiny", vocab_size=task.vocab_size,
                                                    num_actions=task.num_actions, block_size=task.obs_len))
        self.gen = torch.Generator().manual_seed(seed)
        self.batch_size = 4
        self.sample_only = False  # a full-access expert: collect_online reads its rows
        self.expert_access = problem.expert.access
        self.noise_kw: dict = {}  # no per-query logit noise

    def sample_prompts(self) -> torch.Tensor:
        return self.task.sample_prompts(self.gen, self.batch_size)

    def rollout(self, prompts: torch.Tensor, tau: float) -> torch.Tensor:
        return self.policy.generate(prompts, self.task.horizon, temperature=tau, generator=self.gen)


@pytest.mark.parametrize("estimator", ["mc", "exact"])
def test_online_losses_are_the_same_with_either_form(gsm8k_dir: str, estimator: str) -> None:
    """collect_online + the NAIL / OPD losses: the structured path gives the dense path's batch and loss."""
    problem = gsm8k_problem(gsm8k_dir, "absorbing", 0.2)
    batches: list[Batch] = []
    for form in ("dense", "structured"):
        batches.append(collect_online(_Ctx(problem, form), OPDForward(estimator=estimator, tau=0.0)))
    d, s = batches
    assert torch.is_tensor(d.probs) and isinstance(s.probs, MixtureRows)
    assert torch.equal(d.chain, s.chain) and (d.actions != s.actions).float().mean() < 1e-3
    s.actions = d.actions  # compare the losses on the same labels
    logits = torch.randn(d.probs.shape, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(loss_forward(logits, s, OPDForward(estimator=estimator)),
                               loss_forward(logits, d, OPDForward(estimator=estimator)))
    params = NAILMixed(beta=0.5, forward_estimator=estimator, reverse_estimator="exact" if estimator == "exact"
                       else "score")
    d.gen, s.gen = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    torch.testing.assert_close(loss_mixed(logits, s, params), loss_mixed(logits, d, params))
