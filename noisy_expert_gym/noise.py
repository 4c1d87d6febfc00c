"""Noise laws: how the noisy expert pi~ is made from the clean expert pi* (docs/design.md §2).

Each law is a pure function of the clean action, whether the prefix already
contains an error, the law's structured slip, the support of the uniform part
and (corruption laws) a secret key of the prefix. Shapes broadcast: inputs
(...,) give probabilities (..., A). Works on numpy arrays and torch tensors alike.

| law                 | pi~(.|s)                                                     |
|---------------------|--------------------------------------------------------------|
| mixture             | (1-eta) pi*(.|s) + eta U                                     |
| absorbing           | mixture while the prefix is clean; U once it has an error    |
| biased              | (1-eta) pi*(.|s) + eta delta(slip(s))                        |
| corrupted           | (1-eta) pi*(.|s) + eta c(.|s)                                |
| corrupted-absorbing | corrupted while the prefix is clean; c(.|s) once it has one  |
| temperature         | softmax(logits / t) of a teacher with logits (LM teachers)   |

**The structured form.** Under ``mixture`` and ``absorbing`` (and for the clean expert)
every row is ``(1 - w) delta(clean) + w U``, with U's weight ``w = eta`` (``mixture``;
``absorbing`` while the prefix is clean), ``w = 1`` (``absorbing`` once it has an
error) or ``w = 0`` (clean): :func:`mixture_weight` gives w and :class:`MixtureRows`
holds a batch of such rows as a clean token and a weight per prefix, which over a
262,144-token vocabulary is what an oracle can afford to hand a trainer
(:meth:`~noisy_expert_gym.oracle.Expert.structured_along`). Its dense rows are
:func:`noisy_probs`'s.

**Unknown corruption** (docs/design.md §2; our reconstruction of the paper's extension).
The corruption c(.|s) = (1 - kappa) U + kappa delta(w(s)) is hidden and
state-dependent: the "wrong" token w(s) is drawn uniformly among the answer
tokens other than the clean one, by a hash of the prefix s and a secret
``corruption_seed``. The concentration kappa in [0, 1] goes from near-uniform
corruption (kappa = 0: `corrupted` is then exactly `mixture`) to one wrong token
per state (kappa = 1, the worst case for majority voting). At a clean state the
clean action has probability 1 - eta + eta (1 - kappa) / A and w(s) has
eta (1 - kappa) / A + eta kappa, so the clean action is the strict mode (the
**mode condition**) iff eta < 1 / (1 + kappa), whatever w(s) is. Closed forms:
:mod:`noisy_expert_gym.theory_corruption`.
The prefix's secret key (:mod:`noisy_expert_gym.prefix_keys`) picks w(s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from noisy_expert_gym.prefix_keys import prefix_keys, prefix_keys_along
from noisy_expert_gym.utils import did_you_mean, is_torch, one_hot

LAWS: tuple[str, ...] = ("absorbing", "mixture", "biased", "corrupted", "corrupted-absorbing", "temperature")
#: The known-mixture laws over a deterministic clean expert (:mod:`noisy_expert_gym.theory`'s closed forms).
DETERMINISTIC_LAWS: tuple[str, ...] = ("absorbing", "mixture", "biased")
#: The unknown-corruption laws: a hidden state-dependent corruption c(.|s) drawn from a secret seed.
CORRUPTION_LAWS: tuple[str, ...] = ("corrupted", "corrupted-absorbing")
#: Every law an :class:`~noisy_expert_gym.oracle.Expert` over a deterministic clean expert accepts.
EXPERT_LAWS: tuple[str, ...] = DETERMINISTIC_LAWS + CORRUPTION_LAWS
#: Laws whose rows are ``(1 - w) delta(clean) + w U`` (``clean``: the clean expert, w = 0): :class:`MixtureRows`.
MIXTURE_FORM_LAWS: tuple[str, ...] = ("mixture", "absorbing", "clean")
#: Defaults of the corruption laws' parameters (other laws must leave them so).
DEFAULT_KAPPA: float = 1.0
DEFAULT_CORRUPTION_SEED: int = 0


def check_law(law: str, eta: float, allowed: tuple[str, ...] = DETERMINISTIC_LAWS) -> None:
    """Validate a (law, eta) pair, raising ValueError with the valid values."""
    check_law_name(law, allowed)
    check_eta(eta)


def check_law_name(law: str, allowed: tuple[str, ...] = DETERMINISTIC_LAWS) -> str:
    """`law` if it is one of `allowed`, else a ValueError with the valid names and a suggestion."""
    if law not in allowed:
        valid = ", ".join(f"`{x}`" for x in allowed)
        hint = ""
        if law == "temperature":
            hint = " (`temperature` needs a teacher with logits, e.g. an LM teacher)"
        elif law in CORRUPTION_LAWS:
            hint = (" here (the corruption laws' closed forms are in noisy_expert_gym.theory_corruption; "
                    "an Expert accepts them)")
        raise ValueError(f"unknown noise `law` `{law}`{hint}; valid values: {valid}.{did_you_mean(law, allowed)}")
    return law


def check_eta(eta: float) -> float:
    """`eta` if it is a number in [0, 1], else a ValueError."""
    if isinstance(eta, bool) or not isinstance(eta, (int, float, np.integer, np.floating)):
        raise ValueError(f"`eta` must be a number in [0, 1], got {eta!r} ({type(eta).__name__})")  # noqa: TRY004 (pydantic wants ValueError)
    if not 0.0 <= float(eta) <= 1.0:
        raise ValueError(f"`eta` must be in [0, 1], got {eta!r}")
    return eta


def check_corruption(law: str, kappa: float, corruption_seed: int) -> None:
    """Validate the corruption laws' parameters, raising ValueError with the valid values.

    ``kappa`` must be a number in [0, 1] and ``corruption_seed`` an integer in [0, 2**64);
    laws other than `corrupted` / `corrupted-absorbing` must leave both at their defaults.
    """
    check_kappa(kappa)
    check_corruption_seed(corruption_seed)
    check_corruption_applies(law, kappa, corruption_seed)


def check_kappa(kappa: float) -> float:
    """`kappa` if it is a number in [0, 1], else a ValueError."""
    if isinstance(kappa, bool) or not isinstance(kappa, (int, float, np.integer, np.floating)) \
            or not (0.0 <= float(kappa) <= 1.0):
        raise ValueError(f"the corruption's concentration `kappa` must be a number in [0, 1] (0: near-uniform "
                         f"corruption, 1: one wrong token per state), got {kappa!r}")
    return kappa


def check_corruption_seed(corruption_seed: int) -> int:
    """`corruption_seed` if it is an integer in [0, 2**64), else a ValueError."""
    if isinstance(corruption_seed, bool) or not isinstance(corruption_seed, (int, np.integer)) \
            or not (0 <= int(corruption_seed) < 2**64):
        raise ValueError(f"`corruption_seed` must be an integer in [0, 2**64), got {corruption_seed!r}")
    return corruption_seed


def check_corruption_applies(law: str, kappa: float, corruption_seed: int) -> None:
    """Raise unless `kappa` and `corruption_seed` keep their defaults under a law without corruption."""
    if law not in CORRUPTION_LAWS and (float(kappa) != DEFAULT_KAPPA
                                       or int(corruption_seed) != DEFAULT_CORRUPTION_SEED):
        raise ValueError(f"`kappa` and `corruption_seed` apply to the corruption laws "
                         f"({', '.join(f'`{x}`' for x in CORRUPTION_LAWS)}) only; with law `{law}` leave them at "
                         f"their defaults (kappa={DEFAULT_KAPPA}, corruption_seed={DEFAULT_CORRUPTION_SEED}), "
                         f"got kappa={kappa!r}, corruption_seed={corruption_seed!r}")


def uniform(answer_mask: np.ndarray, like: Any = None) -> Any:
    """The uniform distribution U over the task's answer tokens, shape (A,)."""
    u = answer_mask.astype(np.float64) / answer_mask.sum()
    if like is not None and is_torch(like):
        import torch

        return torch.as_tensor(u, dtype=torch.float32, device=like.device)
    return u


