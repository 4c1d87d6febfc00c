"""The algorithms' contract: :class:`Batch`, :class:`Context`, :class:`RunKit`, the :class:`Algorithm` record.

Every algorithm is a short file that imports this module (and the pure losses),
never the trainer or the shared plumbing: the trainer imports the algorithms and
hands them what they use (:class:`Context` in the shared loop; :class:`RunKit` to
an algorithm that runs its own). An algorithm declares

- ``params``: a :class:`~noisy_expert_gym.declarations.Declared` model of its
  hyperparameters (types, defaults, constraints, one-line docstrings), which
  produces their validation, their error messages and ``neg train --list``;
- ``collect(ctx, params) -> Batch``: steps 1 and 2 of the shared loop (docs/design.md §4):
  choose the prefixes to learn on (a student rollout, an expert rollout, a
  dataset minibatch) and query the expert there;
- ``loss(logits, batch, params) -> (B, H)``: step 3's per-position loss;
- or ``run(cfg, params, problem, kit) -> RunResult``: a whole run outside that loop (``ppo``).

The registry is a plain dict, :data:`ALGORITHMS` (it lives in :mod:`agents.registry`, below
the training configuration, which checks names and parameters there); :func:`register`
adds to it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from agents.contracts import Policy, StepFn
from agents.device import autocast_context
from agents.registry import ALGORITHMS, algorithm
from noisy_expert_gym.contracts import Oracle, TaskCore
from noisy_expert_gym.declarations import Declared
from noisy_expert_gym.oracle import ExpertAccessError
from noisy_expert_gym.topk import TopK
from noisy_expert_gym.utils import sample_categorical

if TYPE_CHECKING:
    from agents.budget import Budget
    from agents.config import TrainConfig
    from agents.evaluation import HeldOut
    from agents.monitor import Monitor
    from agents.result import RunResult
    from noisy_expert_gym.noise import MixtureRows
    from noisy_expert_gym.problems import Problem


# --------------------------------------------------------------------------- what the loop passes around
@dataclass
class Batch:
    """Prefixes to learn on and the expert's answers there.

    Row t of ``chain`` is the token after prefix ``prompts + chain[:, :t]``; the
    student is evaluated at exactly those prefixes (teacher forcing on the
    visited chain).
    """

    prompts: torch.Tensor  # (B, P)
    chain: torch.Tensor  # (B, H)
    probs: torch.Tensor | MixtureRows | None = None  # (B, H, A) expert distribution at each prefix (dense or structured)
    actions: torch.Tensor | None = None  # (B, H) labels (sampled expert tokens, dataset tokens)
    topk: TopK | None = None  # (B, H, k) the expert's top-k ids and log-probabilities at each prefix
    trajectories: int = 0  # expert trajectories this batch spends
    queries: int | None = None  # prefix-queries it spends (None: counted by the oracles)
    gen: torch.Generator | None = None  # for losses that sample (score-function estimators)


@dataclass
class Context:
    """What an algorithm's ``collect`` / ``setup`` may use."""

    cfg: TrainConfig
    task: TaskCore
    expert: Oracle
    clean_expert: Oracle
    policy: Policy  # the raw module (generation never needs DDP)
    device: torch.device
    gen: torch.Generator  # all randomness after the model init (checkpointed)
    budget: Budget
    world_size: int = 1
    rank: int = 0
    batch_size: int = 256  # trajectories this rank collects in the current update
    update: int = 0
    state: dict[str, Any] = field(default_factory=dict)  # algorithm state (checkpointed)
    epoch_perm: tuple[int, torch.Tensor] | None = None  # prompt_order="epoch": (epoch, its permutation), a cache

    @property
    def trajectories(self) -> int:
        """Expert trajectories spent so far, all ranks."""
        return self.budget.trajectories

    def sample_prompts(self, n: int | None = None) -> torch.Tensor:
        """This rank's next n training prompts (default ``batch_size``): drawn with replacement from the
        run's generator, or with ``cfg.prompt_order = "epoch"`` the next ones of a seeded permutation of
        the task's problems (:func:`epoch_order`)."""
        n = n or self.batch_size
        if self.cfg.prompt_order == "epoch":
            idx = epoch_order(self, n)  # first: it refuses a task without a problem list, with a clear error
            return self.task.prompts_for(idx, like=torch.empty(0, device=self.device))
        return self.task.sample_prompts(self.gen, n, device=self.device)

    def rollout(self, prompts: torch.Tensor, tau: float, step_fn: StepFn | None = None) -> torch.Tensor:
        """The student's rollout at temperature tau (0 = greedy), no gradient."""
        with autocast_context(self.device, self.cfg.precision):
            return self.policy.generate(prompts, self.task.horizon, temperature=tau, generator=self.gen,
                                        step_fn=step_fn)

    def sample(self, probs: torch.Tensor) -> torch.Tensor:
        """One draw per row of ``probs`` (..., A) from the run's generator (e.g. an expert's label)."""
        return sample_categorical(probs, self.gen)

    @property
    def sample_only(self) -> bool:
        """The noisy expert answers with sampled tokens only (``access="sample"``)."""
        return expert_access(self.expert) == "sample"

    @property
    def expert_access(self) -> str:
        """The noisy expert's access mode: ``full``, ``topk`` or ``sample``."""
        return expert_access(self.expert)

    def label_along(self, prompts: torch.Tensor, chain: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """The noisy expert's answer at every prefix of ``chain`` (B, H): (probs (B, H, A) or None, labels (B, H)).

        One sampled expert token per prefix (B H queries), drawn from the run's generator.
        With full access also the rows it was drawn from (``probs_along`` then one draw
        per row, as before sample-only access existed, so seeded runs are unchanged);
        with ``access="sample"`` the token alone (``sample_along(prompts, chain, 1)``),
        and ``probs`` is None. Both draw the same tokens from the same generator state.
        """
        if self.sample_only:
            return None, self.expert.sample_along(prompts, chain, 1, generator=self.gen)[..., 0]
        probs = self.expert.probs_along(prompts, chain, **self.noise_kw)
        return probs, self.sample(probs)

    @property
    def noise_kw(self) -> dict[str, Any]:
        """``generator=self.gen`` for an expert with per-query logit noise: its rows' noise is drawn from the
        run's (checkpointed) generator, so a resumed run reproduces it; nothing for any other oracle
        (whose ``probs_along`` may not take a generator), so those calls are as before."""
        noise = getattr(self.expert, "logit_noise", None)
        return {"generator": self.gen} if noise is not None and noise.on else {}

    def topk_along(self, prompts: torch.Tensor, chain: torch.Tensor, k: int | None) -> TopK:
        """The noisy expert's top-k at every prefix of ``chain`` (B H queries): ``TopK`` (B, H, k) on the run's
        device; k None: the expert's own ``top_k`` (access ``topk``)."""
        t = self.expert.topk_along(prompts, chain, k, generator=self.gen)
        return TopK(torch.as_tensor(t.ids, device=self.device).long(),
                    torch.as_tensor(t.logprobs, device=self.device).float())


@dataclass(frozen=True)
class RunKit:
    """What the trainer hands an algorithm that runs its own loop (``Algorithm.run``: ``ppo``): the
    shared plumbing, written once (:mod:`agents.budget`, :mod:`agents.evaluation`,
    :mod:`agents.monitor`, :mod:`agents.checkpoint`), which the algorithm files do not import."""

    device: torch.device  # the run's device (cfg.device resolved)
    budget: Budget  # the trajectory budget, a hard cap
    held_out: Callable[[], HeldOut]  # builds the run's held-out evaluation (fixed prompts, the metrics)
    monitor: Callable[[int, str], Monitor]  # monitor(total, unit): progress bar, TensorBoard, progress row
    checkpoint: str | None  # where the run saves its model (in cfg.checkpoint_dir), None without one
    save_config: Callable[[str], None]  # save_config(path): the run's TrainConfig as JSON, atomically
    result: Callable[..., RunResult]  # result(**fields): a RunResult with the run's identity filled in


def epoch_permutation(seed: int, epoch: int, m: int) -> torch.Tensor:
    """Epoch `epoch`'s order of `m` problems under ``prompt_order = "epoch"``: a permutation seeded by
    (`seed`, `epoch`), the same for every consumer (the online learners' prompts, BC's dataset)."""
    return torch.randperm(m, generator=torch.Generator().manual_seed(seed * 1_000_003 + 7_919 * epoch + 1))


def epoch_order(ctx: Context, n: int) -> torch.Tensor:
    """The problem indices of this rank's next n prompts under ``prompt_order = "epoch"``.

    Epoch e visits every problem once, in the order of a permutation seeded by
    (``cfg.seed``, e); the ranks take consecutive slices of it. The position is
    ``ctx.state["prompt_order"]`` (checkpointed), so a resumed run continues the same order.

    Raises:
        ValueError: the task has no finite list of problems (``num_problems``, ``prompts_for``).
    """
    task = ctx.task
    if not (hasattr(task, "num_problems") and hasattr(task, "prompts_for")):
        raise ValueError(f"prompt_order='epoch' needs a task with a finite list of problems (num_problems, "
                         f"prompts_for), such as GSM-8K; {type(task).__name__} draws its prompts: use 'iid'")
    m = int(task.num_problems)
    st = ctx.state.setdefault("prompt_order", {"epoch": 0, "pos": 0})
    out: list[torch.Tensor] = []
    need = n * ctx.world_size
    while need > 0:
        if ctx.epoch_perm is None or ctx.epoch_perm[0] != st["epoch"]:
            ctx.epoch_perm = (st["epoch"], epoch_permutation(int(ctx.cfg.seed), int(st["epoch"]), m))
        take = min(need, m - st["pos"])
        out.append(ctx.epoch_perm[1][st["pos"] : st["pos"] + take])
        st["pos"] += take
        need -= take
        if st["pos"] == m:
            st.update(epoch=st["epoch"] + 1, pos=0)
    idx = torch.cat(out)
    return idx[ctx.rank * n : (ctx.rank + 1) * n]


# --------------------------------------------------------------------------- the algorithm record
Collect = Callable[[Context, Any], Batch]
Loss = Callable[[torch.Tensor, Batch, Any], torch.Tensor]


def always(params: Any) -> bool:
    """``needs_probs`` of an algorithm that always reads the expert's probabilities (the default)."""
    return True


def never(params: Any) -> bool:
    """``needs_probs`` of an algorithm that learns from sampled expert tokens only."""
    return False


def one_per_prefix(params: Any, horizon: int) -> int:
    """``queries_per_trajectory`` of an algorithm that queries the expert once per visited prefix
    (the default): H queries per trajectory."""
    return horizon


@dataclass(frozen=True)
class Algorithm:
    """One imitation algorithm over the shared trainer loop.

    Attributes:
        name: registry key.
        summary: one line for ``neg train --list``.
        params: the declared hyperparameters (a :class:`Declared` model; its
            defaults are the algorithm's).
        collect: ``collect(ctx, params) -> Batch``.
        loss: ``loss(logits, batch, params) -> (B, H)`` per-position loss.
        setup: optional ``setup(ctx, params)`` run once before training (e.g. build
            BC's dataset); its state lives in ``ctx.state``.
        uses_clean_expert: reads the clean expert (reference ceilings only; never on
            a leaderboard).
        queries_expert: learns from the noisy expert's answers. False for the
            reinforcement-learning reference (``ppo``), which the boards refuse:
            they measure learning from the expert.
        run: optional ``run(cfg, params, problem, kit) -> RunResult`` for an algorithm that
            does not fit the student-prefix loop (``ppo``); ``agents.train`` hands
            the whole run to it, with the shared plumbing in a :class:`RunKit`.
        needs_probs: ``needs_probs(params) -> bool`` of the *validated* parameters (an
            instance of ``params``): True when the algorithm reads the expert's
            probabilities (``probs_along``, ``log_prob``: exact estimators, reverse KL's
            log pi~, GKD), False when sampled tokens suffice (``sample``,
            ``sample_along``, ``rollout``). Under a sample-only expert
            (``access="sample"``) :func:`check_expert_access` refuses an algorithm whose
            ``needs_probs(params)`` is True before any query; sample-only boards use it
            to refuse such entries. Default :func:`always` (an algorithm that does not
            say it learns from samples is assumed to need probabilities).
        sample_only_hint: what to use instead under a sample-only expert (the refusal
            message's advice), e.g. "use estimator='mc'".
        needs_rows: ``needs_rows(params) -> bool``: True when the algorithm reads more than a
            top-k answer and samples -- whole rows or pi~ at tokens of its choosing (exact
            estimators, reverse KL, GKD) -- so a ``topk`` expert is refused before any query
            too. None (default): the same as ``needs_probs``.
        topk_hint: what to use instead under a ``topk`` expert (the refusal's advice).
        top_k: ``top_k(params) -> int | None``: the k of the algorithm's top-k queries with these
            parameters (its ``top_k`` parameter), None when it asks none or takes the expert's own
            (:func:`check_expert_access` refuses a k above a ``topk`` expert's, and a missing k
            under full access).
        topk_queries: ``topk_queries(params) -> bool``: the algorithm asks top-k queries with
            these parameters (default: never).
        queries_per_trajectory: ``queries_per_trajectory(params, horizon) -> int``, the
            expert prefix-queries one trajectory of ``collect`` costs at most with these
            (validated) parameters. The trainer plans the query budget with it (the run
            affords ``budget_queries // queries_per_trajectory`` trajectories) and refuses a
            batch that spends more. Default :func:`one_per_prefix` (H); `nail-mode` with k
            samples per prefix declares k H.
        unused: the :class:`~agents.config.TrainConfig` fields this algorithm does not read, with
            why (``unused_reason``): the configuration refuses a value other than the default for
            any of them, so no option is accepted and ignored.
        reads: ``reads(algo_params) -> frozenset`` of the raw ``algo_params`` dict: the fields of
            ``unused`` that these parameters make the algorithm read after all (BC reads
            ``expert_form`` with ``labels='probs'``). Default: none.
    """

    name: str
    summary: str
    params: type[Declared]
    collect: Collect
    loss: Loss
    setup: Callable[[Context, Any], None] | None = None
    uses_clean_expert: bool = False
    queries_expert: bool = True
    run: Callable[[TrainConfig, Any, Problem, RunKit], RunResult] | None = None
    needs_probs: Callable[[Any], bool] = always
    sample_only_hint: str = ""
    queries_per_trajectory: Callable[[Any, int], int] = one_per_prefix
    needs_rows: Callable[[Any], bool] | None = None
    topk_hint: str = ""
    top_k: Callable[[Any], int | None] = lambda params: None
    topk_queries: Callable[[Any], bool] = never
    unused: frozenset[str] = frozenset()
    unused_reason: str = ""
    reads: Callable[[dict[str, Any]], frozenset[str]] = lambda algo_params: frozenset()

    @property
    def defaults(self) -> dict[str, Any]:
        """The hyperparameters' defaults."""
        return self.params().model_dump()


def register(alg: Algorithm) -> Algorithm:
    if alg.name in ALGORITHMS:
        raise ValueError(f"algorithm `{alg.name}` is already registered")
    ALGORITHMS[alg.name] = alg
    return alg


def get_algorithm(name: str) -> Algorithm:
    """The algorithm called `name` (a built-in, or a plugin ``path/to/file.py:Name`` /
    ``module:Name``, loaded once); unknown names raise ValueError with a suggestion."""
    return algorithm(name)


def _no_loop(*args: Any) -> Any:
    raise RuntimeError("this algorithm runs its own loop (`run`); it has no `collect` or `loss`")


#: What a plugin may declare besides ``params``, ``collect`` and ``loss``: the record's other fields.
OPTIONAL = ("setup", "uses_clean_expert", "queries_expert", "run", "needs_probs", "sample_only_hint",
            "queries_per_trajectory")


def as_algorithm(obj: Any, name: str) -> Algorithm:
    """A plugin's object as the algorithm registered under `name` (:func:`agents.registry.load_plugin`).

    `obj` is an :class:`Algorithm` record, or a class (any object) with the record's fields as
    attributes: ``params`` (a :class:`Declared` model), ``collect(ctx, params)`` and
    ``loss(logits, batch, params)`` (functions in the class body: no ``self``), or ``run``; optionally
    any of :data:`OPTIONAL` (``needs_probs`` may be a bool); its docstring's first line is its summary.

    Raises:
        ValueError: `obj` is not an algorithm; the message says what it lacks.
    """
    if isinstance(obj, Algorithm):
        return dataclasses.replace(obj, name=name)
    contract = ("see the Algorithm contract in agents/algos/base.py and README.md, \"Write your own "
                "algorithm\"")
    params = getattr(obj, "params", None)
    if not (isinstance(params, type) and issubclass(params, Declared)):
        raise ValueError(  # noqa: TRY004 - a user's mistake: one line, exit code 2
            f"`{name}` is not an algorithm: it needs `params`, a Declared model of its parameters (class "
            f"Params(Declared): ...; an empty one if it has none), got {params!r}; {contract}")
    collect, loss, run = (getattr(obj, a, None) for a in ("collect", "loss", "run"))
    if not (callable(collect) and callable(loss)) and not callable(run):
        lacks = [a for a, f in (("collect", collect), ("loss", loss)) if not callable(f)]
        raise ValueError(f"`{name}` is not an algorithm: it has no {' or '.join(f'`{a}`' for a in lacks)} "  # noqa: TRY004
                         f"(or `run` for a loop of its own); {contract}")
    extra = {k: getattr(obj, k) for k in OPTIONAL if getattr(obj, k, None) is not None}
    if isinstance(extra.get("needs_probs"), bool):
        extra["needs_probs"] = always if extra["needs_probs"] else never
    doc = (getattr(obj, "__doc__", None) or "").strip()
    summary = getattr(obj, "summary", None) or (doc.splitlines()[0] if doc else name)
    return Algorithm(name, str(summary), params, collect or _no_loop, loss or _no_loop, **extra)


#: Why an algorithm that reads no expert rows through :mod:`agents.expert_rows` refuses ``expert_form``.
UNUSED_ROWS = ("it does not read the expert's rows through expert_form (only the online KL learners do: opd-f, opd-r, "
               "nail-f, nail-r, nail-mixed); drop expert_form")


# --------------------------------------------------------------------------- expert access
class AccessModeError(ExpertAccessError, ValueError):
    """An algorithm (with these parameters) that needs the expert's probabilities, given a sample-only
    expert. Raised before any query; an :class:`~noisy_expert_gym.oracle.ExpertAccessError` and a
    ValueError (a configuration that cannot run)."""


def expert_access(oracle: Any) -> str:
    """An oracle's access mode: its ``access`` attribute, ``"full"`` for an oracle without one."""
    try:
        return str(getattr(oracle, "access", "full"))
    except RuntimeError:  # a stand-in that refuses every attribute (the boards' `_NoExpert`)
        return "full"


def access_needed(alg: Algorithm, params: Any) -> str:
    """The least access mode that answers everything `alg` reads with `params` (validated): ``sample``,
    ``topk`` or ``full`` (:data:`~noisy_expert_gym.oracle.ACCESS_MODES`)."""
    if not alg.needs_probs(params):
        return "sample"
    rows = alg.needs_rows(params) if alg.needs_rows is not None else True
    return "full" if rows else "topk"


def check_expert_access(alg: Algorithm, params: Any, oracle: Any) -> None:
    """Refuse, before any query, an algorithm that needs more than `oracle`'s access mode answers.

    Args:
        alg: the algorithm.
        params: its validated parameters (an instance of ``alg.params``).
        oracle: the expert it learns from (the clean one for ``uses_clean_expert`` algorithms).

    Raises:
        AccessModeError: the algorithm (with these parameters) needs probabilities from a
            ``sample`` expert, or whole rows (or more than its ``top_k`` tokens) from a ``topk``
            one, or top-k queries without a k from a full-access one; the message names the
            access mode and what to use instead.
    """
    access = expert_access(oracle)
    needed = access_needed(alg, params)
    shown = ", ".join(f"{k}={v!r}" for k, v in params.model_dump().items())
    k = alg.top_k(params)
    oracle_k = _oracle_top_k(oracle)
    if access == "full":
        if alg.topk_queries(params) and k is None and oracle_k is None:
            raise AccessModeError(f"algorithm `{alg.name}` ({shown}) asks the expert for its top-k without a k, and "
                                  "the expert has access='full' (it answers any k): set the algorithm's `top_k`")
        return
    if access == "topk" and needed != "full":
        if k is not None and oracle_k is not None and k > oracle_k:
            raise AccessModeError(f"algorithm `{alg.name}` ({shown}) asks for the top {k} tokens, but the expert has "
                                  f"access='topk' with top_k={oracle_k}: set the algorithm's top_k <= {oracle_k} "
                                  "(or leave it unset to take the expert's)")
        return
    if access == "sample" and needed == "sample":
        return

    def advice(hint: str) -> str:
        return f" {hint[0].upper()}{hint[1:]}." if hint else ""

    if access == "topk":
        raise AccessModeError(
            f"algorithm `{alg.name}` ({shown}) needs the expert's whole rows (or pi~ at tokens of its choosing), but "
            f"the expert has access='topk' (it answers its top {oracle_k} tokens with their log-probabilities, and "
            f"samples).{advice(alg.topk_hint)} Algorithms that learn from top-k answers or samples with their "
            f"defaults: {', '.join(f'`{n}`' for n in sample_algorithms())}; or build the expert with access='full'")
    raise AccessModeError(
        f"algorithm `{alg.name}` ({shown}) needs the expert's probabilities, but the expert has "
        f"access={access!r} (it answers with sampled tokens only).{advice(alg.sample_only_hint)} Algorithms that "
        f"learn from samples with their defaults: {', '.join(f'`{n}`' for n in sample_algorithms())}; or build the "
        "expert with access='full' to read probabilities")


def _oracle_top_k(oracle: Any) -> int | None:
    try:
        return getattr(oracle, "top_k", None)
    except RuntimeError:  # a stand-in that refuses every attribute
        return None


def sample_algorithms() -> list[str]:
    """The registered algorithms that learn from the noisy expert's samples with their default parameters."""
    return [n for n, a in ALGORITHMS.items()
            if a.queries_expert and not a.uses_clean_expert and not a.needs_probs(a.params())]


__all__ = [
    "ALGORITHMS",
    "AccessModeError",
    "Algorithm",
    "Batch",
    "Context",
    "RunKit",
    "access_needed",
    "always",
    "as_algorithm",
    "check_expert_access",
    "epoch_order",
    "expert_access",
    "get_algorithm",
    "never",
    "register",
    "sample_algorithms",
]
