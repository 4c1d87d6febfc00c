"""The problem object: a task core with its noisy and clean experts, built once.

A **problem** (docs/design.md §5) is what every consumer of an MDP needs: the pure batched
task core, the noisy expert pi~ the learner may query and the clean expert pi*
that judges it. It is built once per process and handed to whoever needs it -- the
Gymnasium envs, the trainer, the scoreboard harness, the bridges -- so a language
model teacher is loaded once and the noise law is validated once::

    from noisy_expert_gym import make_problem
    problem = make_problem("NoisyModAdd-v0", eta=0.2)
    problem.task, problem.expert, problem.clean_expert
    env = problem.make_env()                    # = gym.make("NoisyModAdd-v0", problem=problem)

The table :data:`ENV_IDS` lists every registered id with the keyword arguments that
define its variant; each id belongs to a task family whose keyword arguments are a
declared model (:class:`~noisy_expert_gym.tasks.modadd.ModAddKwargs`,
:class:`~noisy_expert_gym.tasks.automaton.AutomatonKwargs`,
:class:`~noisy_expert_gym.tasks.gsm8k.kwargs.GSM8KKwargs`): their names, defaults and
checks, every problem refused at once. Keyword arguments that only shape the env
(``reward``, ``render_mode``) are kept in :attr:`Problem.env_options` and passed on
by :meth:`Problem.make_env`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from noisy_expert_gym.contracts import Oracle, TaskCore
from noisy_expert_gym.declarations import Declared
from noisy_expert_gym.tasks import automaton, modadd, per_step
from noisy_expert_gym.tasks.gsm8k import kwargs as gsm8k_kwargs
from noisy_expert_gym.tasks.gsm8k import problem as gsm8k_problem
from noisy_expert_gym.utils import FrozenMap, did_you_mean


@dataclass(frozen=True)
class Problem:
    """A task core with its noisy expert pi~ and clean expert pi* (docs/design.md §2, §5).

    Attributes:
        env_id: the registered env id whose MDP this is.
        kwargs: the keyword arguments that define the MDP and the noise, complete
            (the family's defaults filled in).
        task: the pure batched task core (:class:`~noisy_expert_gym.contracts.TaskCore`).
        expert: the noisy expert pi~ (:class:`~noisy_expert_gym.contracts.Oracle`):
            what a learner may query.
        clean_expert: the clean expert pi*: evaluation and reference ceilings
            (`bc-clean`) only; leaderboard submissions never see it.
        env_options: env-only keyword arguments given to :func:`make_problem`
            (``reward``, ``render_mode``), passed on by :meth:`make_env`.
    """

    env_id: str
    kwargs: Mapping[str, Any]
    task: TaskCore
    expert: Oracle
    clean_expert: Oracle
    env_options: Mapping[str, Any] = field(default_factory=dict)

    def with_rng(self, rng: Any) -> Problem:
        """The same problem with oracle views that draw from `rng` (fresh query counters).

        ``rng`` is a numpy Generator or a zero-argument callable returning the current
        one (an env passes ``lambda: self.np_random``). The task core and any heavy
        teacher state are shared.
        """
        return dataclasses.replace(self, expert=self.expert.with_rng(rng),
                                   clean_expert=self.clean_expert.with_rng(rng))

    def with_experts(self, expert: Oracle, clean_expert: Oracle) -> Problem:
        """The same task with other oracles (the harness's counting client, a refusing stub)."""
        return dataclasses.replace(self, expert=expert, clean_expert=clean_expert)

    def make_env(self, **env_options: Any) -> Any:
        """A Gymnasium env over this problem (``gym.make(env_id, problem=self, ...)``)."""
        import gymnasium as gym

        return gym.make(self.env_id, problem=self, **{**self.env_options, **env_options})

    def make_vec(self, num_envs: int, **env_options: Any) -> Any:
        """The native vector env over this problem (``gym.make_vec``)."""
        import gymnasium as gym

        return gym.make_vec(self.env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                            problem=self, **{**self.env_options, **env_options})


Builder = Callable[[Any], tuple[Any, Any, Any]]


@dataclass(frozen=True)
class Family:
    """A task family: its declared keyword arguments, how its problems are built and which envs serve them.

    ``build(kwargs) -> (task, expert, clean_expert)`` takes the validated ``kwargs`` model.
    """

    name: str
    kwargs: type[Declared]
    build: Builder
    entry_point: str
    vector_entry_point: str | None = None
    env_options: tuple[str, ...] = ("render_mode",)

    @property
    def defaults(self) -> dict[str, Any]:
        """The problem keyword arguments and their defaults, read from the declaration."""
        fields = self.kwargs.model_fields
        return {k: fields[k].get_default(call_default_factory=True) for k in self.kwargs.field_names()}


FAMILIES: dict[str, Family] = {
    "modadd": Family("modadd", modadd.ModAddKwargs, modadd.build_problem,
                     "noisy_expert_gym.envs.modadd:NoisyModAddEnv",
                     "noisy_expert_gym.envs.modadd_vector:NoisyModAddVectorEnv",
                     env_options=("reward", "render_mode")),
    "automaton": Family("automaton", automaton.AutomatonKwargs, automaton.build_problem,
                        "noisy_expert_gym.envs.automaton:NoisyAutomatonEnv",
                        "noisy_expert_gym.envs.automaton_vector:NoisyAutomatonVectorEnv",
                        env_options=("reward", "render_mode")),
    "per_step": Family("per_step", per_step.PerStepKwargs, per_step.build_problem,
                       "noisy_expert_gym.envs.per_step:NoisyPerStepAutomatonEnv",
                       "noisy_expert_gym.envs.per_step_vector:NoisyPerStepAutomatonVectorEnv",
                       env_options=("reward", "render_mode")),
    "gsm8k": Family("gsm8k", gsm8k_kwargs.GSM8KKwargs, gsm8k_problem.build_problem,
                    "noisy_expert_gym.envs.gsm8k:NoisyGSM8KEnv"),
}

#: Every registered env id: its family and the kwargs that define the variant.
#: NoisyGSM8K-v* need the GSM-8K data (``data_dir=``, ``$NEG_GSM8K_DIR`` or `datasets`).
REGISTRY: dict[str, tuple[str, dict[str, Any]]] = {
    "NoisyModAdd-v0": ("modadd", {}),
    # The paper's horizon ablation (m = 31 is the default id above).
    **{f"NoisyModAdd-m{m}-v0": ("modadd", {"m": m}) for m in (3, 9, 15, 23)},
    "NoisyModAddMixture-v0": ("modadd", {"law": "mixture"}),
    # eta > 1/2 breaks the mode condition: the stress case for horizon-free claims.
    "NoisyModAddBiased-v0": ("modadd", {"law": "biased", "eta": 0.6}),
    # State tracking (docs/design.md §3). The family's defaults (m = 31, eta = 0.1, absorbing) are
    # NoisyModAdd-v0's, so the ids differ from it only in the rule. NoisyAutomaton-v0: a random
    # permutation automaton with n = k = 7 (automaton_seed 0) -- modadd's vocabulary and sizes,
    # and under `absorbing` / `mixture` exactly its noise statistics (theory), with a
    # non-abelian rule nobody can know in advance (its symbols generate a group far larger
    # than Z_7 acting on the 7 states).
    "NoisyAutomaton-v0": ("automaton", {}),
    # A general DFA: symbols may merge states, so a slip can heal (the pair chain of theory).
    "NoisyDFA-v0": ("automaton", {"kind": "dfa"}),
    # The word problem of S5 over all 120 elements (n = k = 120): the hard state-tracking task.
    "NoisyS5-v0": ("automaton", {"automaton": "s5"}),
    # Per-step rules (docs/design.md §3.4): position t uses rule block t mod P, P = m by default (a
    # new rule at every step: where the offline lower bound lives). The family's defaults (n = 3,
    # k = 2, m = 5, absorbing eta = 0.5) are the main job's largest horizon (`make quick`).
    "NoisyPerStepAutomaton-v0": ("per_step", {}),
    # The modadd-like member: Z_p (p = n = 3) renamed per block; P = 1 is NoisyModAdd.
    "NoisyPerStepModAdd-v0": ("per_step", {"automaton": "modadd"}),
    # v1: an HF tokenizer stops at every end-of-turn token of its chat template; v0 kept with its
    # EOS-only stop (identical with the built-in tokenizers).
    "NoisyGSM8K-v1": ("gsm8k", {}),
    "NoisyGSM8K-v0": ("gsm8k", {"stop_on": "eos"}),
}
#: Every env id this package registers, with the kwargs that define the variant.
ENV_IDS: dict[str, dict[str, Any]] = {k: dict(kw) for k, (_, kw) in REGISTRY.items()}


def family_of(env_id: str) -> Family:
    """The task family of a registered id; unknown ids raise with a suggestion."""
    if env_id not in REGISTRY:
        raise ValueError(f"unknown env id `{env_id}`; noisy-expert envs: {', '.join(REGISTRY)}."
                         f"{did_you_mean(env_id, REGISTRY)}")
    return FAMILIES[REGISTRY[env_id][0]]


def split_kwargs(env_id: str, kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(problem kwargs with the variant's and the family's defaults, env-only options).

    Raises:
        ValueError: an unknown keyword argument (with the valid names and a suggestion).
    """
    fam = family_of(env_id)
    defaults = fam.defaults
    problem: dict[str, Any] = {**defaults, **REGISTRY[env_id][1]}
    options: dict[str, Any] = {}
    for k, v in kwargs.items():
        if k in defaults:
            problem[k] = v
        elif k in fam.env_options:
            options[k] = v
        else:
            valid = [*defaults, *fam.env_options]
            raise ValueError(f"`{env_id}` has no keyword argument `{k}`; valid: {', '.join(valid)}."
                             f"{did_you_mean(k, valid)}")
    return problem, options


_CACHE: dict[Any, Problem] = {}
_CACHE_SIZE = 8


def _cache_key(env_id: str, kwargs: dict[str, Any]) -> Any:
    try:
        key = (env_id, tuple(sorted(kwargs.items())))
        hash(key)
        return key
    except TypeError:  # an explicit problem list or tokenizer object: build afresh
        return None


def make_problem(env_id: str, **kwargs: Any) -> Problem:
    """Build (or reuse) the problem of a registered env id.

    Args:
        env_id: a registered id (:data:`ENV_IDS`), e.g. ``"NoisyModAdd-v0"``.
        **kwargs: the env's keyword arguments (``eta``, ``m``, ``law``, ...); env-only
            options (``reward``, ``render_mode``) are kept for :meth:`Problem.make_env`.

    Returns:
        The problem. Its oracles are fresh views (own RNG and query counter) over a
        task and teacher built once per process for the same arguments.

    Raises:
        ValueError: an unknown id or keyword argument, or invalid values (the family's
            declaration lists every one and how to fix it).
    """
    problem_kw, options = split_kwargs(env_id, kwargs)
    key = _cache_key(env_id, problem_kw)
    cached = _CACHE.get(key) if key is not None else None
    if cached is None:
        fam = family_of(env_id)
        task, expert, clean = fam.build(fam.kwargs.check(problem_kw))  # every problem with the kwargs at once
        cached = Problem(env_id, FrozenMap(dict(problem_kw)), task, expert, clean)
        if key is not None:
            if len(_CACHE) >= _CACHE_SIZE:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = cached
    return dataclasses.replace(cached.with_rng(None), env_options=FrozenMap(options))


def env_problem(env_id: str, problem: Problem | None, kwargs: dict[str, Any]) -> Problem:
    """The problem an env constructor serves: the given one, or one built from its kwargs.

    Raises:
        ValueError: ``problem`` given together with kwargs that contradict it.
    """
    if problem is None:
        return make_problem(env_id, **kwargs)
    if not isinstance(problem, Problem):
        raise TypeError(f"`problem` must be a noisy_expert_gym.Problem (from make_problem), got "
                        f"{type(problem).__name__}")
    family_of(env_id)  # known id
    clash = {k: v for k, v in kwargs.items() if problem.kwargs.get(k, v) != v or k not in problem.kwargs}
    if clash:
        raise ValueError(f"pass either `problem=` or the problem's keyword arguments, not both: {clash} "
                         f"disagree with the problem's {dict(problem.kwargs)}")
    return problem


def problem_attribute(name: str, read: Callable[[Any], Any]) -> property:
    """An env attribute read from its problem (stored once); setting another value raises.

    Changing ``eta`` on a built env would leave its oracle unchanged, so it is refused.
    """
    def fset(self: Any, value: Any) -> None:
        if value != read(self):
            raise AttributeError(f"`{name}` is fixed by the env's problem ({read(self)!r}); build a new env "
                                 f"(gym.make(..., {name}={value!r})) to change it")

    return property(read, fset, doc=f"The problem's `{name}` (read-only).")


__all__ = ["ENV_IDS", "FAMILIES", "REGISTRY", "Family", "Problem", "env_problem", "family_of",
           "make_problem", "problem_attribute", "split_kwargs"]
