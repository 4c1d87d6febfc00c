"""PPO from the task reward alone: the reinforcement-learning reference row of the reports.

Stable-Baselines3's PPO on the native vector env of the run's problem (through
:func:`~noisy_expert_gym.bridges.sb3.make_sb3_vec_env`), with a token-embedding
features extractor (:class:`~agents.sb3_features.TokenFeaturesExtractor`: token +
position embeddings, a per-token MLP and a mean over the written tokens by
default; ``extractor=gru`` runs a GRU over them) instead of SB3's flattening of
the observation. It shows what the reward alone buys at each horizon.

Defaults (``learning_rate=1e-3``, ``extractor=mean``, 4 episodes per sub-env
per rollout) were picked on m = 3, dense reward, 16k episodes, CPU: the return
rose from 0.14 (chance: 1/7) to 0.54 with ``mean`` and to 0.39 with ``gru``
(whose final hidden state must carry the operands past the padding); with
``gru`` at SB3's default lr 3e-4 it had not moved after 4k episodes.

- **Reward**: the env's reward as configured, i.e. ``final`` by default (1 iff
  the answer is right, at the last step: the paper-style RL reference). Pass
  ``--env-kw reward=dense`` (1/m per step that matches the clean expert) or
  ``reward=full`` for the shaped / stricter variants.
- **Budget** (:class:`~agents.budget.Budget`): ``budget_trajectories`` counts
  episodes, a hard cap. Rollouts are whole episodes (``n_steps = episodes_per_env *
  horizon`` per sub-env), so a rollout spends ``n_envs * episodes_per_env`` episodes;
  the last rollout is cut to the rounds of ``n_envs`` episodes the budget has left
  (the sub-envs play in lockstep, so the run spends the largest multiple of
  ``n_envs`` within the budget: all of it when ``n_envs`` divides it).
- **Queries**: PPO never queries the expert, noisy or clean: ``queries = 0``, and
  ``Algorithm.queries_expert`` is False (the boards refuse it).
- **Evaluation, logging, checkpoints**: the shared ones (:mod:`agents.evaluation`
  on the run's held-out prompts: greedy = the deterministic (argmax) PPO action,
  sampled = a draw from its action distribution, ``val_loss`` = the
  cross-entropy of its action distribution on the clean chains;
  :mod:`agents.monitor`; :mod:`agents.checkpoint`).
- **Refused**: the imitation learners' settings of TrainConfig (:data:`UNUSED`: ``lr``,
  ``batch_size``, ``preset``, ``model``, the schedule, ``budget_queries``, ...) at any
  value but their default: PPO's own are the algorithm parameters below, and a value given
  there would be ignored. ``grad_clip`` is PPO's ``max_grad_norm``. On CPU the run uses ``cpu_threads``
  torch threads (default 1; 0 leaves torch's setting). ``resume`` is not
  supported; with ``checkpoint_dir`` the SB3 model is saved as ``ppo.zip`` (its
  TrainConfig as ``ppo.json``) at every evaluation: ``neg record --checkpoint DIR``
  replays it.
"""

from __future__ import annotations

import os
import time
import warnings
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F

from agents.algos.base import Algorithm, RunKit, never, register
from agents.contracts import StepFn
from noisy_expert_gym.contracts import TaskCore
from noisy_expert_gym.declarations import (
    Declared,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    UnitInterval,
)
from noisy_expert_gym.utils import atomic_path

if TYPE_CHECKING:
    from agents.config import TrainConfig
    from agents.result import RunResult
    from noisy_expert_gym.problems import Problem