def wrong_tokens(clean: Any, key: Any, answer_mask: np.ndarray) -> Any:
    """The corruption's wrong token w(s): uniform (by the key) among the answer tokens other than the clean one.

    Args:
        clean: the clean expert's actions, integer (...,).
        key: the prefixes' keys (:func:`prefix_keys`), (...,).
        answer_mask: bool (A,): the answer tokens. A clean action outside them leaves all of them to choose from.

    Returns:
        Token ids (...,), of clean's kind.
    """
    ids = np.flatnonzero(answer_mask).astype(np.int64)
    n = len(ids)
    if n < 2:
        raise ValueError(f"a corruption law needs at least 2 answer tokens to draw wrong ones from, got {n}")
    below = (np.cumsum(answer_mask) - answer_mask).astype(np.int64)  # answer tokens with a smaller id
    mask = answer_mask.astype(np.int64)
    if is_torch(clean):
        import torch

        ids, below, mask = (torch.as_tensor(x, device=clean.device) for x in (ids, below, mask))
        clean = clean.long()
    is_answer = mask[clean]
    r = key % (n - is_answer)  # a uniform index among the other answer tokens
    return ids[r + is_answer * (r >= below[clean])]  # skip the clean token's own slot


def noisy_probs(
    law: str,
    eta: float,
    clean: Any,
    has_error: Any,
    slip: Any,
    answer_mask: np.ndarray,
    kappa: float = DEFAULT_KAPPA,
    key: Any = None,
) -> Any:
    """pi~(.|s) for a batch of states, given the clean expert's (deterministic) action.

    Args:
        law: one of `absorbing`, `mixture`, `biased`, `corrupted`, `corrupted-absorbing`.
        eta: noise level in [0, 1].
        clean: clean expert actions, integer (...,).
        has_error: whether each prefix already contains an error, bool (...,).
        slip: the `biased` law's structured wrong action, integer (...,).
        answer_mask: bool (A,), the support of the uniform part U.
        kappa: the corruption laws' concentration in [0, 1].
        key: the corruption laws' secret prefix keys (:func:`prefix_keys`), (...,).

    Returns:
        Probabilities of shape (..., A), float64 for numpy and float32 for torch.
    """
    a = answer_mask.shape[0]
    u = uniform(answer_mask, like=clean)
    dtype = None if not is_torch(clean) else u.dtype
    pi_star = one_hot(clean, a, dtype)
    if law == "mixture":
        return (1.0 - eta) * pi_star + eta * u
    if law == "absorbing":
        mix = (1.0 - eta) * pi_star + eta * u
        err = has_error[..., None]
        if is_torch(mix):
            return mix.where(~err, u.expand_as(mix))
        return np.where(err, u, mix)
    if law == "biased":
        return (1.0 - eta) * pi_star + eta * one_hot(slip, a, dtype)
    if law in CORRUPTION_LAWS:
        corruption = (1.0 - kappa) * u + kappa * one_hot(wrong_tokens(clean, key, answer_mask), a, dtype)
        mix = (1.0 - eta) * pi_star + eta * corruption
        if law == "corrupted":
            return mix
        err = has_error[..., None]
        return mix.where(~err, corruption) if is_torch(mix) else np.where(err, corruption, mix)
    check_law(law, eta, allowed=EXPERT_LAWS)  # raises with the valid names
    raise AssertionError("unreachable")


