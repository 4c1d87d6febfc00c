"""The evaluation's noisy-expert mode metrics (``greedy_expert_mode_*``) against closed forms on
NoisyModAdd: under the `biased` law the noisy mode at every prefix is (last written + next
operand + 1) mod p, under the mixture law the clean token, under the absorbing law the clean
token before a chain's first error and every token after it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.evaluation import MODE_METRICS_MAX_ROW, expert_mode_metrics, mode_referee
from noisy_expert_gym.problems import make_problem

P, M, N = 5, 6, 64


def _problem(law: str, eta: float):
    return make_problem("NoisyModAdd-v0", p=P, m=M, law=law, eta=eta)


def _prompts(problem, seed: int = 0) -> torch.Tensor:
    return problem.task.sample_prompts(torch.Generator().manual_seed(seed), N, device="cpu")


def _shifted_chain(x: torch.Tensor, shift: int) -> torch.Tensor:
    """y_t = (y_{t-1} + x_t + shift) mod p from y_0 = 0 (shift 0: the clean running sums)."""
    y, out = torch.zeros(x.shape[0], dtype=torch.long), []
    for t in range(M):
        y = (y + x[:, t] + shift) % P
        out.append(y)
    return torch.stack(out, 1)


def test_biased_beyond_half_the_mode_chain_is_the_shifted_one():
    problem = _problem("biased", 0.6)
    prompts = _prompts(problem)
    x = prompts[:, :M].long()
    wrong, clean = _shifted_chain(x, 1), _shifted_chain(x, 0)
    assert torch.equal(clean, torch.as_tensor(problem.task.clean_chains(prompts)).long())
    got = expert_mode_metrics(problem.expert, prompts, wrong)
    assert got["expert_mode_full"].tolist() == [1.0] * N and got["expert_mode_rate"].tolist() == [1.0] * N
    assert float(problem.task.metrics(prompts, wrong)["full_exact"].float().mean()) == 0.0
    got = expert_mode_metrics(problem.expert, prompts, clean)  # 0.4 < 0.6 on the clean token
    assert got["expert_mode_rate"].tolist() == [0.0] * N


def test_below_half_and_under_mixture_the_mode_is_the_clean_token():
    for law, eta in (("biased", 0.4), ("mixture", 0.2)):
        problem = _problem(law, eta)
        prompts = _prompts(problem, 1)
        x = prompts[:, :M].long()
        assert expert_mode_metrics(problem.expert, prompts, _shifted_chain(x, 0))["expert_mode_full"].min() == 1.0
        assert expert_mode_metrics(problem.expert, prompts, _shifted_chain(x, 2))["expert_mode_rate"].max() == 0.0


@pytest.mark.parametrize("j", [0, 2, M - 1])
def test_absorbing_one_slip_then_anything_counts_all_but_the_slip(j: int):
    problem = _problem("absorbing", 0.3)
    prompts = _prompts(problem, 2)
    x = prompts[:, :M].long()
    chain = _shifted_chain(x, 0)
    chain[:, j] = (chain[:, j] + 1) % P  # the first error
    chain[:, j + 1:] = torch.randint(0, P, (N, M - j - 1), generator=torch.Generator().manual_seed(3))
    got = expert_mode_metrics(problem.expert, prompts, chain)
    assert torch.allclose(got["expert_mode_rate"], torch.full((N,), (M - 1) / M))
    assert got["expert_mode_full"].max() == 0.0


def test_referee_counts_no_query_and_skips_large_rows():
    problem = _problem("biased", 0.6)
    referee = mode_referee(problem)
    prompts = _prompts(problem)
    expert_mode_metrics(referee, prompts, torch.as_tensor(problem.task.clean_chains(prompts)))
    assert problem.expert.num_queries == 0 and referee is not problem.expert
    assert M * (P + 0) <= MODE_METRICS_MAX_ROW
    big = make_problem("NoisyModAdd-v0", p=7, m=MODE_METRICS_MAX_ROW // 7 + 1, eta=0.1)
    assert mode_referee(big) is None


def test_trainer_curve_reports_the_mode_metrics():
    from agents.config import TrainConfig
    from agents.trainer import train

    cfg = TrainConfig(algo="bc", env_id="NoisyModAdd-v0", env_kwargs={"p": 3, "m": 3, "eta": 0.6, "law": "biased"},
                      budget_trajectories=256, batch_size=64, eval_prompts=64, eval_every=256, preset="cpu-rope",
                      progress=False, device="cpu")
    result = train(cfg)
    row = result.curve[-1]
    assert 0.0 <= row["greedy_expert_mode_full"] <= row["greedy_expert_mode_rate"] <= 1.0
    assert result.queries == 256 * 3  # the referee's reads are not charged
    assert np.isfinite(row["greedy_full_exact"])