class PPOParams(Declared):
    n_envs: PositiveInt = 16
    """Sub-envs of the vector env."""
    episodes_per_env: PositiveInt = 4
    """Whole episodes each sub-env plays per rollout."""
    n_epochs: PositiveInt = 4
    """PPO epochs over each rollout."""
    minibatch_size: PositiveInt = 256
    """PPO minibatch size (at most the rollout's size)."""
    learning_rate: PositiveFloat = 1e-3
    """Adam learning rate."""
    gamma: UnitInterval = 1.0
    """Discount factor."""
    gae_lambda: UnitInterval = 0.95
    """GAE lambda."""
    clip_range: PositiveFloat = 0.2
    """PPO's ratio clip."""
    ent_coef: NonNegativeFloat = 0.01
    """Entropy bonus coefficient."""
    vf_coef: NonNegativeFloat = 0.5
    """Value-loss coefficient."""
    extractor: Literal["mean", "gru"] = "mean"
    """Token features: `mean` (per-token MLP, mean over the written tokens) or `gru`."""
    embed_dim: PositiveInt = 32
    """Token and position embedding width."""
    hidden: PositiveInt = 64
    """Features width (MLP width / GRU hidden size)."""
    cpu_threads: NonNegativeInt = 1
    """Torch threads on CPU (0: leave torch's setting)."""


# --------------------------------------------------------------------------- the policy as a token policy
class SB3TokenPolicy(torch.nn.Module):
    """An SB3 actor-critic policy as a :class:`~agents.contracts.Policy`.

    ``generate``, ``chain_logits`` and ``forward`` let evaluation, ``neg record`` and
    anything else that rolls a student out use a PPO policy like the imitation students.
    """

    def __init__(self, sb3_policy: Any, task: TaskCore) -> None:
        super().__init__()
        self.sb3 = sb3_policy
        self.task = task

    def _logits(self, obs: torch.Tensor) -> torch.Tensor:
        dist = self.sb3.get_distribution(obs.to(self.sb3.device).float())
        return dist.distribution.logits  # (B, A)

    @torch.no_grad()
    def generate(self, prompts: torch.Tensor, horizon: int, temperature: float = 0.0,
                 generator: torch.Generator | None = None, step_fn: StepFn | None = None) -> torch.Tensor:
        """Roll out ``horizon`` actions: argmax (``temperature=0``) or sampled; ``(B, H)``."""
        chain = prompts.new_zeros((prompts.shape[0], horizon), dtype=torch.long)
        for t in range(horizon):
            logits = self._logits(self.task.observe(prompts, chain[:, :t]))
            if temperature == 0:
                a = logits.argmax(-1)
            else:
                a = torch.multinomial(F.softmax(logits.float() / temperature, -1), 1, generator=generator)[:, 0]
            a = a.to(chain.device)
            chain[:, t] = a if step_fn is None else step_fn(t, chain, a)
        return chain

    @torch.no_grad()
    def forward(self, tokens: torch.Tensor, first: int = 0) -> torch.Tensor:
        """``(B, T - first, A)`` logits after every prefix ``tokens[:, :t+1]``, t >= first
        (zeros inside the prompt, where PPO's policy does not act)."""
        P = self.task.prompt_len
        prompts, chain = tokens[:, :P], tokens[:, P:]
        rows = torch.stack([self._logits(self.task.observe(prompts, chain[:, :t]))
                            for t in range(chain.shape[1] + 1)], dim=1)  # (B, T - P + 1, A)
        full = torch.cat([rows.new_zeros((rows.shape[0], P - 1, rows.shape[2])), rows], dim=1)
        return full[:, first:]

    def chain_logits(self, prompts: torch.Tensor, chain: torch.Tensor) -> torch.Tensor:
        """Logits at every prefix ``chain[:, :t]``, t = 0..H-1: ``(B, H, A)``."""
        return self(torch.cat([prompts, chain[:, :-1]], dim=1), first=prompts.shape[1] - 1)


