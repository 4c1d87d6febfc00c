"""Every training option is honoured or refused, never accepted and ignored (trl#6357, mlx-vlm#244).

The table lists every :class:`~agents.TrainConfig` field with a value other than its default, in a
context where it matters (its effect is observed) and in contexts where it cannot matter (it must be
refused with a ValueError naming it). The effect is observed on a fingerprint of a tiny run: its
curve, final weights, device and the files it wrote, and what it handed the shared plumbing (the
batches the optimiser stepped on, the compile choice, the evaluation's chunking, checkpoint writes,
the progress bar, how the expert's rows were read). A completeness test fails when TrainConfig gains
a field the table does not cover; every field PPO does not read is refused on ``ppo``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from agents import ALGORITHMS, TrainConfig, evaluation, train, trainer
from agents.algos import online
from noisy_expert_gym.tasks.gsm8k import write_example_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"algo": "nail-f", "env_id": "NoisyModAdd-v0", "env_kwargs": {"m": 3, "eta": 0.1}, "preset": "tiny",
        "batch_size": 16, "budget_trajectories": 64, "eval_prompts": 16, "device": "cpu", "progress": False,
        "precision": "fp32", "eval_sampled": False}
GSM = {"env_id": "NoisyGSM8K-v1", "env_kwargs": {"data_dir": "{gsm8k}", "max_new_tokens": 160,
                                                   "max_prompt_tokens": 200}, "batch_size": 4,
       "budget_trajectories": 8, "eval_prompts": 4}


def effect(option: str, value: Any, context: dict | None = None, name: str = "") -> Any:
    return pytest.param(option, value, context or {}, "effect", id=name or f"{option}={value!r}-effect")


def refused(option: str, value: Any, context: dict | None = None, name: str = "") -> Any:
    return pytest.param(option, value, context or {}, "refused", id=name or f"{option}={value!r}-refused")


CASES = [
    effect("algo", "bc"), effect("env_id", "NoisyAutomaton-v0"), effect("env_kwargs", {"m": 3, "eta": 0.6}),
    effect("algo_params", {"beta": 0.25}, {"algo": "nail-mixed"}), effect("budget_trajectories", 32),
    effect("budget_queries", 3 * 32), effect("seed", 1),
    refused("device", "mps", name="device-an unavailable one is refused (cpu: the only device here)"),
    effect("precision", "bf16"), effect("compile", "off"), effect("preset", "cpu"),
    effect("model", {"dropout": 0.1}), effect("batch_size", 8), effect("lr", 1e-2), effect("weight_decay", 0.5),
    effect("warmup_updates", 0), effect("schedule", "cosine", {"warmup_updates": 0}),
    effect("min_lr_ratio", 0.5, {"schedule": "cosine", "warmup_updates": 0}), refused("min_lr_ratio", 0.5),
    effect("grad_accum", 2), effect("grad_clip", 1e-3),
    effect("prompt_order", "epoch", GSM), effect("prompt_order", "epoch", {**GSM, "algo": "bc"}, name="bc-epoch"),
    refused("prompt_order", "epoch"), refused("prompt_order", "epoch", {"algo": "bc"}, name="bc-epoch-refused"),
    effect("eval_every", 32), effect("eval_prompts", 8),
    refused("eval_prompts", 5, {**GSM, "eval_mode": "all", "eval_prompts": 1024}, name="eval_prompts-with-all"),
    effect("eval_mode", "all", {**GSM, "eval_prompts": 1024}), refused("eval_mode", "all"),
    effect("eval_sampled", True), effect("eval_batch_size", 4),
    effect("val_env_kwargs", {"answer_format": "####", "strip_annotations": False}, GSM),
    refused("val_env_kwargs", {"eta": 0.5}),
    effect("eval_env_kwargs", {"split": "test"}, GSM), effect("eval_env_kwargs", {"relabel_seed": 3},
                                                              {"env_id": "NoisyAutomaton-v0"}),
    refused("eval_env_kwargs", {"m": 5}),
    effect("eval_seed", 7), effect("stop_at", 0.0),
    effect("checkpoint_dir", "{tmp}/ck"), effect("checkpoint_every", 3, {"checkpoint_dir": "{tmp}/ck"}),
    refused("checkpoint_every", 1),
    effect("resume", True, {"checkpoint_dir": "{stopped}"}), refused("resume", True),
    effect("tensorboard_dir", "{tmp}/tb"), effect("progress", True),
    effect("data_dir", "{tmp}/data", {"algo": "bc"}),
    effect("init_checkpoint", "{stopped}"), effect("teacher_checkpoint", "{stopped}"),
    effect("teacher_t", 4.0, {"teacher_checkpoint": "{stopped}"}), refused("teacher_t", 4.0),
    effect("expert_form", "structured"), refused("expert_form", "structured", {"env_kwargs": {"m": 3, "law": "biased"}}),
    effect("expert_form", "structured", {"algo": "bc", "algo_params": {"labels": "probs"}}, name="bc-soft-expert_form"),
    effect("ema_decay", 0.9),
    *[refused("expert_form", "dense", {"algo": a}, name=f"expert_form-{a}-refused")
      for a, alg in ALGORITHMS.items() if "expert_form" in alg.unused],
]
#: Fields accepted in a context where they change nothing, with why (documented equivalences and locations).
ACCEPTED_WITHOUT_EFFECT = {
    "data_dir": ("nail-f", ("a cache location: only bc / bc-clean cache a dataset (the board harness gives "
                            "every run a fresh one)")),
    "expert_form": ("nail-f", "'dense' is what 'auto' reads below 4,096 actions"),
}


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("train-options")
    stopped = root / "stopped"
    train(**TINY, checkpoint_dir=str(stopped), stop_at=0.0)  # a checkpoint to resume or load
    return {"gsm8k": str(write_example_data(root / "gsm8k")), "stopped": str(stopped)}


def _fill(v: Any, places: dict[str, str]) -> Any:
    if isinstance(v, str):
        return v.format(**places)
    if isinstance(v, dict):
        return {k: _fill(x, places) for k, x in v.items()}
    return v


class Spy:
    """What a run handed the shared plumbing (while `monkeypatch` holds)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: list[Any] = []
        compile_, save, monitor, evaluate, update = (trainer.maybe_compile, trainer.save_checkpoint, trainer.Monitor,
                                                     evaluation.evaluate, trainer.Run.update)
        rows = online.rows.expert_rows

        def spy(tag: str, fn: Any, record: Any) -> Any:
            def wrapped(*a: Any, **kw: Any) -> Any:
                out = fn(*a, **kw)
                self.seen.append((tag, record(a, kw, out)))
                return out
            return wrapped

        monkeypatch.setattr(trainer, "maybe_compile", spy("compile", compile_, lambda a, kw, out: a[1]))
        monkeypatch.setattr(trainer, "save_checkpoint", spy("checkpoint", save, lambda a, kw, out: None))
        monkeypatch.setattr(trainer, "Monitor", spy("bar", monitor, lambda a, kw, out: out.bar is not None))
        monkeypatch.setattr(evaluation, "evaluate", spy("chunk", evaluate, lambda a, kw, out: kw.get("chunk")))
        monkeypatch.setattr(trainer.Run, "update", spy("batch", update, lambda a, kw, out: tuple(a[1].prompts.shape)))
        monkeypatch.setattr(online.rows, "expert_rows", spy("rows", rows, lambda a, kw, out: type(out).__name__))


