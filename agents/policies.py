"""The student a run asks for: a plain-dict registry of policy kinds.

``TrainConfig.preset`` names the student: a preset of the small transformer
(``paper``, ``cpu``, ``cpu-rope``, ``tiny``: :data:`agents.policy.PRESETS`), or
``<kind>:<argument>`` for another kind (``hf:<hub name or local path>``: a Hugging
Face causal LM). ``TrainConfig.model`` holds the kind's options (transformer sizes;
:data:`~agents.hf_policy.HF_OPTIONS` for ``hf:``). ``TrainConfig.init_checkpoint``
warm-starts it from a trainer checkpoint's weights (:func:`load_weights`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import nn

from agents.policy import PRESETS, TransformerPolicy, make_config
from noisy_expert_gym.contracts import TaskCore
from noisy_expert_gym.utils import did_you_mean, lookup


class PolicySpec(Protocol):
    """What :func:`build_policy` reads from a config (a :class:`~agents.config.TrainConfig`); an
    ``init_checkpoint`` attribute, when present and set, warm-starts the policy."""

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


def check_preset(preset: str) -> str:
    """`preset` if it names a student (a transformer preset, or ``kind:argument`` of a known kind);
    else ValueError with the valid values and a suggestion. Checked when a configuration is
    validated (``TrainConfig``, a spec's or board's ``train`` table), before anything runs."""
    kind, sep, arg = preset.partition(":")
    if sep:
        if kind not in POLICY_KINDS or kind == "transformer":
            kinds = [k for k in POLICY_KINDS if k != "transformer"]
            raise ValueError(f"unknown policy kind `{kind}` in preset `{preset}`; valid kinds: "
                             f"{', '.join(f'`{k}:`' for k in kinds)}.{did_you_mean(kind, kinds)}")
        if not arg:
            raise ValueError(f"preset `{preset}` names no model: write `{kind}:<name or path>`")
        return preset
    if preset not in PRESETS:
        raise ValueError(f"unknown preset `{preset}`; valid: {', '.join(f'`{k}`' for k in PRESETS)}, or "
                         f"`hf:<name or path>` (a Hugging Face causal LM).{did_you_mean(preset, PRESETS)}")
    return preset


def build_policy(cfg: PolicySpec, task: TaskCore, device: torch.device | str) -> nn.Module:
    """The student ``cfg.preset`` asks for (options ``cfg.model``), for `task`, on `device`; with the
    weights of ``cfg.init_checkpoint`` when it has one (a warm start)."""
    kind, sep, arg = cfg.preset.partition(":")
    if not sep:
        kind, arg = "transformer", cfg.preset
    policy = lookup(POLICY_KINDS, kind, "policy kind")(arg, dict(cfg.model), task)
    init = getattr(cfg, "init_checkpoint", None)
    if init:
        load_weights(policy, init)
    return policy.to(device)


def load_weights(policy: nn.Module, checkpoint: str) -> dict[str, Any]:
    """Load the model weights of a trainer checkpoint (``last.pt`` or its directory) into `policy`.

    Returns the checkpoint's stored TrainConfig dict (empty when it has none).

    Raises:
        FileNotFoundError: no checkpoint there.
        ValueError: the checkpoint holds no model weights, or weights of another shape (a
            different preset, model options or vocabulary).
    """
    from agents.checkpoint import find_checkpoint, load_checkpoint

    path = find_checkpoint(checkpoint)
    payload = load_checkpoint(path)
    if not isinstance(payload, dict) or "model" not in payload:
        raise ValueError(f"{path} holds no model weights: pass a trainer checkpoint (`last.pt`, written with "
                         "--checkpoint-dir)")
    try:
        policy.load_state_dict(payload["model"])
    except RuntimeError as e:
        conf = payload.get("config") or {}
        lines = str(e).strip().splitlines()
        raise ValueError(f"the weights in {path} (preset {conf.get('preset')!r}, model {conf.get('model', {})}) do "
                         f"not fit this policy ({lines[1].strip() if len(lines) > 1 else lines[0]}); use the "
                         "preset and model options it was trained with") from None
    return payload.get("config") or {}


__all__ = ["POLICY_KINDS", "PolicySpec", "build_policy", "check_preset", "hf", "load_weights", "transformer"]
