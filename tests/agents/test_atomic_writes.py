"""A kill mid-save leaves no orphan checkpoint behind (Lightning#688; issue 24, case 4).

A checkpoint writer killed with SIGKILL with its temporary written but not renamed: the next write --
here the next training run in the same folder -- removes every orphan and leaves a complete checkpoint.
"""

from __future__ import annotations

import pytest

from agents import train
from agents.checkpoint import load_checkpoint
from tests.noisy_expert_gym.test_atomic_writes import killed_mid_write, temporaries

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"env_id": "NoisyModAdd-v0", "env_kwargs": {"m": 3, "eta": 0.1}, "preset": "tiny", "batch_size": 16,
        "eval_prompts": 16, "device": "cpu", "progress": False, "precision": "fp32", "budget_trajectories": 32}


def test_a_checkpoint_killed_mid_save_leaves_no_orphan_after_the_next_save(tmp_path):
    """SIGKILLs of a process saving a full-size checkpoint, then a training run in the same folder (the
    other writers of this layer -- progress row, config, BC's dataset cache, ``--out`` -- go through the
    same :func:`~noisy_expert_gym.utils.atomic_path`, tested in tests/noisy_expert_gym/test_atomic_writes.py)."""
    ck = tmp_path / "ck"
    killed_mid_write("import torch; from agents.checkpoint import save_checkpoint; "
                     f"save_checkpoint({str(ck / 'last.pt')!r}, {{'w': torch.zeros(250_000)}})", times=2)
    assert temporaries(ck)  # a kill leaves its full-size temporary
    train(algo="nail-f", checkpoint_dir=str(ck), **TINY)
    assert temporaries(ck) == []
    assert load_checkpoint(str(ck / "last.pt"))["trajectories"] == 32
