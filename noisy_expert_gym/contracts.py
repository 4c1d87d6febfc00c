"""The contracts of the env layer: what a task core and an expert oracle offer.

Both are structural (:class:`typing.Protocol`): the built-in tasks
(:class:`~noisy_expert_gym.tasks.ModAddTask`,
:class:`~noisy_expert_gym.tasks.gsm8k.GSM8KTask`) and oracles
(:class:`~noisy_expert_gym.oracle.Expert`,
:class:`~noisy_expert_gym.tasks.gsm8k.HFTeacher`, the harness's counting client) match
them without inheriting from them. Arrays are numpy arrays or torch tensors on any
device; every method returns the kind it was given.

Shapes: N a batch, P = ``prompt_len`` (separator included), H = ``horizon``,
L = ``obs_len`` = P + H, A = ``num_actions``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class TaskCore(Protocol):
    """A finite-horizon token MDP as pure batched functions (docs/design.md §3, §5).

    The clean expert pi* is deterministic here and defined on every prefix
    (``clean_actions``); the noise laws of :mod:`noisy_expert_gym.noise` need
    ``has_error`` / ``slip_actions`` and their ``*_along`` forms.
    """

    num_actions: int
    vocab_size: int
    prompt_len: int
    horizon: int
    obs_len: int
    pad_token: int
    answer_mask: np.ndarray
    """(A,) bool: the support of the noise's uniform part."""

    def sample_prompts(self, rng: Any, n: int, device: Any = None) -> Any:
        """n prompts (N, P) from a numpy ``Generator`` or a ``torch.Generator``."""
        ...

    def observe(self, prompts: Any, chain: Any) -> Any:
        """Observations (N, L) from prompts (N, P) and a partial chain (N, t)."""
        ...

    def validate_obs(self, obs: Any) -> None:
        """Raise ValueError unless ``obs`` (N, L) is a batch of well-formed prefixes."""
        ...

    def step_index(self, obs: Any) -> Any:
        """Chain tokens written so far, (N,)."""
        ...

    def clean_actions(self, obs: Any) -> Any:
        """The clean expert's next token at each prefix, (N,)."""
        ...

    def has_error(self, obs: Any) -> Any:
        """Whether each prefix already contains an error, (N,) bool."""
        ...

    def slip_actions(self, obs: Any) -> Any:
        """The ``biased`` law's structured slip at each prefix, (N,)."""
        ...

    def clean_along(self, prompts: Any, chain: Any) -> Any:
        """``clean_actions`` at every prefix chain[:, :t] of complete chains (N, H): (N, H)."""
        ...

    def error_along(self, prompts: Any, chain: Any) -> Any:
        """``has_error`` at every prefix of complete chains: (N, H) bool."""
        ...

    def slip_along(self, prompts: Any, chain: Any) -> Any:
        """``slip_actions`` at every prefix of complete chains: (N, H)."""
        ...

    def valid_along(self, prompts: Any, chain: Any) -> Any:
        """Which positions of complete chains count (losses mask with it): (N, H) bool."""
        ...

    def clean_chains(self, prompts: Any) -> Any:
        """The clean expert's chains (N, H) (evaluation's validation loss)."""
        ...

    def metrics(self, prompts: Any, chain: Any) -> dict[str, Any]:
        """Per-episode clean metrics of complete chains: ``full_exact``, ``final_exact``,
        ``correct_prefix_len``, ``num_errors`` (each (N,))."""
        ...


@runtime_checkable
class Oracle(Protocol):
    """A queryable expert: the noisy pi~, or the clean pi* (evaluation only).

    Every prefix answered counts one query in ``num_queries`` (k for k samples).
    ``access`` says how it may be queried: ``"full"`` (every method), ``"topk"`` (``topk``,
    ``topk_along`` up to its ``top_k`` tokens, and samples; ``probs``, ``log_prob``,
    ``probs_along`` raise :class:`~noisy_expert_gym.oracle.ExpertAccessError`) or ``"sample"``
    (sampled tokens only: ``sample``, ``sample_along``, ``rollout``). A learner that needs
    more than samples checks ``access`` before it starts.
    """

    task: Any
    num_queries: int
    access: str

    def probs(self, obs: Any) -> Any:
        """Next-action distribution at each prefix (N, L) -> (N, A); (L,) -> (A,). Full access only."""
        ...

    def sample(self, obs: Any, generator: Any = None) -> Any:
        """One sampled action per prefix, (N,)."""
        ...

    def log_prob(self, obs: Any, actions: Any) -> Any:
        """log pi(a|s) per prefix, (N,). Full access only."""
        ...

    def probs_along(self, prompts: Any, chain: Any) -> Any:
        """The distribution at every prefix of complete chains (N, H): (N, H, A). Full access only."""
        ...

    def sample_along(self, prompts: Any, chain: Any, k: int = 1, generator: Any = None) -> Any:
        """k samples at every prefix of complete chains (N, H): (N, H, k) int64, k queries per prefix."""
        ...

    def rollout(self, prompts: Any, generator: Any = None) -> Any:
        """The expert's own rollouts (its tokens fed back): chains (N, H)."""
        ...

    def topk(self, obs: Any, k: int | None = None, generator: Any = None) -> Any:
        """The k most likely tokens at each prefix and their log-probabilities: a ``TopK`` (N, k), ties in
        increasing id (:mod:`noisy_expert_gym.topk`); one query per prefix. Full and top-k access."""
        ...

    def topk_along(self, prompts: Any, chain: Any, k: int | None = None, generator: Any = None) -> Any:
        """The top-k at every prefix of complete chains: a ``TopK`` (N, H, k); N H queries. Full and top-k access."""
        ...

    def reset_queries(self) -> None:
        """Set ``num_queries`` back to zero."""
        ...