def mixture_weight(law: str, eta: float, has_error: Any) -> Any:
    """U's weight w at each prefix of a law of the form ``(1 - w) delta(clean) + w U`` (:data:`MIXTURE_FORM_LAWS`).

    Args:
        law: ``mixture``, ``absorbing`` or ``clean``.
        eta: noise level in [0, 1].
        has_error: whether each prefix already contains an error, bool torch (...,); read by
            ``absorbing`` only (the others take any tensor of the rows' shape).

    Returns:
        float32 (...,) on has_error's device: eta (``mixture``; ``absorbing`` on a clean prefix),
        1 (``absorbing`` once the prefix has an error), 0 (``clean``).
    """
    import torch

    if law == "clean":
        return torch.zeros(has_error.shape, device=has_error.device)
    if law == "mixture":
        return torch.full(has_error.shape, eta, device=has_error.device)
    if law == "absorbing":
        return torch.where(has_error.bool(), 1.0, eta).float()
    raise ValueError(f"law `{law}` has no structured form; laws that have one: {', '.join(MIXTURE_FORM_LAWS)}")


@dataclass(frozen=True)
class MixtureRows:
    """pi~ at every prefix of a batch of chains, ``(1 - weight) delta(clean) + weight U`` (torch).

    What :meth:`~noisy_expert_gym.oracle.Expert.structured_along` answers: the rows of
    ``probs_along`` as a clean token and U's weight per prefix, without the ``(B, H, A)``
    array. :meth:`dense` gives that array; :meth:`prob_at` and :meth:`sample` read the rows
    without it.

    Attributes:
        clean: ``(B, H)`` long, the clean expert's token at each prefix.
        weight: ``(B, H)`` float32, the uniform part's weight in [0, 1] (:func:`mixture_weight`).
        support: ``(A,)`` bool, U's support (the task's ``answer_mask``), on the chains' device.
    """

    clean: Any
    weight: Any
    support: Any

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the dense rows, ``(B, H, A)``."""
        return (*self.clean.shape, self.support.shape[0])

    @property
    def n_support(self) -> int:
        return int(self.support.sum())

    def clean_in_support(self) -> Any:
        """Whether each prefix's clean token lies in U's support, float ``(B, H)``."""
        return self.support[self.clean].float()

    def prob_clean(self) -> Any:
        """pi~(clean | s), ``(B, H)``."""
        return (1.0 - self.weight) + self.weight * self.clean_in_support() / self.n_support

    def prob_at(self, actions: Any) -> Any:
        """pi~(a | s) at every prefix for tokens ``actions`` ``(B, H)``: ``(B, H)``."""
        a = actions.long()
        return (1.0 - self.weight) * (a == self.clean) + self.weight * self.support[a].float() / self.n_support

    def dense(self) -> Any:
        """The dense rows ``(B, H, A)`` float32 (tests, small vocabularies)."""
        u = self.support.float() / self.n_support  # (A,)
        out = self.weight[..., None] * u  # (B, H, A)
        return out.scatter_add_(-1, self.clean[..., None], (1.0 - self.weight)[..., None])

    def sample(self, generator: Any) -> Any:
        """One draw per row, ``(B, H)``, by the inverse CDF over the token ids from one uniform per
        row, in closed form: the tokens :func:`~noisy_expert_gym.utils.sample_categorical` draws
        from the dense rows with the same generator, up to float rounding at the CDF's steps."""
        import torch

        clean, w, support = self.clean, self.weight, self.support
        n = self.n_support
        ids = torch.nonzero(support).squeeze(1)  # (n,) the support's ids, ascending
        below = (support.long().cumsum(0) - support.long())[clean].float()  # support ids < clean, (B, H)
        f_before = w * below / n  # CDF just below the clean id
        f_at = f_before + (1.0 - w) + w * self.clean_in_support() / n  # CDF at the clean id
        u = torch.rand((*clean.shape, 1), generator=generator, device=clean.device, dtype=torch.float32)[..., 0]
        # Below the clean id the CDF climbs w / n per support id; above it, the same after the jump 1 - w.
        rest = torch.where(u <= f_before, u, u - (1.0 - w))
        k = torch.ceil(rest * n / w.clamp_min(1e-30)).long().clamp(1, n) - 1
        other = ids[k]
        at_clean = (u > f_before) & (u <= f_at) | (w == 0)
        return torch.where(at_clean, clean, other)


