"""The built-in algorithms as board submissions: a thin adapter over ``agents.train``.

It runs in the same worker process and through the same :class:`ExpertClient` as a
user's submission: the trainer gets the board's problem with the client as its expert
and its prompt source (:meth:`Problem.with_experts` and a task whose
``sample_prompts`` asks the harness), so every expert query goes over the pipe,
counted and budgeted by the harness, which also scores the trained policy through
:meth:`BuiltinSubmission.act`. The adapter is trusted project code, so it builds the
problem's task core in the worker for the observation layout and the trainer's own
monitoring evaluation (which uses clean chains of held-out prompts; the board's
score never does). On a hidden-rule board the worker knows only the public kwargs, so
that task core is the family's default instance: it has the board's layout (sizes,
tokens, horizon), and the trainer's monitoring numbers on it are discarded.

While training, the harness measures the board's learning curve by calling
:meth:`BuiltinSubmission.act`, which then answers with the trainer's live policy.

:func:`needs_probs` says whether an algorithm can enter a sample-only board, :func:`topk_refusal` whether it
can enter a top-k one.

The algorithm is a built-in's name or a plugin's (``agents.examples.mode_bc:ModeBC``: the
registry loads it in the worker), and :func:`algorithm_submission` makes a submission class of
any algorithm (a name, an ``Algorithm`` record, or a class following its contract): what a
board's worker runs for a submitted algorithm, the same code as ``neg train --algo`` runs.
"""

from __future__ import annotations

import dataclasses
import tempfile
from typing import Any

import numpy as np

#: Evaluation prompts of the trainer's own (monitoring) evaluation under a board.
MONITOR_PROMPTS = 256


def needs_probs(algo: str, params: dict[str, Any] | None = None) -> bool:
    """Whether the built-in `algo` (with `params`) reads the expert's probabilities
    (``probs``, ``probs_along``, ``log_prob``), which a sample-only board refuses.

    Read from the algorithm's record: ``Algorithm.needs_probs``, a bool or a function of
    its validated parameters (e.g. True only for an ``exact`` estimator). An algorithm
    that does not declare it is taken to need them.
    """
    from agents.algos import get_algorithm

    alg = get_algorithm(algo)
    flag = getattr(alg, "needs_probs", True)
    if callable(flag):
        return bool(flag(alg.params.model_validate(dict(params or {}))))
    return bool(flag)


def topk_refusal(algo: str, params: dict[str, Any] | None, top_k: int | None) -> str:
    """Why the built-in `algo` (with `params`) cannot learn from a ``topk`` expert answering `top_k` tokens
    ("" when it can): it needs whole rows, or asks for more tokens than the board's k."""
    from agents.algos import access_needed, get_algorithm

    alg = get_algorithm(algo)
    p = alg.params.model_validate(dict(params or {}))
    if access_needed(alg, p) == "full":
        return "it reads the expert's whole rows" + (f" ({alg.topk_hint})" if alg.topk_hint else "")
    k = alg.top_k(p)
    if k is not None and top_k is not None and k > top_k:
        return f"it asks for the top {k} tokens (top_k <= {top_k})"
    return ""


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