def fingerprint(config: dict, tmp: Path, monkeypatch: pytest.MonkeyPatch | None = None) -> list[Any]:
    with pytest.MonkeyPatch.context() as mp:  # this run's spies only
        spy = Spy(mp)
        res = train(**config)
    files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file() and "stopped" not in p.parts)
    params = torch.cat([p.detach().flatten() for p in res.policy.parameters()]).tolist()
    curve = [{k: v for k, v in r.items() if k != "wall_time"} for r in res.curve]
    return [curve, params, res.device, files, list(spy.seen)]


@pytest.mark.parametrize(("option", "value", "context", "expect"), CASES)
def test_a_training_option_is_honoured_or_refused(option, value, context, expect, places, tmp_path, monkeypatch):
    def run(side: str, with_option: bool) -> list[Any]:
        """The run in its own folder ({tmp}), with its own copy of the stopped run's checkpoint."""
        tmp = tmp_path / side
        shutil.copytree(places["stopped"], tmp / "stopped")
        where = {**places, "tmp": str(tmp), "stopped": str(tmp / "stopped")}
        config = {**TINY, **_fill(context, where), **({option: _fill(value, where)} if with_option else {})}
        return fingerprint(config, tmp, monkeypatch)

    if expect == "refused":
        with pytest.raises(ValueError, match=option):
            run("given", True)
        return
    assert run("base", False) != run("given", True), f"{option}={value!r} was accepted and changed nothing"


@pytest.mark.parametrize("option", sorted(ALGORITHMS["ppo"].unused))
def test_ppo_refuses_the_fields_it_does_not_read(option):
    value = {"lr": 0.1, "batch_size": 8, "preset": "tiny", "model": {"dropout": 0.1}, "schedule": "cosine",
             "warmup_updates": 3, "weight_decay": 0.1, "min_lr_ratio": 0.5, "budget_queries": 1000, "grad_accum": 2,
             "prompt_order": "epoch", "checkpoint_every": 3, "init_checkpoint": "x", "teacher_checkpoint": "x",
             "teacher_t": 2.0, "expert_form": "dense", "precision": "fp32", "compile": "on"}[option]
    extra = {"schedule": "cosine"} if option == "min_lr_ratio" else {}
    extra |= {"teacher_checkpoint": "x"} if option == "teacher_t" else {}
    extra |= {"checkpoint_dir": "x"} if option == "checkpoint_every" else {}
    with pytest.raises(ValueError, match=f"`{option}=.*no effect on `ppo`"):
        TrainConfig.build(algo="ppo", **extra, **{option: value})


def test_every_training_option_is_in_the_table():
    covered = {case.values[0] for case in CASES}
    missing = sorted(set(TrainConfig.model_fields) - covered)
    assert not missing, f"no case for {missing}"


@pytest.mark.parametrize("option", sorted(ACCEPTED_WITHOUT_EFFECT))
def test_options_accepted_without_effect_are_documented(option, places, tmp_path, monkeypatch):
    algo, _why = ACCEPTED_WITHOUT_EFFECT[option]
    value = {"data_dir": str(tmp_path / "data"), "expert_form": "dense"}[option]
    base = fingerprint({**TINY, "algo": algo}, tmp_path, monkeypatch)
    assert fingerprint({**TINY, "algo": algo, option: value}, tmp_path, monkeypatch) == base
    assert not os.path.exists(tmp_path / "data")
