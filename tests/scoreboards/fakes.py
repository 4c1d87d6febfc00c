"""Fast stand-ins for agents.train (module-level, so spawned workers can import them)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from agents.config import TrainConfig
from agents.result import RunResult

#: Final accuracy of each fake algorithm at eta = 0 (noise subtracts from it).
SKILL = {"bc": 0.6, "nail-f": 0.9, "opd-f": 0.3, "nail-mixed": 0.8, "bc-clean": 1.0}


def fake_train(cfg: TrainConfig) -> RunResult:
    """A deterministic learning curve from the config: accuracy rises to the algorithm's skill."""
    skill = SKILL.get(cfg.algo, 0.5) - cfg.env_kwargs.get("eta", 0.0) + 0.01 * cfg.seed
    skill += 0.1 * cfg.algo_params.get("beta", 0.0)
    n = 4
    curve = []
    for i in range(1, n + 1):
        t = cfg.budget_trajectories * i // n
        acc = round(skill * i / n, 6)
        curve.append({"update": i, "trajectories": t, "queries": t * cfg.env_kwargs.get("m", 31),
                      "wall_time": 0.01 * i, "greedy_full_exact": acc, "greedy_final_exact": min(1.0, acc + 0.05),
                      "greedy_correct_prefix_len": 3 * acc, "val_loss": 2.0 * (1 - acc) + 1e-3,
                      "train_loss": 1.0})
    if cfg.checkpoint_dir:  # record what the runner asked for
        Path(cfg.checkpoint_dir).mkdir(parents=True, exist_ok=True)
        (Path(cfg.checkpoint_dir) / "resumed").write_text(str(cfg.resume))
    return RunResult(algo=cfg.algo, env_id=cfg.env_id, env_kwargs=dict(cfg.env_kwargs), config=cfg.to_dict(),
                     seed=cfg.seed, final_metrics=dict(curve[-1]), curve=curve,
                     trajectories=cfg.budget_trajectories, queries=curve[-1]["queries"], wall_time=0.04,
                     device="cpu", uses_clean_expert=cfg.algo == "bc-clean")


def failing_train(cfg: TrainConfig) -> RunResult:
    if cfg.algo == "opd-f":
        raise RuntimeError("deliberate failure for opd-f")
    return fake_train(cfg)


def dying_train(cfg: TrainConfig) -> RunResult:
    """Kills its process on the run marked by $NEG_TEST_DIE_SEED (a killed sweep)."""
    if str(cfg.seed) == os.environ.get("NEG_TEST_DIE_SEED"):
        Path(cfg.checkpoint_dir).mkdir(parents=True, exist_ok=True)
        (Path(cfg.checkpoint_dir) / "last.pt").write_text("partial")
        os._exit(9)
    return fake_train(cfg)


def sleepy_train(cfg: TrainConfig) -> RunResult:
    """fake_train that takes a measurable time (for the overhead benchmark)."""
    time.sleep(float(os.environ.get("NEG_TEST_SLEEP", "0.2")))
    return fake_train(cfg)


def real_or_fail(cfg: TrainConfig) -> RunResult:
    """The real trainer, except that opd-f fails (one pool sweep covers both paths)."""
    if cfg.algo == "opd-f":
        raise RuntimeError("deliberate failure for opd-f")
    from agents import train

    return train(cfg)


def lr_train(cfg: TrainConfig) -> RunResult:
    """fake_train whose skill peaks at lr 1e-3 (a tuning sweep's stand-in): -0.6 per decade away from it."""
    import math

    res = fake_train(cfg)
    drop = 0.6 * abs(math.log10(cfg.lr) + 3)
    for row in res.curve:
        row["greedy_full_exact"] = round(max(0.0, row["greedy_full_exact"] - drop * row["update"] / 4), 6)
    res.final_metrics = dict(res.curve[-1])
    return res
