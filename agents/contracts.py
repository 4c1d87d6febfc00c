"""The contract of the agents layer: what a student policy offers.

:class:`Policy` is structural (:class:`typing.Protocol`): the transformer student
(:class:`~agents.policy.TransformerPolicy`), the Hugging Face student
(:class:`~agents.hf_policy.HFPolicy`) and PPO's wrapper
(:class:`~agents.algos.ppo.SB3TokenPolicy`) match it without inheriting from it.
The trainer, the algorithms, the evaluation and ``neg record`` use nothing else of
a policy. The task core and the oracle contracts belong to the env layer
(:mod:`noisy_expert_gym.contracts`).

Shapes: B a batch, P the prompt length, H the horizon, A the number of actions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

import torch

StepFn = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]
"""Roll-in hook ``step_fn(t, chain, tokens) -> tokens``: may replace the policy's
tokens at step t (``chain[:, :t]`` is written so far), e.g. DAgger's expert mixture."""


@runtime_checkable
class Policy(Protocol):
    """A student: next-action logits at token prefixes, and rollouts (an ``nn.Module``)."""

    training: bool

    def __call__(self, tokens: torch.Tensor, first: int = 0) -> torch.Tensor:
        """Full causal pass: ``(B, T)`` token ids -> ``(B, T - first, A)`` logits; row t scores
        the action after ``tokens[:, :first+t+1]``. Positions before ``first`` only give keys and
        values (the trainer passes ``first = P - 1``: no head, no last-layer MLP on the prompt)."""
        ...

    def chain_logits(self, prompts: torch.Tensor, chain: torch.Tensor) -> torch.Tensor:
        """Logits at every prefix ``chain[:, :t]``, t = 0..H-1, in one pass: ``(B, H, A)``."""
        ...

    def generate(self, prompts: torch.Tensor, horizon: int, temperature: float = 0.0,
                 generator: torch.Generator | None = None, step_fn: StepFn | None = None) -> torch.Tensor:
        """Roll out ``horizon`` actions without gradient: argmax (``temperature=0``) or sampled
        from ``softmax(logits / temperature)``; ``(B, H)``."""
        ...

    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]: ...

    def train(self, mode: bool = True) -> Any: ...

    def eval(self) -> Any: ...

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any: ...


__all__ = ["Policy", "StepFn"]
