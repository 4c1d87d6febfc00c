"""The reference teacher as a queryable expert: :class:`~noisy_expert_gym.oracle.Expert`
over a :class:`~noisy_expert_gym.tasks.gsm8k.GSM8KTask`, with rollouts that stop at the first
stop token (any of the task's ``eos_tokens``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from noisy_expert_gym.oracle import Expert
from noisy_expert_gym.sampling import sample_from
from noisy_expert_gym.utils import is_torch


class ReferenceExpert(Expert):
    """:class:`Expert` for GSM-8K: identical answers; :meth:`rollout` stops once every row wrote a
    stop token.

    ``Expert.rollout`` always takes H steps; GSM-8K horizons (default 1,280) are
    several times the typical solution (median ~220 characters), and tokens after
    the first stop token are ignored anyway, so the chains here are padded with
    ``eos_token`` after it and only the prefixes before it are queried (and counted).
    Works with any tokenizer of the task, a Hugging Face one included.
    """

    def rollout(self, prompts: Any, generator: Any = None) -> Any:
        """The expert's own rollouts from `prompts` (its tokens fed back): chains (N, H), EOS-padded."""
        task = self.task
        n, h, eos = prompts.shape[0], task.horizon, task.eos_token
        gen = generator or self._gen_for(prompts)
        if is_torch(prompts):
            import torch

            chain = torch.full((n, h), eos, dtype=torch.long, device=prompts.device)
            done = torch.zeros(n, dtype=torch.bool, device=prompts.device)
            stops = torch.tensor(task.tokenizer.eos_tokens, device=prompts.device)
        else:
            chain = np.full((n, h), eos, np.int64)
            done = np.zeros(n, bool)
            stops = np.array(task.tokenizer.eos_tokens)
        for t in range(h):
            obs = task.observe(prompts, chain[:, :t])
            self.num_queries += int((~done).sum())
            a = sample_from(self._answer(self._probs(obs), gen), gen)
            chain[:, t] = a.masked_fill(done, eos) if is_torch(a) else np.where(done, eos, a)
            hit = torch.isin(chain[:, t], stops) if is_torch(prompts) else np.isin(chain[:, t], stops)
            done = done | hit
            if bool(done.all()):
                break
        return chain
