"""The queryable expert oracle: the noisy expert pi~ and, for evaluation only, the clean pi*.

An :class:`Expert` answers for any prefix (not only an env's current state):
one observation ``(L,)`` or a batch ``(N, L)``, as numpy arrays or torch tensors
on any device. Every prefix answered counts one query (k for k samples). The
trainers' fast paths :meth:`Expert.probs_along` and :meth:`Expert.sample_along`
answer all H prefixes of complete chains in one call (N * H queries; k N H for k
samples per prefix).

**Access modes** (``access=``, DESIGN §2.6), from most to least: ``"full"`` (default)
answers with probabilities, top-k and samples; ``"topk"`` (with ``top_k=k``) with the k
most likely tokens of each row and their log-probabilities (:meth:`~OracleBase.topk`,
:meth:`~OracleBase.topk_along`; :mod:`noisy_expert_gym.topk`, ties in increasing id) and
samples, as an inference server with ``logprobs=k`` does; ``"sample"`` with sampled tokens
only (:meth:`~Expert.sample`, :meth:`~Expert.sample_along`, :meth:`~Expert.rollout`), as
a teacher behind an API does. A question the mode does not answer raises
:class:`ExpertAccessError`; learners check ``expert.access`` up front. A top-k answer is
counted like a row: one query per prefix. Every mode draws its samples the same way, so
the mode changes what may be asked, not what is answered.

**Per-query logit noise** (``logit_noise=sigma``, DESIGN §2.7;
:mod:`noisy_expert_gym.logit_noise`): every query's answer is read from its own perturbed
row softmax(log pi~ + sigma eps), drawn from the query's generator, on top of any law and
in every access mode. Drawing from the rows (one or k draws per prefix) and the majority
vote of mode-seeking learners: :mod:`noisy_expert_gym.sampling`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from noisy_expert_gym.logit_noise import LogitNoise
from noisy_expert_gym.noise import (
    DEFAULT_CORRUPTION_SEED,
    DEFAULT_KAPPA,
    MIXTURE_FORM_LAWS,
    MixtureRows,
    NoiseLaw,
)
from noisy_expert_gym.sampling import check_num_samples, sample_from, sample_k
from noisy_expert_gym.topk import TopK, check_top_k, topk_of
from noisy_expert_gym.utils import did_you_mean, is_torch

RngLike = np.random.Generator | Callable[[], np.random.Generator] | None

#: How an expert may be queried: ``full`` (probabilities, top-k and samples), ``topk`` (the top-k
#: tokens of each row with their log-probabilities, and samples) or ``sample`` (sampled tokens only).
ACCESS_MODES: tuple[str, ...] = ("full", "sample", "topk")
#: What each mode answers: a mode answers every question a lower one does.
ACCESS_LEVELS: dict[str, int] = {"sample": 0, "topk": 1, "full": 2}


class ExpertAccessError(RuntimeError):
    """A question the expert's access mode does not answer: probabilities from a ``sample`` or ``topk``
    expert, a top-k from a ``sample`` one, or more than its ``top_k`` tokens from a ``topk`` one."""


def check_access(access: str) -> str:
    """Validate an access mode, raising ValueError with the valid values."""
    if access not in ACCESS_MODES:
        raise ValueError(f"unknown `access` {access!r}; valid values: {', '.join(f'`{a}`' for a in ACCESS_MODES)} "
                         f"(`sample`: the expert answers with sampled tokens only; `topk`: with the top_k most "
                         f"likely tokens and their log-probabilities, and samples)."
                         f"{did_you_mean(str(access), ACCESS_MODES)}")
    return access


def access_allows(access: str, needed: str) -> bool:
    """Whether an expert with `access` answers what an expert with access `needed` does."""
    return ACCESS_LEVELS[check_access(access)] >= ACCESS_LEVELS[check_access(needed)]


def check_top_k_applies(access: str, top_k: Any, num_actions: int | None = None) -> int | None:
    """`top_k` validated against the access mode: an integer in [1, num_actions] with ``access="topk"``,
    None otherwise (a ``top_k`` a mode would ignore is refused)."""
    if access == "topk":
        if top_k is None:
            raise ValueError("access='topk' needs `top_k`, the number of tokens each answer holds (e.g. top_k=5, "
                             "as an inference server's logprobs=5)")
        return check_top_k(top_k, num_actions)
    if top_k is not None:
        raise ValueError(f"`top_k` applies to access='topk' only (got access={access!r}, top_k={top_k!r}): set "
                         "access='topk' or leave top_k unset (a full-access expert answers any k: topk(obs, k))")
    return None
class RngOf:
    """The numpy generator an object holds now, read on every call: ``RngOf(env, "np_random")`` follows an
    env's reseeded ``np_random``; ``RngOf(vec, "_rngs", 0)`` sub-env 0's generator.

    A plain object rather than a lambda, so the env whose oracles draw through it pickles, and a deep
    copy of the env draws from its own copy's generator (a lambda is shared by ``deepcopy``, so the copy's
    expert would draw from the original env's generator).
    """

    def __init__(self, owner: Any, attr: str, index: int | None = None) -> None:
        self.owner, self.attr, self.index = owner, attr, index

    def __call__(self) -> np.random.Generator:
        value = getattr(self.owner, self.attr)
        return value if self.index is None else value[self.index]


class OracleBase:
    """Query counting and seeded randomness shared by every expert oracle.

    ``rng`` is a numpy Generator, or a zero-argument callable returning the current
    one (so an env's reseeded ``np_random`` is always used).
    """

    def __init__(self, rng: RngLike = None) -> None:
        self._rng = rng
        self._fallback_rng = np.random.default_rng()
        self._torch_gen: Any = None
        self.num_queries = 0

    #: Validate every token of numpy observations (torch inputs are checked for shape only).
    full_numpy_check = True
    #: ``full``, ``topk`` or ``sample`` (see the module docs).
    access: str = "full"
    #: The tokens per answer of a ``topk`` expert (None for the other modes).
    top_k: int | None = None
    #: The per-query logit noise (off unless an :class:`Expert` is built with ``logit_noise``).
    logit_noise: LogitNoise = LogitNoise()

    def _require_full(self, op: str) -> None:
        """Raise :class:`ExpertAccessError` for a probability query `op` unless access is ``full``."""
        if self.access != "full":
            what = ("sampled tokens only (as a teacher behind an API does). Use `sample(obs)`, "
                    "`sample_along(prompts, chain, k)` or `rollout(prompts)`" if self.access == "sample" else
                    f"the top {self.top_k} tokens of each row and their log-probabilities, and samples (as an "
                    "inference server with logprobs=k does). Use `topk(obs)`, `topk_along(prompts, chain)`, "
                    "`sample(obs)` or `sample_along(prompts, chain, k)`")
            raise ExpertAccessError(
                f"`{op}` is not available: this expert has access={self.access!r} and answers with {what}, or "
                "build the expert with access='full' (e.g. gym.make(..., access='full')) to read probabilities")

    def _topk_k(self, op: str, k: Any) -> int:
        """The k a top-k query `op` answers: `k`, or the expert's own ``top_k`` when None."""
        if self.access == "sample":
            raise ExpertAccessError(
                f"`{op}` is not available: this expert has access='sample' and answers with sampled tokens "
                "only. Use `sample(obs)`, `sample_along(prompts, chain, k)` or `rollout(prompts)`, or build the "
                "expert with access='topk' (and top_k) or access='full'")
        if k is None:
            if self.top_k is None:
                raise ValueError(f"`{op}` needs k (the tokens per answer): this expert has access={self.access!r} "
                                 "and answers any k, pass it (e.g. topk(obs, 5))")
            return self.top_k
        k = check_top_k(k, self.task.num_actions)
        if self.top_k is not None and k > self.top_k:
            raise ExpertAccessError(f"`{op}` with k={k}: this expert has access='topk' and answers the top "
                                    f"{self.top_k} tokens only; ask for k <= {self.top_k}")
        return k

    def topk(self, obs: Any, k: int | None = None, generator: Any = None) -> TopK:
        """The k most likely tokens at each prefix and their log-probabilities: :class:`~noisy_expert_gym.topk.TopK`
        ``(N, k)`` (``(k,)`` for one observation), ties in increasing id. One query per prefix.

        This generic form reads the rows of ``probs`` (full-access oracles); :class:`Expert`
        answers in ``topk`` access too.

        Args:
            obs: prefixes ``(N, L)`` or one ``(L,)``.
            k: tokens per answer; None: the expert's ``top_k`` (access ``topk``).
            generator: where the per-query logit noise is drawn from (:class:`Expert`).

        Raises:
            ExpertAccessError: a sample-only expert, or k above a ``topk`` expert's ``top_k``.
        """
        k = self._topk_k("topk", k)
        return topk_of(self.probs(obs), k)

    def topk_along(self, prompts: Any, chain: Any, k: int | None = None, generator: Any = None) -> TopK:
        """The top-k at every prefix chain[:, :t] of complete chains: :class:`~noisy_expert_gym.topk.TopK`
        ``(N, H, k)``; N H queries, as :meth:`probs_along`. (This generic form reads its rows.)"""
        k = self._topk_k("topk_along", k)
        return topk_of(self.probs_along(prompts, chain), k)

    def sample_along(self, prompts: Any, chain: Any, k: int = 1, generator: Any = None) -> Any:
        """k samples at every prefix chain[:, :t], t = 0..H-1, of complete chains: (N, H, k) int64.

        This generic form samples the rows of :meth:`probs_along` (N H queries) and counts
        k - 1 more per prefix; :class:`Expert` answers in either access mode.
        """
        k = check_num_samples(k)
        probs = self.probs_along(prompts, chain)
        self.num_queries += (k - 1) * chain.shape[0] * chain.shape[1]
        return sample_k(probs, k, generator or self._gen_for(probs))

    def _gen_for(self, x: Any) -> Any:
        return self.torch_generator(x.device) if is_torch(x) else self.rng

    def reset_queries(self) -> None:
        """Reset the query counter to zero."""
        self.num_queries = 0

    def with_rng(self, rng: RngLike) -> Any:
        """A view of this oracle drawing from `rng`, with its own query counter.

        The task core and any heavy state (an LM teacher's weights) are shared, not
        copied: this is how one problem's experts serve an env (its ``np_random``),
        a trainer and a harness at once.
        """
        view = copy.copy(self)
        view._rng, view._torch_gen, view.num_queries = rng, None, 0
        view._fallback_rng = np.random.default_rng()
        return view

    @property
    def rng(self) -> np.random.Generator:
        r = self._rng() if callable(self._rng) else self._rng
        return r if r is not None else self._fallback_rng

    def torch_generator(self, device: Any) -> Any:
        """A torch.Generator on `device`, seeded once from the numpy RNG (reproducible)."""
        import torch

        dev = torch.device(device)
        if self._torch_gen is None or self._torch_gen.device != dev:
            self._torch_gen = torch.Generator(device=dev)
            self._torch_gen.manual_seed(int(self.rng.integers(2**62)))
        return self._torch_gen


    def _batch(self, obs: Any) -> tuple[Any, bool]:
        if not is_torch(obs):
            obs = np.asarray(obs)
            if not np.issubdtype(obs.dtype, np.integer):
                raise ValueError(f"observations must be integer token ids, got dtype {obs.dtype}")
        single = obs.ndim == 1
        if single:
            obs = obs[None]
        if is_torch(obs) or not self.full_numpy_check:
            # Shape only: a full check would synchronise the device on every query.
            if obs.ndim != 2 or obs.shape[1] != self.task.obs_len:
                self.task.validate_obs(obs)
        else:
            self.task.validate_obs(obs)
        t = self.task.step_index(obs)
        if bool((t >= self.task.horizon).any()):
            raise ValueError("an observation holds a complete chain: there is no next action to query")
        return obs, single

    def _check_prompts(self, prompts: Any, chain: Any = None) -> None:
        """Raise a ValueError unless prompts (N, P) (and complete chains (N, H)) are well formed."""
        task = self.task
        n = prompts.shape[0] if prompts.ndim == 2 else -1
        want_chain = chain is None or (chain.ndim == 2 and tuple(chain.shape) == (n, task.horizon))
        if prompts.ndim != 2 or prompts.shape[1] != task.prompt_len or not want_chain:
            got = "" if chain is None else f" and chains {tuple(chain.shape)}"
            raise ValueError(
                f"expected prompts of shape (N, {task.prompt_len})"
                + ("" if chain is None else f" and complete chains (N, {task.horizon})")
                + f"; got prompts {tuple(prompts.shape)}{got}"
            )
        if is_torch(prompts):
            return  # shapes only: a full check would synchronise the device on every query
        if chain is not None and chain.size and (chain.min() < 0 or chain.max() >= task.num_actions):
            raise ValueError(f"chain tokens must lie in [0, {task.num_actions - 1}], "
                             f"got [{chain.min()}, {chain.max()}]")
        task.validate_obs(task.observe(prompts, prompts[:, :0]))



class LogitsOracle(OracleBase):
    """An oracle whose answers come from a model's next-token logits at temperature ``t``
    (greedy when ``is_clean``): a Hugging Face LM teacher or a trained policy.

    Subclasses set ``t`` and ``is_clean`` and implement ``_probs(obs) -> (N, A)`` (a torch
    tensor on the model's device, from :meth:`_dist`); ``probs`` and ``log_prob`` are shared.
    """

    t: float
    is_clean: bool

    def _probs(self, obs: Any) -> Any:
        raise NotImplementedError

    def _dist(self, logits: Any) -> Any:
        """softmax(logits / t), or the one-hot argmax for the greedy (clean) teacher; float32."""
        import torch

        logits = logits.float()
        if self.is_clean:
            return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).float()
        return torch.softmax(logits / self.t, dim=-1)

    @staticmethod
    def _out(x: Any, like: Any) -> Any:
        """A model-device result back to the caller's kind: torch on its device, or numpy
        (float64 for probabilities, int64 for tokens)."""
        if is_torch(like):
            return x.to(like.device)
        return x.detach().cpu().double().numpy() if x.is_floating_point() else x.cpu().numpy()

    def probs(self, obs: Any) -> Any:
        """Next-token distribution at each prefix: (N, A) (or (A,) for one observation)."""
        obs, single = self._batch(obs)
        self.num_queries += obs.shape[0]
        out = self._out(self._probs(obs), obs)
        return out[0] if single else out

    def log_prob(self, obs: Any, actions: Any) -> Any:
        """log pi(a|s) for a batch of prefixes and actions, (N,).

        Raises:
            ValueError: a number of actions other than of observations, or one outside [0, A).
        """
        import torch

        obs, single = self._batch(obs)
        self.num_queries += obs.shape[0]
        probs = self._probs(obs)
        a = torch.as_tensor(actions if is_torch(actions) else np.asarray(actions), device=probs.device)
        a = a.long().reshape(-1)
        if a.shape[0] != probs.shape[0]:
            raise ValueError(f"got {a.shape[0]} actions for {probs.shape[0]} observations")
        if bool((a < 0).any()) or bool((a >= probs.shape[1]).any()):
            raise ValueError(f"actions must lie in [0, {probs.shape[1] - 1}]")
        out = self._out(torch.log(probs.gather(1, a[:, None])[:, 0]), obs)
        return out[0] if single else out


