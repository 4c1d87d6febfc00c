"""`task.num_prompts` is the size of the prompt distribution's support, counted independently.

A board's held-out rule (scoreboards/README.md, "The evaluation") reserves at most a quarter of
a task's prompt space for its scored and curve prompts; a task that overstates its space lets a
board whose every prompt a submission can enumerate pass that check. Found on the per-step task:
it reported (P k)^m (every symbol token at every position) where position t holds only its
block's k tokens, k^m (n = 3, k = 2, m = 5: 100,000 reported, 32 real).
"""

from __future__ import annotations

import numpy as np
import pytest

from noisy_expert_gym import make_problem

#: (env id, kwargs): every chain family, small enough that sampling sees each position's support.
CHAIN_CASES = [
    ("NoisyModAdd-v0", {"p": 3, "m": 4}),
    ("NoisyModAddMixture-v0", {"p": 3, "m": 4}),
    ("NoisyModAddBiased-v0", {"p": 3, "m": 4}),
    ("NoisyAutomaton-v0", {"n": 3, "k": 2, "m": 4}),
    ("NoisyDFA-v0", {"m": 3}),
    ("NoisyS5-v0", {"m": 2}),
    ("NoisyPerStepAutomaton-v0", {"n": 3, "k": 2, "m": 4}),
    ("NoisyPerStepAutomaton-v0", {"n": 3, "k": 2, "m": 4, "period": 2}),
    ("NoisyPerStepAutomaton-v0", {"n": 3, "k": 2, "m": 4, "period": 1}),
    ("NoisyPerStepAutomaton-v0", {"n": 3, "k": 6, "m": 5, "relabel_seed": 3}),
    ("NoisyPerStepModAdd-v0", {"n": 3, "m": 3}),
]


@pytest.mark.parametrize(("env_id", "kwargs"), CHAIN_CASES, ids=lambda v: str(v))
def test_num_prompts_is_the_sampled_support(env_id, kwargs):
    """Independent count: the product over positions of the distinct symbols 20,000 samples hold
    (positions are drawn independently), and, where the space is small, the distinct prompts."""
    task = make_problem(env_id, **kwargs).task
    prompts = np.asarray(task.sample_prompts(np.random.default_rng(0), 20_000))
    per_position = [len(np.unique(prompts[:, t])) for t in range(task.m)]
    assert task.num_prompts == int(np.prod(per_position, dtype=object)), per_position
    if task.num_prompts <= 1000:  # 20,000 uniform draws miss one of <= 1,000 with prob < 1e-5
        assert len(np.unique(prompts, axis=0)) == task.num_prompts


def test_gsm8k_num_prompts_is_its_distinct_problems(gsm8k_dir):
    task = make_problem("NoisyGSM8K-v1", data_dir=gsm8k_dir).task
    prompts = np.asarray(task.sample_prompts(np.random.default_rng(0), 50 * task.num_prompts))
    assert len(np.unique(prompts, axis=0)) == task.num_prompts


def test_a_board_on_a_small_per_step_space_is_refused(tmp_path):
    """The board rule reads the real space: a per-step board at k = 2, m = 5 (32 prompts) with 8
    held-out prompts would reserve a quarter of it and passed while the space read 100,000."""
    from scoreboards.leaderboard.boards import load_board

    path = tmp_path / "small.toml"
    path.write_text('''description = "d"
cost = "c"
[env]
id = "NoisyPerStepAutomaton-v0"
kwargs = { n = 3, k = 2, m = 5, eta = 0.5 }
[budget]
trajectories = 100
[eval]
prompts = 8
seeds = [11]
curve_prompts = 4
[protocol]
train_seeds = [0]
[[baselines]]
algo = "bc"
''')
    with pytest.raises(ValueError, match="of the task's 32 prompts"):
        load_board(path)
