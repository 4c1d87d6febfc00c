"""LogLossBC (offline SFT) on a fixed dataset of expert rollouts; `bc-clean` uses the clean expert.

The dataset of N rollouts of the noisy expert (its corrupted tokens fed back,
docs/design.md §2) is generated through the oracle once and cached on disk; N is what the
budget affords, ``budget_trajectories`` or ``budget_queries // H`` if smaller (a
rollout costs H queries), so buying the dataset never overshoots either cap. Training streams it in order (the rollouts are i.i.d.), so the
learning curve against "trajectories consumed" is comparable with the online
methods'; ``epochs`` > 1 makes further passes in a fresh random order. With
``prompt_order = "epoch"`` (tasks with a finite problem list) the dataset's prompts are
those the online learners would draw: every problem once per epoch of a seeded permutation.
``bc-clean`` trains on clean-expert rollouts: a reference ceiling that reads the
clean expert and is never eligible for a leaderboard. ``bc`` with
``dataset=<Minari id>`` trains on the first N episodes of a local Minari dataset
instead (see ``neg export-minari``). Expert rollouts are sampled tokens only, so BC
learns from a sample-only expert (``access="sample"``) unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import torch
from pydantic import field_validator, model_validator

from agents import losses
from agents.algos.base import (
    UNUSED_ROWS,
    Algorithm,
    Batch,
    Context,
    epoch_permutation,
    never,
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


def dataset_path(ctx: Context, clean: bool) -> str:
    cfg = ctx.cfg
    ident = {"env": cfg.env_id, "kw": cfg.env_kwargs, "n": ctx.budget.affordable,
             "seed": cfg.seed, "clean": clean, "task": repr(ctx.task), "v": 1}
    if cfg.prompt_order != "iid":  # (iid datasets keep their cache names)
        ident["order"] = cfg.prompt_order
    expert = ctx.clean_expert if clean else ctx.expert
    if getattr(expert, "fingerprint", None):  # an expert that is not the env's (a trained policy teacher)
        ident["expert"] = expert.fingerprint
    key = json.dumps(ident, sort_keys=True, default=str)
    name = hashlib.sha256(key.encode()).hexdigest()[:20]
    return os.path.join(cfg.data_dir or DEFAULT_CACHE, f"{'clean' if clean else 'noisy'}-{name}.pt")


def make_dataset(expert: Oracle, task: TaskCore, n: int, seed: int, device: torch.device,
                 chunk: int = 8192, order: str = "iid") -> dict[str, torch.Tensor]:
    """n expert rollouts {prompts (n, P), chain (n, H)}, generated in chunks on `device`; the prompts drawn
    i.i.d. (``order="iid"``) or every problem once per epoch of :func:`epoch_permutation` (``"epoch"``)."""
    gen = torch.Generator(device=device).manual_seed(seed * 7_919 + 17)
    idx = None
    if order == "epoch":
        if not (hasattr(task, "num_problems") and hasattr(task, "prompts_for")):
            raise ValueError(f"prompt_order='epoch' needs a task with a finite list of problems (num_problems, "
                             f"prompts_for), such as GSM-8K; {type(task).__name__} draws its prompts: use 'iid'")
        m = int(task.num_problems)
        idx = torch.cat([epoch_permutation(seed, e, m) for e in range(-(-n // m))])[:n]
    prompts, chains = [], []
    for i in range(0, n, chunk):
        if idx is None:
            p = task.sample_prompts(gen, min(chunk, n - i), device=device)
        else:
            p = task.prompts_for(idx[i : i + chunk], like=torch.empty(0, device=device))
        prompts.append(p)
        chains.append(expert.rollout(p, generator=gen))
    return {"prompts": torch.cat(prompts), "chain": torch.cat(chains)}


def load_or_make(ctx: Context, clean: bool) -> dict[str, torch.Tensor]:
    """The cached dataset if present and readable, else generate it and write it atomically."""
    path = dataset_path(ctx, clean)
    if os.path.exists(path):
        try:
            data = torch.load(path, map_location=ctx.device)
            if data["prompts"].shape[0] == ctx.budget.affordable:
                return data
        except Exception:  # noqa: BLE001, S110  a corrupt cache file is regenerated, never trusted
            pass
    expert = ctx.clean_expert if clean else ctx.expert
    data = make_dataset(expert, ctx.task, ctx.budget.affordable, ctx.cfg.seed, ctx.device,
                        order=ctx.cfg.prompt_order)
    with atomic_path(path) as tmp:
        torch.save({k: v.cpu() for k, v in data.items()}, tmp)
    return data


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
        data = from_minari(ctx, params, clean) if params.dataset else load_or_make(ctx, clean)
        # Each rank reads its own shard: rank, rank + world, ...
        ctx.state["dataset"] = {k: v[ctx.rank :: ctx.world_size] for k, v in data.items()}
        ctx.state.update(pos=0, epoch=0,
                         perm=torch.arange(ctx.state["dataset"]["prompts"].shape[0], device=ctx.device))
    return setup


def collect(ctx: Context, params: BCParams) -> Batch:
    st, data = ctx.state, ctx.state["dataset"]
    n = data["prompts"].shape[0]
    if st["pos"] >= n:  # next epoch, fresh order
        st.update(pos=0, epoch=st["epoch"] + 1,
                  perm=torch.randperm(n, generator=ctx.gen, device=ctx.gen.device).to(ctx.device))
    idx = st["perm"][st["pos"] : st["pos"] + ctx.batch_size]
    st["pos"] += idx.shape[0]
    new = idx.shape[0] if st["epoch"] == 0 else 0  # later epochs re-read spent trajectories
    prompts, chain = data["prompts"][idx], data["chain"][idx]
    return Batch(prompts, chain, actions=chain, trajectories=new, queries=new * ctx.task.horizon)


def loss(logits: torch.Tensor, batch: Batch, params: BCParams) -> torch.Tensor:
    return losses.mc_forward(logits, batch.actions)


register(Algorithm("bc", "LogLossBC: token log-loss on a fixed dataset of noisy-expert rollouts "
                   "(generated and cached, or a Minari dataset id: dataset=...)",
                   BCParams, collect, loss, setup=_setup(clean=False), needs_probs=never,
                   unused=frozenset({"expert_form"}), unused_reason=UNUSED_ROWS))
register(Algorithm("bc-clean", "reference ceiling: BC on clean-expert rollouts (reads the clean expert)",
                   BCParams, collect, loss, setup=_setup(clean=True), uses_clean_expert=True, needs_probs=never,
                   unused=frozenset({"expert_form"}), unused_reason=UNUSED_ROWS))
