"""PPO from the task reward alone: the reinforcement-learning reference row of the boards.

Stable-Baselines3's PPO on the native vector env (through
:class:`~noisy_expert_gym.bridges.sb3.SB3VecEnv`), with a token-embedding features
extractor (:class:`~noisy_expert_gym.bridges.sb3.TokenFeaturesExtractor`: token +
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
- **Budget**: ``budget_trajectories`` counts episodes. Rollouts are whole
  episodes (``n_steps = episodes_per_env * horizon`` per sub-env), so a rollout
  spends ``n_envs * episodes_per_env`` episodes and the run spends the budget
  rounded up to whole rollouts.
- **Queries**: PPO never queries the expert, noisy or clean: ``queries = 0``.
- **Evaluation**: the trainer's metrics on the trainer's held-out prompts
  (same seed, same device): greedy = the deterministic (argmax) PPO action,
  sampled = a draw from its action distribution, ``val_loss`` = the
  cross-entropy of its action distribution on the clean chains.
- **Not used**: ``lr`` / ``batch_size`` / ``preset`` / ``model`` / ``schedule`` /
  ``warmup_updates`` / ``weight_decay`` of TrainConfig (the imitation
  learners' settings); PPO's own are the algorithm parameters below.
  ``grad_clip`` is PPO's ``max_grad_norm``. On CPU the run uses
  ``cpu_threads`` torch threads (default 1; 0 leaves torch's setting). ``resume`` is not supported; with
  ``checkpoint_dir`` the SB3 model is saved as ``ppo.zip`` (its TrainConfig as
  ``ppo.json``) at every evaluation: ``neg record --checkpoint DIR`` replays it.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from typing import Any

import torch
import torch.nn.functional as F

from agents.algos.registry import Algorithm, non_negative, one_of, register, unit_interval

CHECKPOINT_NAME = "ppo.zip"
EXTRACTORS = ("mean", "gru")


# --------------------------------------------------------------------------- the policy as a token policy
class SB3TokenPolicy(torch.nn.Module):
    """An SB3 actor-critic policy behind the :class:`~agents.policy.TransformerPolicy` entry points.

    ``generate`` and ``chain_logits`` let evaluation, ``neg record`` and anything
    else that rolls a student out use a PPO policy like the imitation students.
    """

    def __init__(self, sb3_policy: Any, task: Any) -> None:
        super().__init__()
        self.sb3 = sb3_policy
        self.task = task

    def _logits(self, obs: torch.Tensor) -> torch.Tensor:
        dist = self.sb3.get_distribution(obs.to(self.sb3.device).float())
        return dist.distribution.logits  # (B, A)

    @torch.no_grad()
    def generate(self, prompts: torch.Tensor, horizon: int, temperature: float = 0.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Roll out ``horizon`` actions: argmax (``temperature=0``) or sampled; ``(B, H)``."""
        chain = prompts.new_empty((prompts.shape[0], 0), dtype=torch.long)
        for _ in range(horizon):
            logits = self._logits(self.task.observe(prompts, chain))
            if temperature == 0:
                a = logits.argmax(-1)
            else:
                probs = F.softmax(logits.float() / temperature, -1)
                a = torch.multinomial(probs, 1, generator=generator)[:, 0]
            chain = torch.cat([chain, a.to(chain.device)[:, None]], dim=1)
        return chain

    @torch.no_grad()
    def chain_logits(self, prompts: torch.Tensor, chain: torch.Tensor) -> torch.Tensor:
        """Logits at every prefix ``chain[:, :t]``, t = 0..H-1: ``(B, H, A)``."""
        return torch.stack([self._logits(self.task.observe(prompts, chain[:, :t]))
                            for t in range(chain.shape[1])], dim=1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self._logits(obs)


@torch.no_grad()
def evaluate(policy: SB3TokenPolicy, task: Any, prompts: torch.Tensor, clean_chain: torch.Tensor,
             seed: int) -> dict[str, float]:
    """The trainer's evaluation metrics for a PPO policy (see ``agents.trainer.evaluate``)."""
    policy.sb3.set_training_mode(False)
    gen = torch.Generator(device=prompts.device).manual_seed(seed)
    losses, greedy, sampled = [], [], []
    valid = task.valid_along(prompts, clean_chain).float()
    for i in range(0, prompts.shape[0], 1024):
        p, c, v = prompts[i : i + 1024], clean_chain[i : i + 1024], valid[i : i + 1024]
        logits = policy.chain_logits(p, c).float().to(p.device)  # (B, H, A)
        ce = F.cross_entropy(logits.flatten(0, 1), c.flatten(), reduction="none").view_as(v)
        losses.append(((ce * v).sum(1) / v.sum(1)).cpu())
        g = policy.generate(p, task.horizon, temperature=0.0)
        s = policy.generate(p, task.horizon, temperature=1.0, generator=gen)
        greedy.append({k: x.float().cpu() for k, x in task.metrics(p, g).items()})
        sampled.append({k: x.float().cpu() for k, x in task.metrics(p, s).items()})
    out = {"val_loss": float(torch.cat(losses).mean())}
    for name, rows in (("greedy", greedy), ("sampled", sampled)):
        for k in rows[0]:
            out[f"{name}_{k}"] = float(torch.cat([r[k] for r in rows]).mean())
    return out


# --------------------------------------------------------------------------- the run
def run(cfg: Any, params: dict[str, Any]) -> Any:
    """Train SB3 PPO on ``cfg.env_id`` for ``cfg.budget_trajectories`` episodes; a RunResult."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    from agents.device import resolve_device
    from agents.result import RunResult
    from agents.trainer import _log_scalars, _tensorboard, make_env
    from noisy_expert_gym.bridges.sb3 import TokenFeaturesExtractor, make_sb3_vec_env

    if cfg.resume:
        raise ValueError("`ppo` does not support resume; start a fresh run (its model is saved as "
                         f"{CHECKPOINT_NAME} in checkpoint_dir)")
    device = resolve_device(cfg.device)
    env = make_env(cfg.env_id, cfg.env_kwargs)  # validates the id and kwargs; gives the task core
    task = env.unwrapped.task
    env.close()
    n_envs = int(params["n_envs"])
    per_rollout = n_envs * int(params["episodes_per_env"])
    rollouts = math.ceil(cfg.budget_trajectories / per_rollout)
    n_steps = int(params["episodes_per_env"]) * task.horizon
    writer = _tensorboard(cfg.tensorboard_dir)  # first: its error names the extra to install
    venv = make_sb3_vec_env(cfg.env_id, num_envs=n_envs, **cfg.env_kwargs)
    with warnings.catch_warnings():  # m is often prime: a truncated last minibatch is expected
        warnings.filterwarnings("ignore", message=".*mini-batch size.*")
        model = PPO(
            "MlpPolicy", venv, learning_rate=params["learning_rate"], n_steps=n_steps,
            batch_size=min(int(params["minibatch_size"]), n_steps * n_envs), n_epochs=int(params["n_epochs"]),
            gamma=params["gamma"], gae_lambda=params["gae_lambda"], clip_range=params["clip_range"],
            ent_coef=params["ent_coef"], vf_coef=params["vf_coef"],
            max_grad_norm=cfg.grad_clip if cfg.grad_clip > 0 else 1e9,
            policy_kwargs={"features_extractor_class": TokenFeaturesExtractor,
                           "features_extractor_kwargs": {"embed_dim": int(params["embed_dim"]),
                                                         "features_dim": int(params["hidden"]),
                                                         "kind": params["extractor"]}},
            tensorboard_log=cfg.tensorboard_dir, seed=cfg.seed, device=device, verbose=0)
    policy = SB3TokenPolicy(model.policy, task)

    # The trainer's held-out prompts: same generator, seed and device.
    eval_prompts = task.sample_prompts(torch.Generator(device=device).manual_seed(cfg.eval_seed),
                                       cfg.eval_prompts, device=device)
    eval_clean = task.clean_chains(eval_prompts)
    eval_every = cfg.eval_every or max(per_rollout, cfg.budget_trajectories // 20)
    ckpt = os.path.join(cfg.checkpoint_dir, CHECKPOINT_NAME) if cfg.checkpoint_dir else None
    curve: list[dict[str, float]] = []
    t0 = time.perf_counter()

    class Tracker(BaseCallback):
        """Counts episodes and returns; evaluates after each training phase that crosses eval_every."""

        def __init__(self) -> None:
            super().__init__()
            self.episodes, self.rollouts, self.next_eval = 0, 0, eval_every
            self.returns: list[float] = []
            self.running = None
            self.stop = False
            self.bar = None

        def _on_training_start(self) -> None:
            self.running = torch.zeros(n_envs, dtype=torch.float64)
            if cfg.progress:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=cfg.budget_trajectories, desc="ppo", unit="ep", dynamic_ncols=True)

        def _on_step(self) -> bool:
            dones = self.locals["dones"]
            self.running += torch.as_tensor(self.locals["rewards"], dtype=torch.float64)
            for i in dones.nonzero()[0]:
                self.returns.append(float(self.running[i]))
                self.running[i] = 0.0
            self.episodes += int(dones.sum())
            if self.bar is not None:
                self.bar.update(int(dones.sum()))
            return not self.stop

        def _on_rollout_start(self) -> None:  # the previous rollout has been trained on
            if self.episodes >= self.next_eval and self.rollouts > 0:
                self.evaluate()

        def _on_rollout_end(self) -> None:
            self.rollouts += 1

        def _on_training_end(self) -> None:
            if not curve or curve[-1]["trajectories"] != self.episodes:
                self.evaluate()
            if self.bar is not None:
                self.bar.close()

        def evaluate(self) -> None:
            while self.next_eval <= self.episodes:
                self.next_eval += eval_every
            m: dict[str, float] = {
                "update": self.rollouts, "trajectories": self.episodes, "queries": 0,
                "wall_time": time.perf_counter() - t0,
                "train_loss": float(self.model.logger.name_to_value.get("train/loss", float("nan"))),
                "train_return": sum(self.returns) / len(self.returns) if self.returns else float("nan")}
            self.returns = []
            m.update(evaluate(policy, task, eval_prompts, eval_clean, cfg.eval_seed + 1))
            curve.append(m)
            if writer is not None:
                _log_scalars(writer, {k: v for k, v in m.items() if k != "train_return"})
                writer.add_scalar("train/return", m["train_return"], self.episodes)
            if ckpt is not None:
                save(model, cfg, ckpt)
            if self.bar is not None:
                self.bar.set_postfix(ret=f"{m['train_return']:.3f}", acc=f"{m['greedy_full_exact']:.3f}")
            self.stop = cfg.stop_at is not None and m["greedy_full_exact"] >= cfg.stop_at

    tracker = Tracker()
    threads = torch.get_num_threads()
    if device.type == "cpu" and params["cpu_threads"]:
        # Small MLPs on small batches: extra intra-op threads mostly synchronise (a GRU step
        # measured 17x slower with 2 threads than with 1 on a busy 2-core machine).
        torch.set_num_threads(int(params["cpu_threads"]))
    try:
        model.learn(total_timesteps=rollouts * n_steps * n_envs, callback=tracker, tb_log_name="sb3",
                    reset_num_timesteps=True)
    finally:
        torch.set_num_threads(threads)
        if writer is not None:
            writer.close()
        venv.close()
    return RunResult(
        algo=cfg.algo, env_id=cfg.env_id, env_kwargs=dict(cfg.env_kwargs), config=cfg.to_dict(),
        seed=cfg.seed, final_metrics=dict(curve[-1]) if curve else {}, curve=curve,
        trajectories=tracker.episodes, queries=0, wall_time=time.perf_counter() - t0, device=str(device),
        uses_clean_expert=False, policy=policy)


def save(model: Any, cfg: Any, path: str) -> None:
    """The SB3 model as ``path`` (a zip) and its TrainConfig beside it (``.json``), both atomically."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}.zip"
    model.save(tmp)
    os.replace(tmp, path)
    meta = os.path.splitext(path)[0] + ".json"
    with open(f"{meta}.tmp-{os.getpid()}", "w") as fh:
        json.dump(cfg.to_dict(), fh, indent=1, default=str)
    os.replace(f"{meta}.tmp-{os.getpid()}", meta)


def _positive_int(name: str):
    def check(v: Any) -> str | None:
        ok = isinstance(v, int) and not isinstance(v, bool) and v >= 1
        return None if ok else f"`{name}` must be an integer >= 1, got {v!r}"
    return check


def _positive(name: str):
    def check(v: Any) -> str | None:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
        return None if ok else f"`{name}` must be > 0, got {v!r}"
    return check


def _never(*_: Any) -> Any:
    raise RuntimeError("`ppo` runs through Algorithm.run, not the student-prefix loop")


register(Algorithm(
    "ppo", "RL reference: SB3 PPO from the task reward alone (no expert queries), token-embedding features",
    {"n_envs": 16, "episodes_per_env": 4, "n_epochs": 4, "minibatch_size": 256, "learning_rate": 1e-3,
     "gamma": 1.0, "gae_lambda": 0.95, "clip_range": 0.2, "ent_coef": 0.01, "vf_coef": 0.5,
     "extractor": "mean", "embed_dim": 32, "hidden": 64, "cpu_threads": 1},
    collect=_never, loss=_never, run=run,
    checks={"n_envs": _positive_int("n_envs"), "episodes_per_env": _positive_int("episodes_per_env"),
            "n_epochs": _positive_int("n_epochs"), "minibatch_size": _positive_int("minibatch_size"),
            "embed_dim": _positive_int("embed_dim"), "hidden": _positive_int("hidden"),
            "learning_rate": _positive("learning_rate"), "gamma": unit_interval("gamma"),
            "gae_lambda": unit_interval("gae_lambda"), "clip_range": _positive("clip_range"),
            "ent_coef": non_negative("ent_coef"), "vf_coef": non_negative("vf_coef"),
            "extractor": one_of("extractor", EXTRACTORS),
            "cpu_threads": lambda v: None if isinstance(v, int) and not isinstance(v, bool) and v >= 0
            else f"`cpu_threads` must be an integer >= 0 (0: leave torch's setting), got {v!r}"}))
