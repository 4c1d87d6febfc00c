"""A trained policy as the expert: the ``temperature`` noise law on a teacher that is itself a student.

The paper's GSM-8K runs distil an LM teacher sampled at temperature t (pi~ =
softmax(logits / t); t = 1 "low", t = 4 "high" noise; the clean expert is its greedy
decoding). :class:`PolicyTeacher` is that law over any :class:`~agents.contracts.Policy`
-- a small transformer trained by this project's trainer, an HF student -- so the
law can be studied on a CPU with a teacher trained here (e.g. a longer-trained
character model on GSM-8K). It answers the :class:`~noisy_expert_gym.contracts.Oracle`
protocol (``access = "full"``): ``probs``, ``sample``, ``log_prob``, ``probs_along``,
``sample_along``, ``rollout``, ``num_queries`` / ``reset_queries``, ``with_rng``.

Use it by hand::

    noisy, clean = PolicyTeacher.pair(task, policy, t=1.0)
    train(cfg, problem=make_problem(...).with_experts(noisy, clean))

or from a config: ``TrainConfig.teacher_checkpoint`` (a trainer checkpoint) and
``teacher_t`` (:func:`with_teacher`, which :func:`agents.train` calls). The task core
(and so the evaluation: the clean validation loss on the task's clean chains, the
rollout metrics against the task's reference) is the env's; only the experts change.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from noisy_expert_gym.oracle import LogitsOracle, RngLike
from noisy_expert_gym.utils import exact_number, is_torch, sample_categorical

if TYPE_CHECKING:
    from agents.config import TrainConfig
    from noisy_expert_gym.problems import Problem


class PolicyTeacher(LogitsOracle):
    """A policy as a queryable expert over the task it was trained on.

    Args:
        task: the task core (the policy's vocabulary: ``num_actions`` logits).
        policy: a :class:`~agents.contracts.Policy`; put in eval mode, never trained here.
            It follows the inputs to their device.
        t: temperature > 0: pi~ = softmax(logits / t).
        greedy: be the clean expert: one-hot on the argmax (``t`` is ignored).
        rng: numpy Generator (or a callable returning the current one) for numpy inputs
            and for seeding :meth:`torch_generator`.
        name: what ``repr`` shows (e.g. the checkpoint path).
        fingerprint: a stable id of the weights (with the law, :attr:`fingerprint`: offline
            datasets generated from this teacher are cached under it); default: a hash of
            the policy's weights.
        chunk: rows per forward pass.
    """

    access = "full"

    def __init__(self, task: Any, policy: torch.nn.Module, t: float = 1.0, greedy: bool = False,
                 rng: RngLike = None, name: str | None = None, fingerprint: str | None = None,
                 chunk: int = 256) -> None:
        if not greedy and (isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0):
            raise ValueError(f"the temperature `t` must be a number > 0, got {t!r}")
        if chunk < 1:
            raise ValueError(f"`chunk` must be >= 1, got {chunk!r}")
        self.task = task
        self.policy = policy.eval()
        self.t = float(t)
        self.is_clean = bool(greedy)
        self.law = "clean" if greedy else "temperature"
        self.eta = None  # temperature noise has no eta; see `t`
        self.name = name or type(policy).__name__
        self.weights_id = fingerprint or weights_fingerprint(policy)
        self.chunk = int(chunk)
        super().__init__(rng)

    @classmethod
    def pair(cls, task: Any, policy: torch.nn.Module, t: float = 1.0, **kwargs: Any
             ) -> tuple[PolicyTeacher, PolicyTeacher]:
        """(noisy expert at temperature t, clean expert = greedy) over one policy."""
        fp = kwargs.pop("fingerprint", None) or weights_fingerprint(policy)
        return cls(task, policy, t=t, fingerprint=fp, **kwargs), cls(task, policy, greedy=True, fingerprint=fp,
                                                                    **kwargs)

    def __repr__(self) -> str:
        what = "greedy" if self.is_clean else f"t={self.t}"
        return f"PolicyTeacher({self.name!r}, {what})"

    @property
    def fingerprint(self) -> str:
        """A stable id of this expert (the weights and the law): offline datasets of its rollouts are
        cached under it."""
        return f"{self.weights_id}:{'greedy' if self.is_clean else f't={exact_number(self.t)}'}"

    # ----- the policy's logits ---------------------------------------------------------
    def _device_of(self, x: Any) -> torch.device:
        dev = x.device if is_torch(x) else torch.device("cpu")
        if next(self.policy.parameters()).device != dev:
            self.policy.to(dev)
        return dev

    @torch.no_grad()
    def _probs(self, obs: Any) -> torch.Tensor:
        """pi~ at each prefix of a batch of observations (N, L): (N, A) on the policy's device."""
        dev = self._device_of(obs)
        o = torch.as_tensor(obs, device=dev).long()
        p = self.task.prompt_len
        t = torch.as_tensor(self.task.step_index(o), device=dev).long()  # tokens written so far
        width = p + int(t.max())
        out = []
        for s in range(0, o.shape[0], self.chunk):
            # Causal: the padding after each prefix never reaches the logits read at its end.
            logits = self.policy(o[s : s + self.chunk, :width], first=p - 1)  # (n, width - p + 1, A)
            out.append(logits[torch.arange(logits.shape[0], device=dev), t[s : s + self.chunk]])
        return self._dist(torch.cat(out))

    # ----- single prefixes (probs, log_prob: LogitsOracle) -------------------------------
    def sample(self, obs: Any, generator: Any = None) -> Any:
        """One sampled token per prefix, (N,): numpy inputs draw from the numpy RNG, torch inputs from
        `generator` (or one seeded from it) on their device."""
        obs, single = self._batch(obs)
        self.num_queries += obs.shape[0]
        probs = self._probs(obs)
        if is_torch(obs):
            out = sample_categorical(probs, generator or self.torch_generator(probs.device)).to(obs.device)
        else:
            out = sample_categorical(probs.double().cpu().numpy(), generator or self.rng)
        return out[0] if single else out

    # ----- every prefix of complete chains ---------------------------------------------------
    @torch.no_grad()
    def probs_along(self, prompts: Any, chain: Any) -> Any:
        """pi~ at every prefix chain[:, :t], t = 0..H-1, in one teacher-forced pass: (N, H, A)."""
        self._check_prompts(prompts, chain)
        self.num_queries += chain.shape[0] * chain.shape[1]
        dev = self._device_of(chain)
        p, c = torch.as_tensor(prompts, device=dev).long(), torch.as_tensor(chain, device=dev).long()
        out = [self._dist(self.policy.chain_logits(p[s : s + self.chunk], c[s : s + self.chunk]))
               for s in range(0, p.shape[0], self.chunk)]
        return self._out(torch.cat(out), chain)

    @torch.no_grad()
    def rollout(self, prompts: Any, generator: Any = None) -> Any:
        """The teacher's own generations (sampled at t, or greedy): chains (N, H), stop-token padded
        after the first stop token. Counts one query per token up to and including it."""
        self._check_prompts(prompts)
        dev = self._device_of(prompts)
        p = torch.as_tensor(prompts, device=dev).long()
        gen = generator if generator is not None else self.torch_generator(dev)
        temp = 0.0 if self.is_clean else self.t
        chain = torch.cat([self.policy.generate(p[s : s + self.chunk], self.task.horizon, temperature=temp,
                                                generator=gen) for s in range(0, p.shape[0], self.chunk)])
        stops = getattr(self.task, "eos_tokens", ())
        if len(stops):  # like the reference teacher's rollouts: nothing after the first stop token
            is_stop = torch.isin(chain, torch.as_tensor(stops, device=dev))
            first = torch.where(is_stop.any(1), is_stop.float().argmax(1), chain.shape[1])
            after = torch.arange(chain.shape[1], device=dev)[None] > first[:, None]
            chain = chain.masked_fill(after, int(stops[0]))
            self.num_queries += int(torch.clamp(first + 1, max=chain.shape[1]).sum())
        else:
            self.num_queries += chain.numel()
        return chain.to(prompts.device) if is_torch(prompts) else chain.cpu().numpy()


def weights_fingerprint(policy: torch.nn.Module) -> str:
    """A short hash of a module's weights (names, shapes and values)."""
    h = hashlib.sha256()
    for k, v in policy.state_dict().items():
        h.update(k.encode())
        h.update(str(tuple(v.shape)).encode())
        x = v.detach().cpu()
        h.update((x.float() if x.is_floating_point() else x).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def load_teacher_policy(checkpoint: str, task: Any) -> torch.nn.Module:
    """The policy of a trainer checkpoint, rebuilt for `task` (its stored preset and model options), on
    the CPU and in eval mode."""
    from agents.checkpoint import find_checkpoint, load_checkpoint
    from agents.config import TrainConfig
    from agents.policies import build_policy, load_weights

    conf = load_checkpoint(find_checkpoint(checkpoint)).get("config") or {}
    base = TrainConfig()
    spec = TrainConfig(preset=conf.get("preset", base.preset), model=conf.get("model", {}))
    policy = build_policy(spec, task, "cpu")
    load_weights(policy, checkpoint)
    return policy.eval()


def with_teacher(problem: Problem, cfg: TrainConfig) -> Problem:
    """``problem`` with ``cfg.teacher_checkpoint``'s policy as its experts (temperature ``cfg.teacher_t``,
    clean = greedy), seeded by ``cfg.seed``; unchanged without a teacher checkpoint."""
    if not cfg.teacher_checkpoint:
        return problem
    policy = load_teacher_policy(cfg.teacher_checkpoint, problem.task)
    noisy, clean = PolicyTeacher.pair(problem.task, policy, t=cfg.teacher_t, name=cfg.teacher_checkpoint)
    rng = np.random.default_rng(cfg.seed)
    return problem.with_experts(noisy.with_rng(rng), clean.with_rng(rng))


__all__ = ["PolicyTeacher", "load_teacher_policy", "weights_fingerprint", "with_teacher"]
