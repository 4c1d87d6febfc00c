"""The one shared student-prefix trainer.

Every algorithm is the same loop (DESIGN §4); only which prefixes are visited
(``Algorithm.collect``) and the loss on them (``Algorithm.loss``) differ:

1. sample prompts; roll out (the student at temperature tau, an expert, a
   dataset minibatch), no gradient;
2. query the expert at every visited prefix (one call for all H prefixes);
3. compute the per-position loss on the fixed prefixes, masked mean, one step.

Everything stays on the training device (the task core and the oracle run on
torch tensors). All randomness after the model init comes from one
``torch.Generator`` whose state is checkpointed, so ``resume`` reproduces the
uninterrupted learning curve.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from agents.algos import get_algorithm, resolve_params
from agents.config import TrainConfig
from agents.device import autocast_context, maybe_compile, resolve_device
from agents.hf_policy import build_policy
from agents.policy import TransformerPolicy
from agents.result import RunResult
from noisy_expert_gym._util import did_you_mean

CHECKPOINT_NAME = "last.pt"


# --------------------------------------------------------------------------- batches
@dataclass
class Batch:
    """Prefixes to learn on and the expert's answers there.

    Row t of ``chain`` is the token after prefix ``prompts + chain[:, :t]``; the
    student is evaluated at exactly those prefixes (teacher forcing on the
    visited chain).
    """

    prompts: torch.Tensor  # (B, P)
    chain: torch.Tensor  # (B, H)
    probs: torch.Tensor | None = None  # (B, H, A) expert distribution at each prefix
    actions: torch.Tensor | None = None  # (B, H) labels (sampled expert tokens, dataset tokens)
    trajectories: int = 0  # expert trajectories this batch spends
    queries: int | None = None  # prefix-queries it spends (None: counted by the oracle)
    gen: torch.Generator | None = None  # for losses that sample (score-function estimators)


@dataclass
class Context:
    """What an algorithm's ``collect``/``setup`` may use."""

    cfg: TrainConfig
    task: Any
    expert: Any
    clean_expert: Any
    policy: TransformerPolicy  # the raw module (generation never needs DDP)
    device: torch.device
    gen: torch.Generator
    world_size: int = 1
    rank: int = 0
    batch_size: int = 256  # trajectories this rank collects in the current update
    update: int = 0
    trajectories: int = 0  # spent so far, all ranks
    state: dict[str, Any] = field(default_factory=dict)  # algorithm state (checkpointed)

    def sample_prompts(self, n: int | None = None) -> torch.Tensor:
        return self.task.sample_prompts(self.gen, n or self.batch_size, device=self.device)

    def rollout(self, prompts: torch.Tensor, tau: float) -> torch.Tensor:
        """The student's rollout at temperature tau (0 = greedy), no gradient."""
        with autocast_context(self.device, self.cfg.precision):
            return self.policy.generate(prompts, self.task.horizon, temperature=tau, generator=self.gen)


