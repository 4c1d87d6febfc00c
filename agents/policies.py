"""The student a run asks for: a plain-dict registry of policy kinds.

``TrainConfig.preset`` names the student: a preset of the small transformer
(``paper``, ``cpu``, ``cpu-rope``, ``tiny``: :data:`agents.policy.PRESETS`), or
``<kind>:<argument>`` for another kind (``hf:<hub name or local path>``: a Hugging
Face causal LM). ``TrainConfig.model`` holds the kind's options (transformer sizes;
:data:`~agents.hf_policy.HF_OPTIONS` for ``hf:``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import nn

from agents.policy import TransformerPolicy, make_config
from noisy_expert_gym._util import did_you_mean, lookup
from noisy_expert_gym.contracts import TaskCore


class PolicySpec(Protocol):
    """What :func:`build_policy` reads from a config (a :class:`~agents.config.TrainConfig`)."""

    preset: str
    model: dict[str, Any]


def transformer(preset: str, options: dict[str, Any], task: TaskCore) -> nn.Module:
    """The small transformer of :mod:`agents.policy`, sized by a preset plus overrides."""
    cfg = make_config(preset, vocab_size=task.vocab_size, num_actions=task.num_actions,
                      block_size=task.obs_len - 1, **options)
    return TransformerPolicy(cfg)


def hf(name_or_path: str, options: dict[str, Any], task: TaskCore) -> nn.Module:
    """A Hugging Face causal LM (:class:`~agents.hf_policy.HFPolicy`), ``options`` from HF_OPTIONS."""
    from agents.hf_policy import HF_OPTIONS, HFPolicy

    unknown = sorted(set(options) - set(HF_OPTIONS))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for an `hf:` student; valid: {sorted(HF_OPTIONS)}."
                         f"{did_you_mean(unknown[0], HF_OPTIONS)}")
    return HFPolicy.from_pretrained(name_or_path, task, **options)


#: Policy kinds: ``kind -> build(argument, options, task)``; a preset without ``kind:`` is a transformer's.
POLICY_KINDS: dict[str, Callable[[str, dict[str, Any], TaskCore], nn.Module]] = {
    "transformer": transformer,
    "hf": hf,
}


def build_policy(cfg: PolicySpec, task: TaskCore, device: torch.device | str) -> nn.Module:
    """The student ``cfg.preset`` asks for (options ``cfg.model``), for `task`, on `device`."""
    kind, sep, arg = cfg.preset.partition(":")
    if not sep:
        kind, arg = "transformer", cfg.preset
    return lookup(POLICY_KINDS, kind, "policy kind")(arg, dict(cfg.model), task).to(device)


__all__ = ["POLICY_KINDS", "PolicySpec", "build_policy", "hf", "transformer"]