@dataclass(frozen=True)
class NoiseLaw:
    """A noise law and its parameters, validated once: what turns pi* into pi~ (see the table above).

    ``NoiseLaw("absorbing", 0.2)``; ``NoiseLaw("corrupted", 0.3, kappa=0.5,
    corruption_seed=7)``; ``NoiseLaw.clean()`` is the identity (the clean expert pi*,
    for evaluation and reference ceilings only). An oracle holds one and asks it for
    the distribution at each prefix.

    Attributes:
        law: the law's name (``clean`` for the identity).
        eta: noise level in [0, 1].
        kappa: the corruption's concentration in [0, 1] (corruption laws only; default 1:
            one wrong token per state).
        corruption_seed: the secret seed of the corruption's wrong tokens (corruption laws
            only; default 0). A leaderboard harness draws it and never shows it.

    Raises:
        ValueError: unknown ``law`` (with the valid names), ``eta`` or ``kappa`` outside
            [0, 1], a ``corruption_seed`` that is not an integer in [0, 2**64), or ``kappa`` /
            ``corruption_seed`` changed from their defaults with a law that has no corruption.
    """

    law: str = "absorbing"
    eta: float = 0.0
    kappa: float = DEFAULT_KAPPA
    corruption_seed: int = DEFAULT_CORRUPTION_SEED

    def __post_init__(self) -> None:
        if self.law != "clean":
            check_law(self.law, self.eta, allowed=EXPERT_LAWS)
        check_corruption(self.law, self.kappa, self.corruption_seed)
        object.__setattr__(self, "eta", float(self.eta))
        object.__setattr__(self, "kappa", float(self.kappa))
        object.__setattr__(self, "corruption_seed", int(self.corruption_seed))

    def __repr__(self) -> str:
        extra = f", kappa={self.kappa}, corruption_seed=<hidden>" if self.is_corruption else ""
        return f"NoiseLaw({self.law!r}, eta={self.eta}{extra})"

    @classmethod
    def clean(cls) -> NoiseLaw:
        """The identity law: pi~ = pi*."""
        return cls("clean", 0.0)

    @property
    def is_clean(self) -> bool:
        return self.law == "clean"

    @property
    def is_corruption(self) -> bool:
        """A hidden-corruption law: its distribution needs the prefixes' secret keys."""
        return self.law in CORRUPTION_LAWS

    @property
    def has_mixture_form(self) -> bool:
        """Every row is ``(1 - w) delta(clean) + w U`` (:data:`MIXTURE_FORM_LAWS`): :meth:`mixture_rows` applies."""
        return self.law in MIXTURE_FORM_LAWS

    def keys(self, task: Any, obs: Any) -> Any:
        """The secret keys of single prefixes (N, L) -> (N,) (corruption laws; None otherwise)."""
        return prefix_keys(task, obs, self.corruption_seed) if self.is_corruption else None

    def keys_along(self, task: Any, prompts: Any, chain: Any) -> Any:
        """The secret keys at every prefix of complete chains (N, H) (corruption laws; None otherwise)."""
        return prefix_keys_along(task, prompts, chain, self.corruption_seed) if self.is_corruption else None

    def probs(self, clean: Any, has_error: Any, slip: Any, answer_mask: np.ndarray, key: Any = None) -> Any:
        """pi~(.|s), shape (..., A), from the clean actions (...,), the task's error / slip arrays and
        (corruption laws) the prefixes' keys (:meth:`keys`)."""
        if self.is_clean:
            return noisy_probs("mixture", 0.0, clean, None, None, answer_mask)
        return noisy_probs(self.law, self.eta, clean, has_error, slip, answer_mask, self.kappa, key)

    def mixture_rows(self, clean: Any, has_error: Any, answer_mask: np.ndarray) -> MixtureRows:
        """:meth:`probs`' rows in structured form, from the clean actions (B, H) and (``absorbing``)
        the task's error array, torch on the clean actions' device.

        Raises:
            ValueError: a law without that form (see :attr:`has_mixture_form`).
        """
        import torch

        err = clean if has_error is None else torch.as_tensor(has_error, device=clean.device)
        weight = mixture_weight(self.law, self.eta, err)
        return MixtureRows(clean, weight, torch.as_tensor(answer_mask, device=clean.device).bool())
