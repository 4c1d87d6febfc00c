"""The keyword arguments every task family shares, declared once: the noise law, the expert's access
and the per-query logit noise.

Each family declares its keyword arguments as a :class:`~noisy_expert_gym.declarations.Declared`
model beside its ``build_problem`` (:class:`~noisy_expert_gym.tasks.modadd.ModAddKwargs`,
:class:`~noisy_expert_gym.tasks.automaton.AutomatonKwargs`,
:class:`~noisy_expert_gym.tasks.gsm8k.kwargs.GSM8KKwargs`), with these field types for
the parts they share. A field is checked by the function of the module that owns its
rule (the noise law's, the oracle's), so a keyword argument is refused with the same
message whether it reaches ``gym.make``, ``make_problem`` or the class itself.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import model_validator

from noisy_expert_gym.declarations import Declared, checked
from noisy_expert_gym.logit_noise import (
    check_logit_noise,
    check_logit_noise_applies,
    check_logit_noise_dist,
)
from noisy_expert_gym.noise import (
    EXPERT_LAWS,
    check_corruption_applies,
    check_corruption_seed,
    check_eta,
    check_kappa,
    check_law_name,
)
from noisy_expert_gym.oracle import check_access, check_top_k_applies
from noisy_expert_gym.topk import check_top_k

Eta = Annotated[float, checked(check_eta)]
"""The noise level in [0, 1]."""
Law = Annotated[str, checked(lambda law: check_law_name(law, EXPERT_LAWS))]
"""A noise law an :class:`~noisy_expert_gym.oracle.Expert` takes (:data:`~noisy_expert_gym.noise.EXPERT_LAWS`)."""
Kappa = Annotated[float, checked(check_kappa)]
"""The hidden corruption's concentration in [0, 1] (corruption laws only)."""
CorruptionSeed = Annotated[int, checked(check_corruption_seed)]
"""The secret seed of the corruption's wrong tokens, an integer in [0, 2**64) (corruption laws only)."""
Access = Annotated[str, checked(check_access)]
"""How the noisy expert may be queried: ``full``, ``topk`` or ``sample``."""
TopKTokens = Annotated[int | None, checked(lambda k: k if k is None else check_top_k(k))]
"""The tokens per answer of a ``topk`` expert, an integer >= 1 (and at most the number of actions); None otherwise."""
LogitNoiseScale = Annotated[float, checked(check_logit_noise)]
"""The scale sigma >= 0 of the per-query logit noise (0: off)."""
LogitNoiseDist = Annotated[str, checked(check_logit_noise_dist)]
"""The per-query logit noise's distribution: ``gaussian`` or ``gumbel``."""


def check_noise_applies(kw: Any) -> None:
    """A model's cross-field check of the noise arguments: the corruption's parameters only with a corruption
    law, ``top_k`` exactly with ``access="topk"``, ``logit_noise_dist`` only with ``logit_noise`` > 0."""
    check_corruption_applies(kw.law, kw.kappa, kw.corruption_seed)
    check_top_k_applies(kw.access, kw.top_k)
    check_logit_noise_applies(kw.logit_noise, kw.logit_noise_dist)


class ChainNoiseKwargs(Declared):
    """The noise and access keyword arguments of the chain families (NoisyModAdd, NoisyAutomaton,
    NoisyPerStepAutomaton), declared once; each family's model adds its own (its size, its eta's
    default) and inherits these with their cross-field check (:func:`check_noise_applies`)."""

    law: Law = "absorbing"
    """`absorbing` (default), `mixture`, `biased`, `corrupted` or `corrupted-absorbing` (noisy_expert_gym.noise)."""
    kappa: Kappa = 1.0
    """Concentration of the hidden corruption in [0, 1] (corruption laws only): 0 near-uniform, 1 one wrong token per state."""
    corruption_seed: CorruptionSeed = 0
    """Secret seed of the corruption's wrong tokens, an integer in [0, 2**64) (corruption laws only)."""
    access: Access = "full"
    """`full`, `topk` (the top_k most likely tokens and their log-probabilities, and samples) or `sample` (sampled
    tokens only); the clean expert is always `full`."""
    top_k: TopKTokens = None
    """Tokens per answer with access `topk`, in [1, number of actions]; None otherwise."""
    logit_noise: LogitNoiseScale = 0.0
    """Scale sigma >= 0 of the per-query logit noise: each answer from softmax(log pi~ + sigma eps) (0: off)."""
    logit_noise_dist: LogitNoiseDist = "gaussian"
    """The logit noise's distribution: `gaussian` or `gumbel` (only with logit_noise > 0)."""

    @model_validator(mode="after")
    def _noise_applies(self) -> ChainNoiseKwargs:
        check_noise_applies(self)
        return self


__all__ = [
    "Access",
    "ChainNoiseKwargs",
    "CorruptionSeed",
    "Eta",
    "Kappa",
    "Law",
    "LogitNoiseDist",
    "LogitNoiseScale",
    "TopKTokens",
    "check_noise_applies",
]
