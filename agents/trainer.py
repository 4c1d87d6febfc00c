"""The one shared student-prefix trainer.

Every algorithm is the same loop (docs/design.md §4); only which prefixes are visited
(``Algorithm.collect``) and the loss on them (``Algorithm.loss``) differ:

1. collect: sample prompts; roll out (the student at temperature tau, an expert,
   a dataset minibatch), no gradient;
2. query: the expert answers at every visited prefix (one call for all H prefixes);
3. update: the per-position loss on the fixed prefixes, masked mean, one step.

:func:`train` is that loop; :class:`Run` holds its state and bookkeeping (set-up,
budget, evaluation, checkpoints, logging), each written once in its own module
(:mod:`agents.budget`, :mod:`agents.evaluation`, :mod:`agents.checkpoint`,
:mod:`agents.monitor`). The task and its experts come from a
:class:`~noisy_expert_gym.problems.Problem` (built with
:func:`~noisy_expert_gym.make_problem`, or handed in); no Gymnasium env is built.
Everything stays on the training device (the task core and the oracle run on
torch tensors). The run's own randomness after the model init comes from one
``torch.Generator``; dropout draws from torch's global generator, and oracles and
libraries may draw from theirs. A checkpoint holds every one of those streams
(:func:`~agents.checkpoint.rng_state`), so ``resume`` reproduces the uninterrupted
learning curve exactly.

Budgets are hard caps (:mod:`agents.budget`): every algorithm declares what one
trajectory costs in queries (``Algorithm.queries_per_trajectory``: H, once per visited
prefix, unless it says otherwise; k H for `nail-mode`'s k samples per prefix), so the run
plans ``min(budget_trajectories, budget_queries // that)`` trajectories up front and cuts
its last batch to what is left.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from agents.algos import Algorithm, Batch, Context, get_algorithm
from agents.algos.base import RunKit, check_expert_access
from agents.budget import Budget
from agents.checkpoint import (
    CHECKPOINT_NAME,
    PPO_CHECKPOINT_NAME,
    check_resumable,
    identity_key,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    save_config,
    set_rng_state,
)
from agents.config import TrainConfig
from agents.device import (
    autocast_context,
    gather_states,
    maybe_compile,
    on_rank0,
    resolve_device,
    setup_distributed,
    sum_over_ranks,
)
from agents.evaluation import HeldOut
from agents.monitor import Monitor
from agents.policies import build_policy
from agents.result import RunResult
from agents.teachers import with_teacher
from noisy_expert_gym.problems import Problem, make_problem


def train(config: TrainConfig | None = None, *, problem: Problem | None = None, **fields: Any) -> RunResult:
    """Train an imitation algorithm on a noisy-expert problem.

    Example::

        from agents import train
        res = train(algo="nail-f", env_id="NoisyModAdd-v0", env_kwargs={"eta": 0.2},
                    budget_trajectories=200_000, seed=0)
        res.final_metrics["greedy_full_exact"]

    Args:
        config: a base :class:`TrainConfig` (optional).
        problem: the problem to train on, used as it is (the scoreboards' harness passes
            one whose expert is its counting client); its ``env_id`` must be ``cfg.env_id``. Default
            ``make_problem(cfg.env_id, **cfg.env_kwargs)`` with its oracles seeded by ``cfg.seed``.
        **fields: overrides of any TrainConfig field.

    Returns:
        A :class:`RunResult` with ``final_metrics``, the learning ``curve`` and the spent budget.
    """
    cfg = TrainConfig.build(config, **fields)
    alg = get_algorithm(cfg.algo)
    params = alg.params.model_validate(cfg.algo_params)
    if problem is None:
        problem = make_problem(cfg.env_id, **cfg.env_kwargs).with_rng(np.random.default_rng(cfg.seed))
        problem = with_teacher(problem, cfg)  # cfg.teacher_checkpoint: a trained policy as the expert
    elif problem.env_id != cfg.env_id:  # the result is filed under cfg.env_id
        raise ValueError(f"`problem` is a {problem.env_id} problem but the config says env_id={cfg.env_id!r}; "
                         "pass the matching env_id (and env_kwargs)")
    elif cfg.teacher_checkpoint:
        raise ValueError("pass either `problem` (with its experts) or `teacher_checkpoint`, not both; for a "
                         "policy teacher on a given problem use problem.with_experts(*PolicyTeacher.pair(...))")
    # A sample-only expert and an algorithm that reads probabilities: refuse before any query.
    check_expert_access(alg, params, problem.clean_expert if alg.uses_clean_expert else problem.expert)
    if alg.run is not None:  # an algorithm outside the student-prefix loop (ppo)
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # each process would run (and write) the whole run
            raise ValueError(f"`{cfg.algo}` runs in one process and has no data-parallel mode; start it with "
                             "`python -m agents.cli` or `neg train`, not torchrun")
        return alg.run(cfg, params, problem, run_kit(cfg, problem))
    run = Run.start(cfg, alg, params, problem)
    for update in range(run.first_update, run.total_updates):
        if not run.begin(update):  # nothing left to spend (a data-parallel remainder)
            break
        for micro in run.micro_batches():  # gradient accumulation: cfg.grad_accum micro-batches (default 1)
            queried = run.oracle_queries()
            batch = alg.collect(run.ctx, params)  # 1. collect the prefixes, 2. query the expert there
            run.charge(batch, queried)
            loss = run.update(batch, params, micro)  # 3. the loss on them; one optimizer step per update
        if run.end(update, loss):  # evaluation, checkpoint, early stop
            break
    return run.finish()


def run_kit(cfg: TrainConfig, problem: Problem) -> RunKit:
    """The shared plumbing handed to an algorithm that runs its own loop (``Algorithm.run``: ``ppo``)."""
    device = resolve_device(cfg.device)
    return RunKit(
        device=device, budget=Budget(cfg.budget_trajectories),
        held_out=lambda: HeldOut.for_run(cfg, problem, device),
        monitor=lambda total, unit: Monitor(cfg, total=total, unit=unit),
        checkpoint=os.path.join(cfg.checkpoint_dir, PPO_CHECKPOINT_NAME) if cfg.checkpoint_dir else None,
        save_config=lambda path: save_config(path, cfg),
        result=lambda **fields: RunResult(algo=cfg.algo, env_id=cfg.env_id, env_kwargs=dict(cfg.env_kwargs),
                                          config=cfg.to_dict(), seed=cfg.seed, device=str(device), **fields))


@dataclass
class Run:
    """The state of one training run and its bookkeeping around the loop's three steps."""

    cfg: TrainConfig
    alg: Algorithm
    ctx: Context
    fwd: torch.nn.Module  # the model as called for the loss (DDP-wrapped, compiled)
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    held_out: HeldOut
    monitor: Monitor
    base_updates: int  # updates that spend the trajectory budget once
    total_updates: int  # ... times the epochs (BC)
    eval_interval: int  # updates between evaluations
    ckpt_every: int  # updates between checkpoints
    ckpt_path: str | None
    oracles: tuple[Any, ...] = ()  # whose own random streams are checkpointed
    first_update: int = 0
    curve: list[dict[str, float]] = field(default_factory=list)
    t0: float = 0.0
    last_eval_update: int = -1
    ema: torch.nn.Module | None = None  # the EMA of the weights (cfg.ema_decay > 0): what is evaluated
    micros: int = 1  # micro-batches of the current update (grad_accum, or fewer for a small last batch)
    _acc: list[float] = field(default_factory=lambda: [0.0, 0.0])  # grad_accum: loss sum, valid positions

    # ----- set-up ------------------------------------------------------------------------
    @classmethod
    def start(cls, cfg: TrainConfig, alg: Algorithm, params: Any, problem: Problem) -> Run:
        """Device, policy, optimizer and schedule, evaluation set; resumed from a checkpoint if asked."""
        world, rank, device = setup_distributed(cfg.device)
        if device.type == "cuda":
            torch.set_float32_matmul_precision("high")  # TF32 matmuls where the GPU has them
        seed_everything(cfg.seed)  # identical init on every rank
        policy = build_policy(cfg, problem.task, device)  # `hf:<name>` presets: an HF causal-LM student
        model: torch.nn.Module = policy
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            model = DDP(policy, device_ids=[device.index] if device.type == "cuda" else None)
        fwd = maybe_compile(model, {"on": True, "off": False}.get(cfg.compile, "auto"))
        opt = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
        per_update = cfg.batch_size * world
        # What a trajectory costs, as the algorithm declares it (BudgetExceeded if it spends more).
        budget = Budget(cfg.budget_trajectories, cfg.budget_queries,
                        queries_per_trajectory=alg.queries_per_trajectory(params, problem.task.horizon))
        base_updates = budget.updates(per_update, world)
        total_updates = base_updates * int(getattr(params, "epochs", 1))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg, total_updates))
        gen = torch.Generator(device=device).manual_seed(cfg.seed * 1_000_003 + rank)
        ctx = Context(cfg=cfg, task=problem.task, expert=problem.expert, clean_expert=problem.clean_expert,
                      policy=policy, device=device, gen=gen, budget=budget, world_size=world, rank=rank,
                      batch_size=cfg.batch_size)
        held_out = HeldOut.for_run(cfg, problem, device)
        eval_interval = max(1, round(budget.eval_every(cfg.eval_every, per_update) / per_update))
        if cfg.checkpoint_dir and os.path.isfile(cfg.checkpoint_dir):
            raise ValueError(f"checkpoint_dir {cfg.checkpoint_dir} is a file; give a folder (the checkpoint is "
                             f"{CHECKPOINT_NAME} inside it)")
        ckpt_path = os.path.join(cfg.checkpoint_dir, CHECKPOINT_NAME) if cfg.checkpoint_dir else None
        if alg.setup is not None:  # deterministic (own seeds, disk cache), so it is rerun on resume
            alg.setup(ctx, params)
        oracles = (problem.expert, problem.clean_expert)
        ema = make_ema(policy) if cfg.ema_decay > 0 else None
        ck = None
        if cfg.resume and ckpt_path:  # rank 0 reads the file; every rank resumes from it (shared disk or not)
            ck = on_rank0(lambda: load_checkpoint(ckpt_path) if os.path.exists(ckpt_path) else None, rank, world)
        if ck is not None:  # last: nothing may draw randomness between here and the first update
            restore(ck, cfg, ctx, opt, sched, ckpt_path, oracles, ema)
        curve = ck["curve"] if ck is not None else []
        first_update = ck["update"] + 1 if ck is not None else 0
        monitor = Monitor(cfg, total=total_updates, initial=first_update, active=rank == 0)
        policy.train()
        return cls(cfg, alg, ctx, fwd, opt, sched, held_out, monitor, base_updates, total_updates, eval_interval,
                   cfg.checkpoint_every or eval_interval, ckpt_path, oracles, first_update, curve,
                   t0=time.perf_counter() - (ck["wall_time"] if ck is not None else 0.0),
                   last_eval_update=curve[-1]["update"] if curve else -1, ema=ema)

    # ----- around the three steps --------------------------------------------------------------
    def begin(self, update: int) -> bool:
        """Size this update's batch: the last one of the budget cut to what is left (later epochs of
        BC re-read spent data at the full batch size); False if nothing is left to spend."""
        ctx, k = self.ctx, self.cfg.grad_accum
        ctx.update = update
        if update >= self.base_updates:
            ctx.batch_size, self.micros = self.cfg.batch_size, min(k, self.cfg.batch_size)
            return True
        ctx.batch_size, total = ctx.budget.share(self.cfg.batch_size, ctx.world_size, ctx.rank)
        # As many micro-batches on every rank (each one a DDP forward and backward, collectives), none
        # empty: at most the smallest rank's share (shares differ by at most one).
        self.micros = min(k, total // ctx.world_size)
        return total > 0

    def micro_batches(self) -> Iterator[int]:
        """The micro-batch indices of this update, each with its share of the batch in ``ctx.batch_size``
        (shares differ by at most one prompt and sum to the update's batch): ``grad_accum`` of them, or
        fewer where the batch (the smallest rank's, under DDP) is smaller, so none is empty and every
        rank runs as many (:meth:`begin`)."""
        ctx, k = self.ctx, self.micros
        whole = ctx.batch_size
        if self.cfg.grad_accum > 1:  # the update's gradients accumulate from zero
            self.opt.zero_grad(set_to_none=True)
            self._acc = [0.0, 0.0]
        for micro in range(k):
            ctx.batch_size = (whole + micro) // k
            yield micro
        ctx.batch_size = whole

    def oracle_queries(self) -> int:
        return self.ctx.expert.num_queries + self.ctx.clean_expert.num_queries

    def charge(self, batch: Batch, queried_before: int) -> None:
        """What the batch spent, all ranks (its own count, or what the oracles counted); over a cap
        it raises :class:`~agents.budget.BudgetExceeded`. A collective: every rank charges every batch."""
        ctx = self.ctx
        queries = batch.queries if batch.queries is not None else self.oracle_queries() - queried_before
        ctx.budget.charge(*sum_over_ranks((batch.trajectories, queries), ctx.device, ctx.world_size))

    def update(self, batch: Batch, params: Any, micro: int = 0) -> float:
        """The masked mean of the per-position loss on the batch's prefixes; one optimizer step.

        With ``grad_accum`` = k > 1 this is micro-batch ``micro`` of k: the masked *sum* is
        back-propagated (gradients accumulate), and after the last one the gradients are divided by
        the valid positions of all k, so the step is the token mean over the whole update's batch.
        """
        ctx, cfg = self.ctx, self.cfg
        k = cfg.grad_accum
        with autocast_context(ctx.device, cfg.precision):
            tokens = torch.cat([batch.prompts, batch.chain[:, :-1]], dim=1)
            # Prompt rows only give keys and values: the head runs on the chain positions.
            logits = self.fwd(tokens, first=batch.prompts.shape[1] - 1)  # (B, H, A)
        per_pos = self.alg.loss(logits.float(), batch, params)  # (B, H)
        valid = ctx.task.valid_along(batch.prompts, batch.chain).float()
        if k > 1:
            return self._accumulate(per_pos, valid, micro)
        loss = (per_pos * valid).sum() / valid.sum().clamp_min(1.0)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        return self._step(float(loss.detach()))

    def _accumulate(self, per_pos: torch.Tensor, valid: torch.Tensor, micro: int) -> float:
        """Micro-batch ``micro`` of the update's :attr:`micros`: back-propagate the masked sum; step after the last."""
        total = (per_pos * valid).sum()
        last = micro == self.micros - 1
        sync = getattr(self.fwd, "no_sync", None)  # DDP: all-reduce once, on the last micro-batch
        with (contextlib.nullcontext() if last or sync is None else sync()):
            total.backward()
        self._acc[0] += float(total.detach())
        self._acc[1] += float(valid.sum())
        if not last:
            return self._acc[0] / max(self._acc[1], 1.0)
        # DDP averaged the ranks' summed gradients; the token mean over every rank's batch divides by the
        # valid positions of all ranks over the world size (the same n on every rank: shares may differ).
        ctx = self.ctx
        n = max(sum_over_ranks((int(self._acc[1]),), ctx.device, ctx.world_size)[0] / ctx.world_size, 1.0)
        for p in self.ctx.policy.parameters():
            if p.grad is not None:
                p.grad.div_(n)
        return self._step(self._acc[0] / max(self._acc[1], 1.0))

    def _step(self, loss: float) -> float:
        """Clip, one optimizer step, one schedule step; returns `loss`."""
        cfg, ctx = self.cfg, self.ctx
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(ctx.policy.parameters(), cfg.grad_clip)
        self.opt.step()
        self.sched.step()
        if self.ema is not None:
            update_ema(self.ema, ctx.policy, self.cfg.ema_decay, ctx.update)
        return loss

    def end(self, update: int, train_loss: float) -> bool:
        """Evaluate, checkpoint and report when due; True when the run stops here.

        Under DDP every rank runs all of this (every branch below depends only on what all ranks share):
        rank 0 evaluates and writes inside :func:`~agents.device.on_rank0`, and its evaluation row
        reaches every rank, so all ranks keep the same curve and stop at the same update."""
        ctx, cfg = self.ctx, self.cfg
        last = update == self.total_updates - 1
        world, rank = ctx.world_size, ctx.rank
        if (update + 1) % self.eval_interval == 0 or last:
            row = {"update": update + 1, "trajectories": ctx.trajectories, "queries": ctx.budget.queries,
                   "wall_time": time.perf_counter() - self.t0, "train_loss": train_loss}
            metrics = on_rank0(lambda: {**row, **self.held_out.evaluate(self.evaluated, cfg.precision)}, rank, world)
            self.curve.append(metrics)
            self.last_eval_update = update
            self.monitor.log(metrics)
        if self.ckpt_path and ((update + 1) % self.ckpt_every == 0 or last):
            rng = gather_states(rng_state(ctx.gen, self.oracles), world)  # every rank's streams, every rank
            on_rank0(lambda: save_checkpoint(self.ckpt_path, self.checkpoint(update, rng)), rank, world)
        self.monitor.advance()
        stop = (cfg.stop_at is not None and self.last_eval_update == update
                and self.curve[-1].get("greedy_full_exact", 0.0) >= cfg.stop_at)
        return stop or last

    def checkpoint(self, update: int, rng: list[Any]) -> dict[str, Any]:
        """The checkpoint's payload at `update`; `rng`: every rank's random streams (:func:`gather_states`)."""
        ctx = self.ctx
        return {"identity": identity_key(self.cfg), "config": self.cfg.to_dict(), "model": ctx.policy.state_dict(),
                "opt": self.opt.state_dict(), "sched": self.sched.state_dict(), "rng": rng, "update": update,
                "trajectories": ctx.trajectories, "queries": ctx.budget.queries, "curve": self.curve,
                "wall_time": time.perf_counter() - self.t0,
                "state": {k: v for k, v in ctx.state.items() if k != "dataset"},
                **({"ema": self.ema.state_dict()} if self.ema is not None else {})}

    @property
    def evaluated(self) -> torch.nn.Module:
        """The weights evaluated and returned: the EMA when ``cfg.ema_decay`` > 0, else the trained ones."""
        return self.ema if self.ema is not None else self.ctx.policy

    def finish(self) -> RunResult:
        self.monitor.close()
        cfg, ctx = self.cfg, self.ctx
        return RunResult(
            algo=cfg.algo, env_id=cfg.env_id, env_kwargs=dict(cfg.env_kwargs), config=cfg.to_dict(),
            seed=cfg.seed, final_metrics=dict(self.curve[-1]) if self.curve else {}, curve=self.curve,
            trajectories=ctx.trajectories, queries=ctx.budget.queries, wall_time=time.perf_counter() - self.t0,
            device=str(ctx.device), uses_clean_expert=self.alg.uses_clean_expert, policy=self.evaluated)


def make_ema(policy: torch.nn.Module) -> torch.nn.Module:
    """A frozen copy of the policy that :func:`update_ema` moves towards the trained weights."""
    ema = copy.deepcopy(policy)
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def update_ema(ema: torch.nn.Module, policy: torch.nn.Module, decay: float, update: int) -> None:
    """ema <- d ema + (1 - d) policy, parameter by parameter (buffers copied), d = min(decay, (1 + u) / (10 + u)).

    The warm-up of d (as TensorFlow's and timm's EMA) keeps the average from dragging the
    random initialisation along for ~1 / (1 - decay) updates.
    """
    d = min(decay, (1.0 + update) / (10.0 + update))
    for e, p in zip(ema.parameters(), policy.parameters()):
        e.lerp_(p.detach(), 1.0 - d)
    for e, b in zip(ema.buffers(), policy.buffers()):
        e.copy_(b)


def restore(ck: dict[str, Any], cfg: TrainConfig, ctx: Context, opt: torch.optim.Optimizer,
            sched: torch.optim.lr_scheduler.LambdaLR, path: str, oracles: tuple[Any, ...] = (),
            ema: torch.nn.Module | None = None) -> None:
    """Put a checkpoint's model, optimizer, schedule, random streams, algorithm state, EMA and spending back."""
    check_resumable(ck, cfg, path)
    ranks = len(ck["rng"] if "rng" in ck else ck["gen"])
    if ranks != ctx.world_size:  # every rank's random streams are in it, one per rank
        raise ValueError(f"checkpoint `{path}` was written by a run of {ranks} process(es) and this run has "
                         f"{ctx.world_size}; resume it with as many (torchrun --nproc_per_node {ranks}, or no "
                         "torchrun for 1), or use a fresh --checkpoint-dir")
    ctx.policy.load_state_dict(ck["model"])
    if ema is not None:
        ema.load_state_dict(ck["ema"])
    opt.load_state_dict(ck["opt"])
    sched.load_state_dict(ck["sched"])
    # Checkpoints written before every stream was kept hold the run's generator alone ("gen").
    set_rng_state(ck["rng"][ctx.rank] if "rng" in ck else {"run": ck["gen"][ctx.rank]}, ctx.gen, oracles)
    ctx.state.update({k: (v.to(ctx.device) if torch.is_tensor(v) else v) for k, v in ck["state"].items()})
    ctx.budget.trajectories, ctx.budget.queries = ck["trajectories"], ck["queries"]


def seed_everything(seed: int) -> None:
    """Seed torch's (CPU and CUDA), numpy's and Python's global generators, as SB3's
    ``set_random_seed`` does: whatever draws from them during the run is reproducible."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def lr_lambda(cfg: TrainConfig, total_updates: int):
    """Linear warm-up, then constant or cosine (to ``min_lr_ratio`` at the end of the budget)."""
    floor = cfg.min_lr_ratio

    def f(u: int) -> float:
        if u < cfg.warmup_updates:
            return (u + 1) / cfg.warmup_updates
        if cfg.schedule == "cosine":
            frac = min(1.0, (u - cfg.warmup_updates) / max(1, total_updates - cfg.warmup_updates))
            return floor + (1.0 - floor) * 0.5 * (1 + math.cos(math.pi * frac))
        return 1.0
    return f


__all__ = ["Run", "lr_lambda", "make_ema", "restore", "seed_everything", "train", "update_ema"]