class BuiltinSubmission:
    """A registered algorithm or a plugin (``spec["algo"]``, ``spec["algo_params"]``, ``spec["train"]``)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        from noisy_expert_gym import make_problem

        self.spec = spec
        self.problem = make_problem(spec["env_id"], **spec["env_kwargs"])
        self.task = self.problem.task
        self.policy: Any = None
        self.result: Any = None

    def train(self, expert: Any) -> None:
        from agents import train as run_training
        from agents.algos import get_algorithm
        from agents.config import TrainConfig

        s = self.spec
        alg = get_algorithm(s["algo"])
        train = dict(s.get("train", {}))
        q = s.get("budget_queries")  # hard caps in the trainer: no reserve of our own
        budget = s["budget_trajectories"]
        from agents import trainer

        build_policy = trainer.build_policy

        def live_policy(*args: Any, **kwargs: Any) -> Any:  # keep the policy for act() during training
            self.policy = build_policy(*args, **kwargs)
            return self.policy

        trainer.build_policy = live_policy
        with tempfile.TemporaryDirectory(prefix="neg-builtin-") as data_dir:
            cfg = TrainConfig(**{**train, "algo": s["algo"], "algo_params": dict(s.get("algo_params", {})),
                                 "env_id": s["env_id"], "env_kwargs": dict(s["env_kwargs"]),
                                 "budget_trajectories": budget, "budget_queries": q, "seed": s["seed"],
                                 "eval_every": budget, "eval_prompts": MONITOR_PROMPTS, "progress": False,
                                 # a fresh dataset cache: BC's data must be bought through the client
                                 "data_dir": data_dir, "checkpoint_dir": None, "resume": False})
            # The harness's prompts, and its client as the one expert the algorithm may query
            # (bc-clean: the harness serves the clean expert through it).
            problem = dataclasses.replace(self.problem, task=_ClientTask(self.task, expert))
            if alg.uses_clean_expert:
                problem = problem.with_experts(_NoExpert(), expert)
            else:
                problem = problem.with_experts(expert, _NoExpert())
            try:
                self.result = run_training(cfg, problem=problem)
            finally:
                trainer.build_policy = build_policy
        self.policy = self.result.policy
        self.policy.eval()

    def act(self, observations: np.ndarray) -> np.ndarray:
        import torch

        if self.policy is None:
            raise RuntimeError("no policy yet: training has not built it")
        device = next(self.policy.parameters()).device
        obs = torch.as_tensor(np.asarray(observations), dtype=torch.long, device=device)
        p = self.task.prompt_len
        written = (obs[:, p:] != self.task.pad_token).sum(1)
        out = torch.empty(obs.shape[0], dtype=torch.long, device=device)
        was_training = self.policy.training  # mid-training calls (the harness's curve) keep the mode
        self.policy.eval()
        try:
            with torch.no_grad():
                for t in torch.unique(written).tolist():
                    rows = (written == t).nonzero()[:, 0]
                    logits = self.policy(obs[rows, : p + t])[:, -1]  # (n, A): the next action
                    out[rows] = logits.argmax(-1)
        finally:
            self.policy.train(was_training)
        return out.cpu().numpy()


def algorithm_submission(algorithm: Any, params: dict[str, Any] | None = None,
                         train: dict[str, Any] | None = None) -> type:
    """A submission class that trains `algorithm` on a board through :class:`BuiltinSubmission`.

    Args:
        algorithm: a registered name (``nail-f``), a plugin's (``path/to/file.py:Name``,
            ``module:Name``), an ``Algorithm`` record, or a class following its contract
            (registered under ``module:QualName``).
        params: its parameters (the spec's ``algo_params`` override them).
        train: training fields (``preset``, ``lr``, ...; the spec's ``train`` overrides them).
    """
    if isinstance(algorithm, str):
        name = algorithm
    else:
        from agents.algos import as_algorithm
        from agents.registry import ALGORITHMS

        name = f"{getattr(algorithm, '__module__', 'plugin')}:{getattr(algorithm, '__qualname__', 'Algorithm')}"
        ALGORITHMS.setdefault(name, as_algorithm(algorithm, name))

    class AlgorithmSubmission(BuiltinSubmission):
        __doc__ = f"`{name}` under a board's protocol (the built-in adapter)."

        def __init__(self, spec: dict[str, Any]) -> None:
            super().__init__({**spec, "algo": name,
                              "algo_params": {**(params or {}), **spec.get("algo_params", {})},
                              "train": {**(train or {}), **spec.get("train", {})}})

    AlgorithmSubmission.__qualname__ = AlgorithmSubmission.__name__ = f"{name.rpartition(':')[2]}Submission"
    return AlgorithmSubmission
