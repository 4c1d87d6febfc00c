"""LogLossBC (offline SFT) on a fixed dataset of expert rollouts; `bc-clean` uses the clean expert.

The dataset is N rollouts of the noisy expert (its corrupted tokens fed back,
docs/design.md §2); N is what the budget affords, ``budget_trajectories`` or
``budget_queries // H`` if smaller (a rollout costs H queries), so the dataset never
overshoots either cap. Training streams it in order, and **the first pass collects it as
it reads it** (one update's rollouts at a time, :class:`Collected`): a trajectory is spent
when the expert produces it, for BC as for every learner (docs/design.md §4.4), so the
learning curve at "8k trajectories" is the model trained on the 8k rollouts it has
bought, in a bench and on a board alike (where the harness counts what the expert is asked
for). The rollouts are i.i.d., so a dataset bought piecewise is distributed as one bought
at once; it is a function of the seed and the chunk (one update's trajectories), cached
on disk once complete. ``epochs`` > 1 makes further passes in a fresh random order, for
free. ``bc-clean`` trains on clean-expert rollouts: a reference ceiling that reads the
clean expert and is never eligible for a leaderboard. ``bc`` with ``dataset=<Minari id>``
trains on the first N episodes of a local Minari dataset instead (see ``neg
export-minari``), charged as it is read. With ``prompt_order = "epoch"`` (tasks with a finite problem list)
the dataset's prompts are those the online learners would draw: every problem once per epoch
of a seeded permutation. Expert rollouts are sampled tokens only, so BC
learns from a sample-only expert (``access="sample"``) unchanged.

``labels="probs"`` is offline distillation with soft labels, a control of the theory
(docs/design.md §3.4): the same prefixes (the same cached rollouts, in the same order), but
at each one the loss is the forward KL to the noisy expert's row pi~(. | prefix) -- the
distribution the rollout's token was drawn from -- instead of -log pi_theta(token). It
removes the label noise of sampling and nothing else. The rows are the ones the rollout
was sampled from, so they cost no further trajectories or queries; reading them needs
full access (a sample-only expert refuses the run before any query).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Literal

import torch
from pydantic import field_validator, model_validator

from agents import expert_rows as rows
from agents import losses
from agents.algos.base import (
    Algorithm,
    Batch,
    Context,
    epoch_permutation,
    register,
)
from noisy_expert_gym.contracts import Oracle, TaskCore
from noisy_expert_gym.declarations import Declared, PositiveInt, UnitInterval
from noisy_expert_gym.utils import atomic_path

DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "noisy_expert_gym", "datasets")


class BCParams(Declared):
    epochs: PositiveInt = 1
    """Passes over the dataset (later passes in a fresh random order; they spend no budget)."""
    dataset: str | None = None
    """A local Minari dataset id to train on instead of generated rollouts (see `neg export-minari`); it must have been made on the run's env and problem kwargs."""
    dataset_eta: UnitInterval | None = None
    """With `dataset`: the eta it was made at, to train on data of another eta than the env's on purpose (recorded in the run's config)."""
    labels: Literal["tokens", "probs"] = "tokens"
    """`tokens`: log-loss on the rollout's sampled tokens (LogLossBC); `probs`: forward KL to the expert's row at each of the rollout's prefixes (soft labels, needs full access)."""

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset_id(cls, v: Any) -> Any:
        if v is None or (isinstance(v, str) and v):
            return v
        raise ValueError("`dataset` must be a Minari dataset id (e.g. noisy-expert/modadd-p7-m31-eta0_2/noisy-v0) "
                         f"or None, got {v!r}")

    @model_validator(mode="after")
    def _eta_needs_a_dataset(self) -> BCParams:
        if self.dataset_eta is not None and self.dataset is None:
            raise ValueError("`dataset_eta` applies only with `dataset` (a Minari dataset id)")
        return self


def dataset_path(ctx: Context, clean: bool, chunk: int) -> str:
    cfg = ctx.cfg
    ident = {"env": cfg.env_id, "kw": cfg.env_kwargs, "n": ctx.budget.affordable, "chunk": chunk,
             "seed": cfg.seed, "clean": clean, "task": repr(ctx.task), "v": 2}
    if cfg.prompt_order != "iid":
        ident["order"] = cfg.prompt_order
    expert = ctx.clean_expert if clean else ctx.expert
    if getattr(expert, "fingerprint", None):  # an expert that is not the env's (a trained policy teacher)
        ident["expert"] = expert.fingerprint
    key = json.dumps(ident, sort_keys=True, default=str)
    name = hashlib.sha256(key.encode()).hexdigest()[:20]
    return os.path.join(cfg.data_dir or DEFAULT_CACHE, f"{'clean' if clean else 'noisy'}-{name}.pt")