class Expert(OracleBase):
    """A queryable expert over a deterministic-clean-expert task core.

    Args:
        task: the task core (e.g. :class:`~noisy_expert_gym.tasks.ModAddTask`).
        law: noise law (`absorbing`, `mixture`, `biased`); ignored when ``clean``.
        eta: noise level in [0, 1]; ignored when ``clean``.
        rng: numpy Generator (or a zero-argument callable returning the current
            one, so an env's reseeded ``np_random`` is always used) for
            :meth:`sample` on numpy inputs.
        clean: answer with the clean expert pi* instead. The clean expert is
            for evaluation and reference ceilings (`bc-clean`) only; leaderboard
            submissions never see it.
        kappa: the corruption's concentration in [0, 1] (laws `corrupted`,
            `corrupted-absorbing`; 0 near-uniform, 1 one wrong token per state).
        corruption_seed: the secret seed of the corruption's wrong tokens
            (corruption laws only).
        access: ``"full"`` (default), ``"topk"`` (the ``top_k`` most likely tokens and their
            log-probabilities, and samples: ``probs``, ``probs_along``, ``log_prob`` raise
            :class:`ExpertAccessError`) or ``"sample"`` (sampled tokens only).
        top_k: the tokens per answer with ``access="topk"``, in [1, A] (None otherwise).
        logit_noise: the scale sigma >= 0 of the per-query logit noise (0, the default: off;
            :mod:`noisy_expert_gym.logit_noise`).
        logit_noise_dist: its distribution, ``gaussian`` (default) or ``gumbel``.

    Raises:
        ValueError: an invalid law parameter, access mode, ``top_k`` or logit noise (with the valid values).
    """

    def __init__(self, task: Any, law: str = "absorbing", eta: float = 0.0, rng: RngLike = None,
                 clean: bool = False, *, kappa: float = DEFAULT_KAPPA,
                 corruption_seed: int = DEFAULT_CORRUPTION_SEED, access: str = "full", top_k: int | None = None,
                 logit_noise: float = 0.0, logit_noise_dist: str = "gaussian") -> None:
        self.task = task
        # validated here, once
        self.noise = NoiseLaw.clean() if clean else NoiseLaw(law, eta, kappa, corruption_seed)
        self.access = check_access(access)
        self.top_k = check_top_k_applies(access, top_k, task.num_actions)
        self.logit_noise = LogitNoise(logit_noise, logit_noise_dist)
        if clean and self.logit_noise.on:
            raise ValueError("the clean expert pi* has no logit noise (it is the referee); give `logit_noise` to "
                             "the noisy expert")
        if self.noise.is_corruption and int(np.asarray(task.answer_mask).sum()) < 2:
            raise ValueError(f"law `{law}` draws wrong answer tokens: the task needs at least 2 answer tokens")
        super().__init__(rng)

    @property
    def law(self) -> str:
        """The noise law's name (``clean`` for the clean expert)."""
        return self.noise.law

    @property
    def eta(self) -> float:
        """The noise level (0 for the clean expert)."""
        return self.noise.eta

    @property
    def is_clean(self) -> bool:
        return self.noise.is_clean

    @property
    def kappa(self) -> float:
        """The corruption's concentration (corruption laws; the default otherwise)."""
        return self.noise.kappa

    def __repr__(self) -> str:
        extra = "" if not self.noise.is_corruption else f", kappa={self.kappa}"
        extra += "" if self.access == "full" else f", access={self.access!r}"
        extra += "" if self.top_k is None else f", top_k={self.top_k}"
        if self.logit_noise.on:
            extra += f", logit_noise={self.logit_noise.sigma}"
            extra += "" if self.logit_noise.dist == "gaussian" else f", logit_noise_dist={self.logit_noise.dist!r}"
        return f"Expert(task={self.task}, law={self.law!r}, eta={self.eta}{extra})"

    # ----- single prefixes -----------------------------------------------------
    def _probs(self, obs: Any) -> Any:
        """The law's rows pi~(.|s) at prefixes (N, L): (N, A), before any logit noise."""
        task = self.task
        if self.is_clean:
            return self.noise.probs(task.clean_actions(obs), None, None, task.answer_mask)
        return self.noise.probs(task.clean_actions(obs), task.has_error(obs), task.slip_actions(obs),
                                task.answer_mask, self.noise.keys(task, obs))

    def _answer(self, probs: Any, generator: Any) -> Any:
        """What one query per row answers from: the law's rows, each perturbed by its own logit noise
        (drawn from `generator`, or the oracle's; nothing is drawn when the noise is off)."""
        if not self.logit_noise.on:
            return probs
        return self.logit_noise.perturb(probs, generator or self._gen_for(probs))

    def answer_rows(self, obs: Any, generator: Any = None) -> Any:
        """The rows the queries at prefixes `obs` are answered from, whatever the access mode: (N, A).

        For the code that serves this expert (:mod:`noisy_expert_gym.serve`), which then reveals
        only what its access mode answers; a learner asks :meth:`probs`, :meth:`topk` or
        :meth:`sample`. Counts N queries.
        """
        obs, single = self._batch(obs)
        self.num_queries += obs.shape[0]
        out = self._answer(self._probs(obs), generator)
        return out[0] if single else out

    def probs(self, obs: Any, generator: Any = None) -> Any:
        """Next-action distribution at each prefix: (N, A) (or (A,) for one observation); with logit
        noise, each row perturbed by its own noise drawn from `generator` (or the oracle's).

        Raises:
            ExpertAccessError: with ``access="sample"`` or ``"topk"``.
        """
        self._require_full("probs")
        return self.answer_rows(obs, generator)

    def topk(self, obs: Any, k: int | None = None, generator: Any = None) -> TopK:
        """The k most likely tokens at each prefix and their log-probabilities: :class:`TopK` ``(N, k)``
        (``(k,)`` for one observation), ties in increasing id; one query per prefix.

        Args:
            obs: prefixes ``(N, L)`` or one ``(L,)``.
            k: tokens per answer; None: the expert's ``top_k`` (access ``topk``).
            generator: the per-query logit noise's generator (None: the oracle's).

        Raises:
            ExpertAccessError: with ``access="sample"``, or k above a ``topk`` expert's ``top_k``.
        """
        k = self._topk_k("topk", k)
        return topk_of(self.answer_rows(obs, generator), k)

    def log_prob(self, obs: Any, actions: Any, generator: Any = None) -> Any:
        """log pi(a|s) for a batch of prefixes and actions, (N,).

        Raises:
            ExpertAccessError: with ``access="sample"`` or ``"topk"``.
        """
        self._require_full("log_prob")
        obs, single = self._batch(obs)
        self.num_queries += obs.shape[0]
        probs = self._answer(self._probs(obs), generator)
        if is_torch(probs):
            import torch

            a = torch.as_tensor(actions, device=probs.device).long().reshape(-1)
            return probs.gather(1, a[:, None])[:, 0].log()[0 if single else slice(None)]
        a = np.asarray(actions).reshape(-1)
        if a.shape[0] != probs.shape[0]:
            raise ValueError(f"got {a.shape[0]} actions for {probs.shape[0]} observations")
        if a.min() < 0 or a.max() >= probs.shape[1]:
            raise ValueError(f"actions must lie in [0, {probs.shape[1] - 1}]")
        with np.errstate(divide="ignore"):
            out = np.log(probs[np.arange(len(a)), a])
        return out[0] if single else out

    def sample(self, obs: Any, generator: Any = None) -> Any:
        """Sample actions from the expert at each prefix, (N,) (a scalar for one observation).

        numpy inputs draw from the seeded numpy RNG (the env's ``np_random``);
        torch inputs draw from ``generator`` or one seeded from it. With logit noise the
        token is drawn from the query's perturbed row (the noise first, then the draw).
        """
        obs, single = self._batch(obs)
        self.num_queries += obs.shape[0]
        gen = generator or self._gen_for(obs)
        out = sample_from(self._answer(self._probs(obs), gen), gen)
        return out[0] if single else out

    # ----- every prefix of complete chains (trainers) --------------------------
    def _probs_along(self, prompts: Any, chain: Any) -> Any:
        """The law's rows at every prefix of complete chains, (N, H, A), before any logit noise."""
        task = self.task
        clean = task.clean_along(prompts, chain)
        if self.is_clean:
            return self.noise.probs(clean, None, None, task.answer_mask)
        return self.noise.probs(clean, task.error_along(prompts, chain), task.slip_along(prompts, chain),
                                task.answer_mask, self.noise.keys_along(task, prompts, chain))

    def probs_along(self, prompts: Any, chain: Any, generator: Any = None) -> Any:
        """The expert's distribution at every prefix chain[:, :t] of complete chains: (N, H, A); with
        logit noise, each row perturbed by its own noise drawn from `generator` (or the oracle's).

        Raises:
            ExpertAccessError: with ``access="sample"`` or ``"topk"`` (use :meth:`sample_along`,
                :meth:`topk_along`).
        """
        self._require_full("probs_along")
        self._check_prompts(prompts, chain)
        self.num_queries += chain.shape[0] * chain.shape[1]
        return self._answer(self._probs_along(prompts, chain), generator)

    def topk_along(self, prompts: Any, chain: Any, k: int | None = None, generator: Any = None) -> TopK:
        """The top-k at every prefix chain[:, :t] of complete chains: :class:`TopK` ``(N, H, k)``, ties in
        increasing id; N H queries, as :meth:`probs_along`.

        Args:
            prompts: (N, P) prompts.
            chain: (N, H) complete chains.
            k: tokens per answer; None: the expert's ``top_k`` (access ``topk``).
            generator: the per-query logit noise's generator (None: the oracle's).

        Raises:
            ExpertAccessError: with ``access="sample"``, or k above a ``topk`` expert's ``top_k``.
        """
        k = self._topk_k("topk_along", k)
        self._check_prompts(prompts, chain)
        self.num_queries += chain.shape[0] * chain.shape[1]
        return topk_of(self._answer(self._probs_along(prompts, chain), generator), k)

    @property
    def has_structured_rows(self) -> bool:
        """:meth:`structured_along` answers: full access, no logit noise and a law whose rows are
        ``(1 - w) delta(clean) + w U`` (``mixture``, ``absorbing``, the clean expert)."""
        return self.access == "full" and self.noise.has_mixture_form and not self.logit_noise.on

    def structured_along(self, prompts: Any, chain: Any) -> MixtureRows:
        """:meth:`probs_along`'s rows in structured form (torch): a clean token and U's weight per prefix.

        The same B x H queries are counted; the rows are equal to the dense ones
        (:meth:`MixtureRows.dense <noisy_expert_gym.noise.MixtureRows.dense>`), without the
        ``(N, H, A)`` array a large vocabulary cannot afford.

        Args:
            prompts: (N, P) prompts, a torch tensor.
            chain: (N, H) complete chains, on the same device.

        Raises:
            ExpertAccessError: with ``access="sample"`` or ``"topk"``.
            ValueError: a law without the structured form or logit noise (see
                :attr:`has_structured_rows`), or prompts and chains of the wrong shape.
        """
        self._require_full("structured_along")
        if not self.noise.has_mixture_form or self.logit_noise.on:
            raise ValueError(f"the expert {self!r} has no structured form: its law must be one of "
                             f"{', '.join(MIXTURE_FORM_LAWS)}, without logit noise; use probs_along (the dense rows)")
        if not is_torch(chain):
            raise ValueError("structured_along answers torch tensors; pass prompts and chains as torch tensors "
                             "(or use probs_along, which answers numpy too)")
        self._check_prompts(prompts, chain)
        self.num_queries += chain.shape[0] * chain.shape[1]
        task = self.task
        clean = torch_long(task.clean_along(prompts, chain), chain.device)
        err = task.error_along(prompts, chain) if self.noise.law == "absorbing" else None
        return self.noise.mixture_rows(clean, err, task.answer_mask)

    def sample_along(self, prompts: Any, chain: Any, k: int = 1, generator: Any = None) -> Any:
        """k independent samples of the expert at every prefix chain[:, :t], t = 0..H-1: (N, H, k) int64.

        The shape is (N, H, k) for every k (``[..., 0]`` for one label per prefix). Counts
        k queries per prefix (k N H). Allowed in every access mode: the draws are those of
        sampling the rows of :meth:`probs_along` (with k = 1 and the same generator state,
        draw for draw the same as ``sample_categorical(probs_along(prompts, chain, gen), gen)``).
        With logit noise each of the k samples is drawn from its own perturbed row (k queries).

        Args:
            prompts: (N, P) prompts.
            chain: (N, H) complete chains (the student's, the expert's, any).
            k: samples per prefix, >= 1.
            generator: numpy Generator for numpy inputs, torch.Generator on the chain's
                device for torch inputs; None: the expert's seeded RNG (the env's
                ``np_random``) or a torch generator seeded from it.
        """
        k = check_num_samples(k)
        self._check_prompts(prompts, chain)
        self.num_queries += k * chain.shape[0] * chain.shape[1]
        probs = self._probs_along(prompts, chain)
        gen = generator or self._gen_for(probs)
        if self.logit_noise.on:
            return sample_from(self.logit_noise.perturb(probs, gen, draws=k), gen)  # (N, H, k)
        return sample_k(probs, k, gen)

    def rollout(self, prompts: Any, generator: Any = None) -> Any:
        """The expert's own rollouts from `prompts` (its tokens fed back): chains (N, H).

        Costs N * H queries. This is how offline "noisy expert trajectories" are made.
        """
        task = self.task
        self._check_prompts(prompts)
        n = prompts.shape[0]
        gen = generator or self._gen_for(prompts)
        if is_torch(prompts):
            import torch

            chain = torch.empty((n, 0), dtype=torch.long, device=prompts.device)
            cat = lambda a, b: torch.cat([a, b[:, None]], dim=1)
        else:
            chain = np.empty((n, 0), dtype=np.int64)
            cat = lambda a, b: np.concatenate([a, b[:, None]], axis=1)
        for _ in range(task.horizon):
            obs = task.observe(prompts, chain)
            self.num_queries += n
            chain = cat(chain, sample_from(self._answer(self._probs(obs), gen), gen))
        return chain


def torch_long(x: Any, device: Any) -> Any:
    """`x` (a task function's answer, numpy or torch) as a long torch tensor on `device`."""
    import torch

    return torch.as_tensor(x, device=device).long()