# --------------------------------------------------------------------------- the run
def run(cfg: TrainConfig, params: PPOParams, problem: Problem, kit: RunKit) -> RunResult:
    """Train SB3 PPO on ``problem`` for ``cfg.budget_trajectories`` episodes; a RunResult.

    ``kit`` is the trainer's plumbing: device, budget, held-out evaluation, monitor, config file, result.
    """
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    from agents.sb3_features import TokenFeaturesExtractor
    from noisy_expert_gym.bridges.sb3 import make_sb3_vec_env

    if cfg.resume:
        raise ValueError("`ppo` does not support resume; start a fresh run (its model is saved as "
                         f"{os.path.basename(kit.checkpoint or '')} in checkpoint_dir)")
    device = kit.device
    budget, task, n_envs = kit.budget, problem.task, params.n_envs
    if cfg.budget_trajectories < n_envs:
        raise ValueError(f"budget_trajectories={cfg.budget_trajectories} is less than one round of PPO's "
                         f"n_envs={n_envs} sub-envs (they play in lockstep); raise the budget or lower n_envs")
    per_rollout = n_envs * params.episodes_per_env
    phases = rollout_plan(cfg.budget_trajectories, n_envs, params.episodes_per_env)
    n_steps = phases[0][0] * task.horizon
    monitor = kit.monitor(sum(e * k for e, k in phases) * n_envs, "ep")  # first: its error names the extra
    venv = make_sb3_vec_env(problem=problem, num_envs=n_envs)
    with warnings.catch_warnings():  # m is often prime: a truncated last minibatch is expected
        warnings.filterwarnings("ignore", message=".*mini-batch size.*")
        model = PPO(
            "MlpPolicy", venv, learning_rate=params.learning_rate, n_steps=n_steps,
            batch_size=min(params.minibatch_size, n_steps * n_envs), n_epochs=params.n_epochs,
            gamma=params.gamma, gae_lambda=params.gae_lambda, clip_range=params.clip_range,
            ent_coef=params.ent_coef, vf_coef=params.vf_coef, max_grad_norm=cfg.grad_clip or 1e9,
            policy_kwargs={"features_extractor_class": TokenFeaturesExtractor,
                           "features_extractor_kwargs": {"embed_dim": params.embed_dim,
                                                         "features_dim": params.hidden, "kind": params.extractor}},
            tensorboard_log=cfg.tensorboard_dir, seed=cfg.seed, device=device, verbose=0)
    policy = SB3TokenPolicy(model.policy, task)
    held_out = kit.held_out()
    eval_every = budget.eval_every(cfg.eval_every, per_rollout)
    ckpt = kit.checkpoint
    curve: list[dict[str, float]] = []
    t0 = time.perf_counter()

    class Tracker(BaseCallback):
        """Counts episodes and returns; evaluates after each training phase that crosses eval_every."""

        def __init__(self) -> None:
            super().__init__()
            self.rollouts, self.next_eval, self.stop = 0, eval_every, False
            self.returns: list[float] = []
            self.running = torch.zeros(n_envs, dtype=torch.float64)

        def _on_step(self) -> bool:
            dones = self.locals["dones"]
            self.running += torch.as_tensor(self.locals["rewards"], dtype=torch.float64)
            for i in dones.nonzero()[0]:
                self.returns.append(float(self.running[i]))
                self.running[i] = 0.0
            budget.charge(int(dones.sum()), 0)
            monitor.advance(int(dones.sum()))
            return not self.stop

        def _on_rollout_start(self) -> None:  # the previous rollout has been trained on
            if budget.trajectories >= self.next_eval and self.rollouts > 0:
                self.evaluate()

        def _on_rollout_end(self) -> None:
            self.rollouts += 1

        def evaluate(self) -> None:
            while self.next_eval <= budget.trajectories:
                self.next_eval += eval_every
            m: dict[str, float] = {
                "update": self.rollouts, "trajectories": budget.trajectories, "queries": 0,
                "wall_time": time.perf_counter() - t0,
                "train_loss": float(self.model.logger.name_to_value.get("train/loss", float("nan"))),
                "train_return": sum(self.returns) / len(self.returns) if self.returns else float("nan")}
            self.returns = []
            policy.eval()  # SB3 switches modes itself while it trains
            m.update(held_out.evaluate(policy, "fp32"))
            curve.append(m)
            monitor.log(m)
            if ckpt is not None:
                save(model, kit, ckpt)
            self.stop = cfg.stop_at is not None and m["greedy_full_exact"] >= cfg.stop_at

    threads = torch.get_num_threads()
    if device.type == "cpu" and params.cpu_threads:
        # Small MLPs on small batches: extra intra-op threads mostly synchronise (a GRU step
        # measured 17x slower with 2 threads than with 1 on a busy 2-core machine).
        torch.set_num_threads(params.cpu_threads)
    tracker = Tracker()
    try:
        for i, (episodes, rollouts) in enumerate(phases):
            if tracker.stop:
                break
            if i > 0:  # the last, shorter rollout: a rollout buffer of its length
                set_rollout_steps(model, episodes * task.horizon)
            model.learn(total_timesteps=rollouts * episodes * task.horizon * n_envs, callback=tracker,
                        tb_log_name="sb3", reset_num_timesteps=i == 0)
        if not curve or curve[-1]["trajectories"] != budget.trajectories:
            tracker.evaluate()
    finally:
        torch.set_num_threads(threads)
        monitor.close()
        venv.close()
    return kit.result(final_metrics=dict(curve[-1]) if curve else {}, curve=curve, trajectories=budget.trajectories,
                      queries=0, wall_time=time.perf_counter() - t0, uses_clean_expert=False, policy=policy)


