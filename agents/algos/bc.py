"""LogLossBC (offline SFT) on a fixed dataset of expert rollouts; `bc-clean` uses the clean expert.

The dataset of N rollouts of the noisy expert (its corrupted tokens fed back,
docs/design.md §2) is generated through the oracle once and cached on disk; N is what the
budget affords, ``budget_trajectories`` or ``budget_queries // H`` if smaller (a
rollout costs H queries), so buying the dataset never overshoots either cap. Training streams it in order (the rollouts are i.i.d.), so the
learning curve against "trajectories consumed" is comparable with the online
methods'; ``epochs`` > 1 makes further passes in a fresh random order.
``bc-clean`` trains on clean-expert rollouts: a reference ceiling that reads the
clean expert and is never eligible for a leaderboard. ``bc`` with
``dataset=<Minari id>`` trains on the first N episodes of a local Minari dataset
instead (see ``neg export-minari``). Expert rollouts are sampled tokens only, so BC
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
from agents.algos.base import Algorithm, Batch, Context, register
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


def dataset_path(ctx: Context, clean: bool) -> str:
    cfg = ctx.cfg
    ident = {"env": cfg.env_id, "kw": cfg.env_kwargs, "n": ctx.budget.affordable,
             "seed": cfg.seed, "clean": clean, "task": repr(ctx.task), "v": 1}
    expert = ctx.clean_expert if clean else ctx.expert
    if getattr(expert, "fingerprint", None):  # an expert that is not the env's (a trained policy teacher)
        ident["expert"] = expert.fingerprint
    key = json.dumps(ident, sort_keys=True, default=str)
    name = hashlib.sha256(key.encode()).hexdigest()[:20]
    return os.path.join(cfg.data_dir or DEFAULT_CACHE, f"{'clean' if clean else 'noisy'}-{name}.pt")


def make_dataset(expert: Oracle, task: TaskCore, n: int, seed: int, device: torch.device,
                 chunk: int = 8192) -> dict[str, torch.Tensor]:
    """n expert rollouts {prompts (n, P), chain (n, H)}, generated in chunks on `device`."""
    gen = torch.Generator(device=device).manual_seed(seed * 7_919 + 17)
    prompts, chains = [], []
    for i in range(0, n, chunk):
        p = task.sample_prompts(gen, min(chunk, n - i), device=device)
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
    data = make_dataset(expert, ctx.task, ctx.budget.affordable, ctx.cfg.seed, ctx.device)
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
        ctx.state.update(pos=0, epoch=0, clean=clean,
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


register(Algorithm("bc", "LogLossBC: token log-loss on a fixed dataset of noisy-expert rollouts "
                   "(generated and cached, or a Minari dataset id: dataset=...); labels='probs': soft labels",
                   BCParams, collect, loss, setup=_setup(clean=False), needs_probs=needs_probs,
                   sample_only_hint="use labels='tokens'"))
register(Algorithm("bc-clean", "reference ceiling: BC on clean-expert rollouts (reads the clean expert)",
                   BCParams, collect, loss, setup=_setup(clean=True), uses_clean_expert=True,
                   needs_probs=needs_probs, sample_only_hint="use labels='tokens'"))