def sample_probs(probs: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One categorical draw per row of probs (..., A) by inverse CDF (fast on any device)."""
    u = torch.rand(probs.shape[:-1] + (1,), generator=gen, device=probs.device, dtype=probs.dtype)
    return (u > probs.cumsum(-1)).sum(-1).clamp_(max=probs.shape[-1] - 1)


# --------------------------------------------------------------------------- set-up
def make_env(env_id: str, env_kwargs: dict[str, Any]) -> gym.Env:
    """gym.make with an error that suggests the right id, and a check for an expert oracle."""
    import noisy_expert_gym  # noqa: F401  (registers the envs)

    if env_id not in gym.registry:
        raise ValueError(f"unknown env id `{env_id}`.{did_you_mean(env_id, gym.registry)}")
    env = gym.make(env_id, **env_kwargs)
    u = env.unwrapped
    if getattr(u, "expert", None) is None or getattr(u, "task", None) is None:
        raise ValueError(
            f"env `{env_id}` has no expert oracle: trainers need `env.unwrapped.expert` and "
            "`env.unwrapped.task` (a batched task core); see noisy_expert_gym.tasks")
    return env


def build_config(config: TrainConfig | None, fields: dict[str, Any]) -> TrainConfig:
    """A TrainConfig from a base config plus keyword overrides, validated up front."""
    cfg = TrainConfig(**(config.to_dict() if config else {}))
    names = TrainConfig.field_names()
    for k, v in fields.items():
        if k not in names:
            raise ValueError(f"unknown training option `{k}`.{did_you_mean(k, names)}")
        setattr(cfg, k, v)
    problems = []
    if not isinstance(cfg.budget_trajectories, (int, np.integer)) or cfg.budget_trajectories <= 0:
        problems.append(f"`budget_trajectories` must be a positive integer, got {cfg.budget_trajectories!r}")
    if cfg.budget_queries is not None and cfg.budget_queries <= 0:
        problems.append(f"`budget_queries` must be positive or None, got {cfg.budget_queries!r}")
    if cfg.batch_size <= 0:
        problems.append(f"`batch_size` must be positive, got {cfg.batch_size!r}")
    if not cfg.lr > 0:
        problems.append(f"`lr` must be positive, got {cfg.lr!r}")
    if cfg.schedule not in ("constant", "cosine"):
        problems.append(f"`schedule` must be `constant` or `cosine`, got {cfg.schedule!r}")
    if cfg.eval_prompts <= 0:
        problems.append(f"`eval_prompts` must be positive, got {cfg.eval_prompts!r}")
    if cfg.resume and not cfg.checkpoint_dir:
        problems.append("`resume` needs `checkpoint_dir` (where the last checkpoint was written)")
    try:
        resolve_params(cfg.algo, cfg.algo_params)
    except ValueError as e:
        problems.append(str(e))
    if problems:
        raise ValueError("invalid training configuration: " + "; ".join(problems))
    return cfg


def _lr_lambda(cfg: TrainConfig, total_updates: int):
    def f(u: int) -> float:
        if u < cfg.warmup_updates:
            return (u + 1) / cfg.warmup_updates
        if cfg.schedule == "cosine":
            frac = min(1.0, (u - cfg.warmup_updates) / max(1, total_updates - cfg.warmup_updates))
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))
        return 1.0
    return f


# --------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(policy: TransformerPolicy, task: Any, prompts: torch.Tensor, clean_chain: torch.Tensor,
             device: torch.device, precision: str, seed: int) -> dict[str, float]:
    """Clean validation loss and greedy / sampled rollout accuracy on held-out prompts."""
    was_training = policy.training
    policy.eval()
    out: dict[str, float] = {}
    valid = task.valid_along(prompts, clean_chain).float()
    losses, greedy, sampled = [], [], []
    gen = torch.Generator(device=device).manual_seed(seed)  # same draws at every evaluation
    for i in range(0, prompts.shape[0], 1024):
        p, c, v = prompts[i : i + 1024], clean_chain[i : i + 1024], valid[i : i + 1024]
        with autocast_context(device, precision):
            logits = policy.chain_logits(p, c)
            g = policy.generate(p, task.horizon, temperature=0.0)
            s = policy.generate(p, task.horizon, temperature=1.0, generator=gen)
        ce = F.cross_entropy(logits.float().flatten(0, 1), c.flatten(), reduction="none").view_as(v)
        losses.append(((ce * v).sum(1) / v.sum(1)).cpu())
        greedy.append({k: x.float().cpu() for k, x in task.metrics(p, g).items()})
        sampled.append({k: x.float().cpu() for k, x in task.metrics(p, s).items()})
    out["val_loss"] = float(torch.cat(losses).mean())
    for name, rows in (("greedy", greedy), ("sampled", sampled)):
        for k in rows[0]:
            out[f"{name}_{k}"] = float(torch.cat([r[k] for r in rows]).mean())
    policy.train(was_training)
    return out


# --------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: str, payload: dict[str, Any]) -> None:
    """Atomic: write a temporary file in the same directory, then rename over the old one."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    torch.save(payload, tmp)
    os.replace(tmp, path)


PROGRESS_NAME = "progress.json"


def write_progress(directory: str, row: dict[str, Any]) -> None:
    """The latest evaluation row as JSON in `directory` (atomic), for whoever watches the run."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, PROGRESS_NAME)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(row, fh)
    os.replace(tmp, path)


def read_progress(directory: str) -> dict[str, Any] | None:
    """The row :func:`write_progress` left in `directory`, or None."""
    try:
        with open(os.path.join(directory, PROGRESS_NAME)) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def load_checkpoint(path: str) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated file, wrong format, ...
        raise ValueError(f"checkpoint `{path}` is corrupt or unreadable ({type(e).__name__}: {e}); "
                         "delete it to start afresh, or point --checkpoint-dir elsewhere") from None


def _identity(cfg: TrainConfig) -> str:
    """The part of the config a checkpoint must agree with to be resumed."""
    keep = {k: v for k, v in cfg.to_dict().items()
            if k not in ("resume", "progress", "tensorboard_dir", "checkpoint_dir", "checkpoint_every",
                         "device", "stop_at", "data_dir")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- distributed
def _dist_setup(cfg: TrainConfig) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 1, 0, resolve_device(cfg.device)
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if cfg.device in ("auto", "cuda") and torch.cuda.is_available():
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device, backend = resolve_device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return world, rank, device


# --------------------------------------------------------------------------- the loop
def train(config: TrainConfig | None = None, *, env: Any = None, **fields: Any) -> RunResult:
    """Train an imitation algorithm on a noisy-expert env.

    Example::

        from agents import train
        res = train(algo="nail-f", env_id="NoisyModAdd-v0", env_kwargs={"eta": 0.2},
                    budget_trajectories=200_000, seed=0)
        res.final_metrics["greedy_full_exact"]

    Args:
        config: a base :class:`TrainConfig` (optional).
        env: an already-built env to train on instead of ``gym.make(cfg.env_id, **cfg.env_kwargs)``:
            anything whose ``.unwrapped`` has ``task``, ``expert`` and ``clean_expert``
            (the scoreboards' submission harness passes its counting expert client this way).
        **fields: overrides of any TrainConfig field.

    Returns:
        A :class:`RunResult` with ``final_metrics``, the learning ``curve`` and the spent budget.
    """
    cfg = build_config(config, fields)
    alg = get_algorithm(cfg.algo)
    params = resolve_params(cfg.algo, cfg.algo_params)
    if alg.run is not None:
        return alg.run(cfg, params)
    world, rank, device = _dist_setup(cfg)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 matmuls where the GPU has them
    if env is None:
        env = make_env(cfg.env_id, cfg.env_kwargs)
    env.reset(seed=cfg.seed)
    task, expert, clean = env.unwrapped.task, env.unwrapped.expert, env.unwrapped.clean_expert

    torch.manual_seed(cfg.seed)  # identical init on every rank
    policy = build_policy(cfg, task, device)  # `hf:<name>` presets: an HF causal-LM student
    model: torch.nn.Module = policy
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(policy, device_ids=[device.index] if device.type == "cuda" else None)
    fwd = maybe_compile(model, {"on": True, "off": False}.get(cfg.compile, "auto"))
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            betas=(0.9, 0.95))
    per_update = cfg.batch_size * world
    base_updates = math.ceil(cfg.budget_trajectories / per_update)
    total_updates = base_updates * int(params.get("epochs", 1))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg, total_updates))
    gen = torch.Generator(device=device).manual_seed(cfg.seed * 1_000_003 + rank)
    ctx = Context(cfg=cfg, task=task, expert=expert, clean_expert=clean, policy=policy, device=device,
                  gen=gen, world_size=world, rank=rank, batch_size=cfg.batch_size)

    eval_task = task
    if cfg.eval_env_kwargs:  # e.g. GSM-8K: train on the train split, evaluate on the test split
        eval_env = make_env(cfg.env_id, {**cfg.env_kwargs, **cfg.eval_env_kwargs})
        eval_task = eval_env.unwrapped.task
        eval_env.close()
        if (eval_task.obs_len, eval_task.vocab_size, eval_task.num_actions) != (
                task.obs_len, task.vocab_size, task.num_actions):
            raise ValueError("`eval_env_kwargs` must keep the observation shape and vocabulary of the "
                             f"training env (obs_len {task.obs_len}, vocab {task.vocab_size}); on GSM-8K "
                             "pass the same max_prompt_tokens and max_new_tokens")
    eval_gen = torch.Generator(device=device).manual_seed(cfg.eval_seed)
    eval_prompts = eval_task.sample_prompts(eval_gen, cfg.eval_prompts, device=device)
    eval_clean = eval_task.clean_chains(eval_prompts)
    eval_every = cfg.eval_every or max(per_update, cfg.budget_trajectories // 20)
    eval_interval = max(1, round(eval_every / per_update))
    ckpt_every = cfg.checkpoint_every or eval_interval
    ckpt_path = os.path.join(cfg.checkpoint_dir, CHECKPOINT_NAME) if cfg.checkpoint_dir else None

    curve: list[dict[str, float]] = []
    queries, start_update, wall_offset = 0, 0, 0.0
    if alg.setup is not None:  # deterministic (own seeds, disk cache), so it is rerun on resume
        alg.setup(ctx, params)
    if cfg.resume and ckpt_path and os.path.exists(ckpt_path):
        ck = load_checkpoint(ckpt_path)
        if ck.get("identity") != _identity(cfg):
            raise ValueError(f"checkpoint `{ckpt_path}` belongs to a different configuration; "
                             "use a fresh --checkpoint-dir or the original options")
        policy.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        gen.set_state(ck["gen"][rank])
        ctx.state.update({k: (v.to(device) if torch.is_tensor(v) else v) for k, v in ck["state"].items()})
        curve, queries, wall_offset = ck["curve"], ck["queries"], ck["wall_time"]
        ctx.trajectories, start_update = ck["trajectories"], ck["update"] + 1

    writer = _tensorboard(cfg.tensorboard_dir) if rank == 0 else None
    bar = None
    if cfg.progress and rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_updates, initial=start_update, desc=f"{cfg.algo}", unit="upd",
                   dynamic_ncols=True)
    t0 = time.perf_counter() - wall_offset
    last_eval_update = curve[-1]["update"] if curve else -1
    policy.train()
    metrics: dict[str, float] = curve[-1] if curve else {}
    train_loss = float("nan")
    for update in range(start_update, total_updates):
        ctx.update = update
        remaining = cfg.budget_trajectories - ctx.trajectories
        if update < base_updates:
            ctx.batch_size = max(1, min(cfg.batch_size, remaining // world)) if remaining > 0 else cfg.batch_size
        if cfg.budget_queries is not None and queries >= cfg.budget_queries:
            break
        q0 = _expert_queries(ctx)
        batch = alg.collect(ctx, params)
        queries += (batch.queries if batch.queries is not None else _expert_queries(ctx) - q0) * world
        ctx.trajectories += batch.trajectories * world
        with autocast_context(device, cfg.precision):
            tokens = torch.cat([batch.prompts, batch.chain[:, :-1]], dim=1)
            logits = fwd(tokens)[:, batch.prompts.shape[1] - 1 :]  # (B, H, A)
        per_pos = alg.loss(logits.float(), batch, params)  # (B, H)
        valid = task.valid_along(batch.prompts, batch.chain).float()
        loss = (per_pos * valid).sum() / valid.sum().clamp_min(1.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        train_loss = float(loss.detach())
        last = update == total_updates - 1 or (cfg.budget_queries is not None and queries >= cfg.budget_queries)
        if (update + 1) % eval_interval == 0 or last:
            metrics = {"update": update + 1, "trajectories": ctx.trajectories, "queries": queries,
                       "wall_time": time.perf_counter() - t0, "train_loss": train_loss}
            if rank == 0:
                metrics.update(evaluate(policy, eval_task, eval_prompts, eval_clean, device, cfg.precision,
                                        cfg.eval_seed + 1))
            curve.append(metrics)
            last_eval_update = update
            if cfg.checkpoint_dir and rank == 0:  # for sweep drivers showing in-flight runs
                write_progress(cfg.checkpoint_dir, {**metrics, "budget_trajectories": cfg.budget_trajectories})
            if writer is not None:
                _log_scalars(writer, metrics)
            if bar is not None:
                bar.set_postfix(traj=ctx.trajectories, loss=f"{train_loss:.3f}",
                                val=f"{metrics.get('val_loss', float('nan')):.3f}",
                                acc=f"{metrics.get('greedy_full_exact', float('nan')):.3f}")
        if ckpt_path and rank == 0 and ((update + 1) % ckpt_every == 0 or last):
            save_checkpoint(ckpt_path, {
                "identity": _identity(cfg), "config": cfg.to_dict(), "model": policy.state_dict(), "opt": opt.state_dict(),
                "sched": sched.state_dict(), "gen": _all_gen_states(gen, world), "update": update,
                "trajectories": ctx.trajectories, "queries": queries, "curve": curve,
                "wall_time": time.perf_counter() - t0,
                "state": {k: v for k, v in ctx.state.items() if k != "dataset"}})
        if bar is not None:
            bar.update(1)
        stop = (cfg.stop_at is not None and last_eval_update == update
                and metrics.get("greedy_full_exact", 0.0) >= cfg.stop_at)
        if world > 1:
            stop = _broadcast_flag(stop, device)
        if stop or last:
            break
    if bar is not None:
        bar.close()
    if writer is not None:
        writer.close()
    final = dict(curve[-1]) if curve else {}
    env.close()
    return RunResult(
        algo=cfg.algo, env_id=cfg.env_id, env_kwargs=dict(cfg.env_kwargs), config=cfg.to_dict(),
        seed=cfg.seed, final_metrics=final, curve=curve, trajectories=ctx.trajectories, queries=queries,
        wall_time=time.perf_counter() - t0, device=str(device), uses_clean_expert=alg.uses_clean_expert,
        policy=policy)


def _expert_queries(ctx: Context) -> int:
    return ctx.expert.num_queries + ctx.clean_expert.num_queries


def _all_gen_states(gen: torch.Generator, world: int) -> list[torch.Tensor]:
    state = gen.get_state()
    if world == 1:
        return [state]
    import torch.distributed as dist

    states = [torch.empty_like(state) for _ in range(world)]
    dist.all_gather_object(states, state)
    return states


def _broadcast_flag(flag: bool, device: torch.device) -> bool:
    import torch.distributed as dist

    t = torch.tensor([int(flag)], device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def _tensorboard(logdir: str | None) -> Any:
    if not logdir:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ImportError("TensorBoard logging needs the `tensorboard` extra: "
                          "pip install 'noisy-expert-gym[tensorboard]'") from None
    return SummaryWriter(logdir)


def _log_scalars(writer: Any, m: dict[str, float]) -> None:
    step = int(m["trajectories"])
    groups = {"train_loss": "train", "val_loss": "eval", "queries": "budget", "update": "budget",
              "wall_time": "perf"}
    for k, v in m.items():
        if k == "trajectories" or not isinstance(v, (int, float)):
            continue
        writer.add_scalar(f"{groups.get(k, 'eval')}/{k}", v, step)
    if m.get("wall_time"):
        writer.add_scalar("perf/trajectories_per_s", m["trajectories"] / m["wall_time"], step)