def rollout_plan(budget: int, n_envs: int, episodes_per_env: int) -> list[tuple[int, int]]:
    """``[(episodes per sub-env per rollout, rollouts), ...]`` that play the most whole rounds
    of ``n_envs`` episodes within `budget`: full rollouts, then one shorter rollout for the rest."""
    full, rest = divmod(budget // n_envs, episodes_per_env)
    return [p for p in ((episodes_per_env, full), (rest, 1)) if p[0] and p[1]]


def set_rollout_steps(model: Any, n_steps: int) -> None:
    """Give an SB3 on-policy model rollouts of `n_steps` per sub-env (a fresh rollout buffer);
    what ``OnPolicyAlgorithm._setup_model`` builds, without rebuilding the policy."""
    model.n_steps = n_steps
    model.rollout_buffer = model.rollout_buffer_class(
        n_steps, model.observation_space, model.action_space, device=model.device, gamma=model.gamma,
        gae_lambda=model.gae_lambda, n_envs=model.n_envs, **model.rollout_buffer_kwargs)


def save(model: Any, kit: RunKit, path: str) -> None:
    """The SB3 model as ``path`` (a zip) and the run's TrainConfig beside it (``.json``), both atomically."""
    with atomic_path(path, suffix=".zip") as tmp:
        model.save(tmp)
    kit.save_config(os.path.splitext(path)[0] + ".json")


#: TrainConfig fields PPO does not read (refused at any value but the default, :class:`~agents.config.TrainConfig`).
UNUSED = frozenset({"lr", "batch_size", "preset", "model", "schedule", "warmup_updates", "weight_decay", "min_lr_ratio",
                    "budget_queries", "grad_accum", "prompt_order", "checkpoint_every", "init_checkpoint",
                    "teacher_checkpoint", "teacher_t", "expert_form", "precision", "compile"})


def _never(*_: Any) -> Any:
    raise RuntimeError("`ppo` runs through Algorithm.run, not the student-prefix loop")


register(Algorithm(
    "ppo", "RL reference: SB3 PPO from the task reward alone (no expert queries), token-embedding features",
    PPOParams, collect=_never, loss=_never, run=run, queries_expert=False, needs_probs=never, unused=UNUSED,
    unused_reason="ppo trains SB3's PPO (fp32, its own network, optimiser and rollouts) from its algorithm parameters "
                  "(--algo-kw learning_rate=..., n_envs=..., ...); these are the imitation learners' settings"))