class Collected:
    """A BC run's N expert rollouts, collected as they are first read.

    Rows are bought in order, ``chunk`` at a time (one update's trajectories, all ranks), from a
    generator seeded by the run's seed: the data is a function of (seed, N, chunk) whenever it is
    bought, so a resumed run collects the same rows again, and a complete dataset can be cached on
    disk and read back in its place. Rank r of W reads rows r, r + W, ... (its shard), in order in
    the first pass; every rank collects the same rows (the trainer charges what each rank reads).
    """

    def __init__(self, expert: Oracle | None, task: TaskCore, n: int, chunk: int, seed: int,
                 device: torch.device, path: str | None = None, rank: int = 0, world: int = 1,
                 order: str = "iid") -> None:
        self.expert, self.task, self.n, self.chunk, self.device = expert, task, n, chunk, device
        self.path, self.rank, self.world = path, rank, world
        self.gen = torch.Generator(device=device).manual_seed(seed * 7_919 + 17)
        self.order: torch.Tensor | None = None  # problem ids in collection order (prompt_order="epoch")
        if order == "epoch":
            if not (hasattr(task, "num_problems") and hasattr(task, "prompts_for")):
                raise ValueError(f"prompt_order='epoch' needs a task with a finite list of problems (num_problems, "
                                 f"prompts_for), such as GSM-8K; {type(task).__name__} draws its prompts: use 'iid'")
            m = int(task.num_problems)
            self.order = torch.cat([epoch_permutation(seed, e, m) for e in range(-(-n // m))])[:n]
        self.data: dict[str, torch.Tensor] = {}
        self.filled = 0

    @classmethod
    def complete(cls, data: dict[str, torch.Tensor], task: TaskCore, device: torch.device, rank: int = 0,
                 world: int = 1) -> Collected:
        """A dataset already at hand (a Minari dataset, the disk cache): nothing left to collect."""
        n = data["prompts"].shape[0]
        out = cls(None, task, n, n, 0, device, rank=rank, world=world)
        out.data, out.filled = {k: v.to(device) for k, v in data.items()}, n
        return out

    @property
    def shard_size(self) -> int:
        """Rows of this rank's shard."""
        return len(range(self.rank, self.n, self.world))

    def rows(self, local: torch.Tensor) -> dict[str, torch.Tensor]:
        """Rows ``local`` of this rank's shard, collecting what is not bought yet."""
        idx = local * self.world + self.rank
        if idx.numel():
            self._collect_to(int(idx.max()) + 1)
        return {k: v[idx] for k, v in self.data.items()}

    def _collect_to(self, end: int) -> None:
        while self.filled < end:
            k = min(self.chunk, self.n - self.filled)
            if self.order is None:
                prompts = self.task.sample_prompts(self.gen, k, device=self.device)
            else:
                prompts = self.task.prompts_for(self.order[self.filled : self.filled + k],
                                                like=torch.empty(0, device=self.device))
            new = {"prompts": prompts, "chain": self.expert.rollout(prompts, generator=self.gen)}
            if not self.data:
                self.data = {name: torch.empty((self.n, *v.shape[1:]), dtype=v.dtype, device=self.device)
                             for name, v in new.items()}
            for name, v in new.items():
                self.data[name][self.filled : self.filled + k] = v
            self.filled += k
        if self.filled == self.n and self.path and self.rank == 0:
            with atomic_path(self.path) as tmp:
                torch.save({k: v.cpu() for k, v in self.data.items()}, tmp)
            self.path = None  # written once


def cached(ctx: Context, clean: bool) -> Collected:
    """The run's dataset: the complete cached one if present and readable, else one collected as read
    (and cached once complete)."""
    chunk = ctx.cfg.batch_size * ctx.world_size
    path = dataset_path(ctx, clean, chunk)
    n = ctx.budget.affordable
    if os.path.exists(path):
        try:
            data = torch.load(path, map_location=ctx.device)
            if data["prompts"].shape[0] == n:
                return Collected.complete(data, ctx.task, ctx.device, ctx.rank, ctx.world_size)
        except Exception:  # noqa: BLE001, S110  a corrupt cache file is regenerated, never trusted
            pass
    expert = ctx.clean_expert if clean else ctx.expert
    return Collected(expert, ctx.task, n, chunk, ctx.cfg.seed, ctx.device, path, ctx.rank, ctx.world_size,
                     order=ctx.cfg.prompt_order)


def from_minari(ctx: Context, params: BCParams, clean: bool) -> dict[str, torch.Tensor]:
    """The first N (what the budget affords) episodes of a local Minari dataset made on the run's
    problem (env, every problem kwarg, spaces; eta may differ as ``dataset_eta`` says), on the
    training device."""
    from noisy_expert_gym import make_problem
    from noisy_expert_gym.bridges.minari_io import dataset_metadata, load_chains

    dataset = params.dataset
    if ctx.cfg.prompt_order != "iid":
        raise ValueError(f"prompt_order={ctx.cfg.prompt_order!r} has no effect with a Minari dataset (its episodes "
                         "are read in their order); drop prompt_order or the dataset")
    if not clean and dataset_metadata(dataset).get("uses_clean_expert"):
        raise ValueError(f"Minari dataset `{dataset}` holds clean-expert rollouts (reference data): "
                         "train on it with `bc-clean`, which is flagged as reading the clean expert")
    problem = make_problem(ctx.cfg.env_id, **ctx.cfg.env_kwargs)  # cached: the run's own
    data = load_chains(dataset, problem, n=ctx.budget.affordable, dataset_eta=params.dataset_eta)
    return {k: torch.as_tensor(v, device=ctx.device) for k, v in data.items()}


def _setup(clean: bool):
    def setup(ctx: Context, params: BCParams) -> None:
        if params.dataset:
            data = Collected.complete(from_minari(ctx, params, clean), ctx.task, ctx.device, ctx.rank,
                                      ctx.world_size)
        else:
            data = cached(ctx, clean)
        ctx.state["dataset"] = data  # not checkpointed: collected again on resume, the same rows
        ctx.state.update(pos=0, epoch=0, clean=clean, perm=torch.arange(data.shard_size, device=ctx.device))
    return setup


def collect(ctx: Context, params: BCParams) -> Batch:
    st, data = ctx.state, ctx.state["dataset"]
    n = data.shard_size
    if st["pos"] >= n:  # next epoch, fresh order
        st.update(pos=0, epoch=st["epoch"] + 1,
                  perm=torch.randperm(n, generator=ctx.gen, device=ctx.gen.device).to(ctx.device))
    idx = st["perm"][st["pos"] : st["pos"] + ctx.batch_size]
    st["pos"] += idx.shape[0]
    new = idx.shape[0] if st["epoch"] == 0 else 0  # later epochs re-read spent trajectories
    got = data.rows(idx)  # the first pass collects them from the expert now
    prompts, chain = got["prompts"], got["chain"]
    probs = None
    if params.labels == "probs":  # the rows the rollout was drawn from: already paid for with it
        expert = ctx.clean_expert if ctx.state.get("clean") else ctx.expert
        probs = rows.expert_rows(expert, prompts, chain, ctx.cfg.expert_form)
    return Batch(prompts, chain, probs=probs, actions=chain, trajectories=new, queries=new * ctx.task.horizon)


def loss(logits: torch.Tensor, batch: Batch, params: BCParams) -> torch.Tensor:
    if params.labels == "probs":
        return losses.forward_kl_rows(logits, batch.probs)
    return losses.mc_forward(logits, batch.actions)


def needs_probs(params: BCParams) -> bool:
    """Soft labels read the expert's rows; tokens are samples."""
    return params.labels == "probs"


def reads(algo_params: dict[str, Any]) -> frozenset[str]:
    """With soft labels BC reads the expert's rows through ``expert_form``; with tokens it does not."""
    return frozenset({"expert_form"}) if algo_params.get("labels") == "probs" else frozenset()


_UNUSED_ROWS = ("with labels='tokens' it does not read the expert's rows through expert_form (soft labels do: "
                "labels='probs'); drop expert_form or set labels='probs'")


register(Algorithm("bc", "LogLossBC: token log-loss on a fixed dataset of noisy-expert rollouts "
                   "(generated and cached, or a Minari dataset id: dataset=...); labels='probs': soft labels",
                   BCParams, collect, loss, setup=_setup(clean=False), needs_probs=needs_probs,
                   sample_only_hint="use labels='tokens'", unused=frozenset({"expert_form"}),
                   unused_reason=_UNUSED_ROWS, reads=reads))
register(Algorithm("bc-clean", "reference ceiling: BC on clean-expert rollouts (reads the clean expert)",
                   BCParams, collect, loss, setup=_setup(clean=True), uses_clean_expert=True,
                   needs_probs=needs_probs, sample_only_hint="use labels='tokens'", unused=frozenset({"expert_form"}),
                   unused_reason=_UNUSED_ROWS, reads=reads))
