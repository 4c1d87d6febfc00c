"""The built-in algorithms as board submissions: a thin adapter over ``agents.train``.

It runs in the same worker process and through the same :class:`ExpertClient` as a
user's submission: the trainer's prompts come from ``expert.prompts`` and every
expert query goes over the pipe, counted and budgeted by the harness, which also
scores the trained policy through :meth:`BuiltinSubmission.act`. The adapter is
trusted project code, so it may build the env's task core in the worker for the
observation layout and the trainer's own monitoring evaluation (which uses clean
chains of held-out prompts; the board's score never does).
"""

from __future__ import annotations

import tempfile
from typing import Any

import numpy as np

#: Evaluation prompts of the trainer's own (monitoring) evaluation under a board.
MONITOR_PROMPTS = 256


class _ClientTask:
    """The task core, except that prompts come from the harness."""

    def __init__(self, task: Any, client: Any) -> None:
        self._task, self._client = task, client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)

    def __repr__(self) -> str:
        return f"HarnessPrompts({self._task!r})"

    def sample_prompts(self, rng: Any, n: int, device: Any = None) -> Any:
        dev = device if device is not None else getattr(rng, "device", None)
        return self._client.prompts(n, device=dev if dev is not None else "cpu")


class _NoExpert:
    """Stands in for the expert an algorithm must not use (the clean one, for most)."""

    num_queries = 0

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("this algorithm may not query this expert under a board")


class _HarnessEnv:
    """The env handed to ``agents.train(cfg, env=...)``, wired to the harness."""

    def __init__(self, task: Any, expert: Any, clean_expert: Any) -> None:
        self.task, self.expert, self.clean_expert = task, expert, clean_expert
        self.unwrapped = self

    def reset(self, **_: Any) -> None:
        return None

    def close(self) -> None:
        return None


class BuiltinSubmission:
    """A registered algorithm (``spec["algo"]``, ``spec["algo_params"]``, ``spec["train"]``)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        import gymnasium as gym

        import noisy_expert_gym  # noqa: F401

        self.spec = spec
        env = gym.make(spec["env_id"], **spec["env_kwargs"])
        self.task = env.unwrapped.task
        env.close()
        self.policy: Any = None
        self.device: Any = None
        self.result: Any = None

    def train(self, expert: Any) -> None:
        from agents import trainer
        from agents.algos import get_algorithm
        from agents.config import TrainConfig

        s = self.spec
        alg = get_algorithm(s["algo"])
        train = dict(s.get("train", {}))
        batch = int(train.get("batch_size", TrainConfig.batch_size))
        q = s.get("budget_queries")
        if q is not None:  # the trainer checks before an update; keep one update's worth of room
            q = max(1, q - 2 * batch * self.task.horizon)
        budget = s["budget_trajectories"]
        with tempfile.TemporaryDirectory(prefix="neg-builtin-") as data_dir:
            cfg = TrainConfig(**{**train, "algo": s["algo"], "algo_params": dict(s.get("algo_params", {})),
                                 "env_id": s["env_id"], "env_kwargs": dict(s["env_kwargs"]),
                                 "budget_trajectories": budget, "budget_queries": q, "seed": s["seed"],
                                 "eval_every": budget, "eval_prompts": MONITOR_PROMPTS, "progress": False,
                                 # a fresh dataset cache: BC's data must be bought through the client
                                 "data_dir": data_dir, "checkpoint_dir": None, "resume": False})
            task = _ClientTask(self.task, expert)
            if alg.uses_clean_expert:  # bc-clean: the harness serves the clean expert
                env = _HarnessEnv(task, _NoExpert(), expert)
            else:
                env = _HarnessEnv(task, expert, _NoExpert())
            self.result = trainer.train(cfg, env=env)
        self.policy = self.result.policy
        self.policy.eval()
        self.device = next(self.policy.parameters()).device

    def act(self, observations: np.ndarray) -> np.ndarray:
        import torch

        obs = torch.as_tensor(np.asarray(observations), dtype=torch.long, device=self.device)
        p = self.task.prompt_len
        written = (obs[:, p:] != self.task.pad_token).sum(1)
        out = torch.empty(obs.shape[0], dtype=torch.long, device=self.device)
        with torch.no_grad():
            for t in torch.unique(written).tolist():
                rows = (written == t).nonzero()[:, 0]
                logits = self.policy(obs[rows, : p + t])[:, -1]  # (n, A): the next action
                out[rows] = logits.argmax(-1)
        return out.cpu().numpy()
