"""Inputs shared by the structured-rows tests of the oracle (tests/noisy_expert_gym/test_structured_rows.py)
and of the learners that read them (tests/agents/test_expert_rows.py)."""

from __future__ import annotations

import torch

from noisy_expert_gym import make_problem

#: (law, eta) pairs: both structured laws, a fully noisy absorbing expert and a clean one.
LAWS = [("mixture", 0.3), ("absorbing", 0.3), ("absorbing", 1.0), ("mixture", 0.0)]


def gsm8k_problem(d: str, law: str, eta: float):
    """NoisyGSM8K-v1 on the example data in `d`, U over the ten digits only: a support smaller than the
    vocabulary, off which pi~ is exactly 0 except at the clean token (a letter, a space, EOS)."""
    return make_problem("NoisyGSM8K-v1", data_dir=d, max_new_tokens=160, max_prompt_tokens=200, law=law, eta=eta,
                        uniform_over="digits")


def chains(task, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts (n, P) and chains (n, H) that follow the reference for a random length, then random tokens."""
    g = torch.Generator().manual_seed(seed)
    prompts = task.sample_prompts(g, n)
    clean = task.clean_chains(prompts)
    keep = torch.randint(0, 40, (n, 1), generator=g)
    noise = torch.randint(0, task.num_actions, clean.shape, generator=g)
    pos = torch.arange(clean.shape[1])[None]
    return prompts, torch.where(pos < keep, clean, noise)
