"""A hidden-rule board on the per-step ids (issue 22): the family's knob is a board file, nothing more."""

from __future__ import annotations

from noisy_expert_gym import make_problem


def test_a_hidden_per_step_board_needs_only_a_board_file(tmp_path):
    """The hidden-rule boards' family knob works on the per-step ids: a board file declares
    `hidden = ["automaton_seed", "relabel_seed"]`; the harness's draws (63-bit seeds) build the problem,
    and distinct draws give distinct rules."""
    from scoreboards.leaderboard.boards import load_board
    from scoreboards.leaderboard.hidden import derive, instance

    path = tmp_path / "perstep-hidden.toml"
    path.write_text('''description = "per-step hidden test board"
cost = "test"

[env]
id = "NoisyPerStepAutomaton-v0"
kwargs = { n = 3, k = 6, m = 5, eta = 0.5, law = "absorbing" }
hidden = ["automaton_seed", "relabel_seed"]

[budget]
trajectories = 1000

[eval]
prompts = 64
seeds = [11, 12]

[protocol]
train_seeds = [0, 1]

[[baselines]]
algo = "nail-f"
''')
    board = load_board(path)
    secret = bytes(range(32))
    tables = []
    for seed in board.train_seeds:
        inst = instance(board, seed, secret)
        assert inst.hidden["automaton_seed"] == derive(secret, board.hash, "automaton_seed", seed) >= 2**40
        task = make_problem(board.env_id, **inst.env_kwargs).task
        tables.append(task.automaton.table.tobytes() + task.block_tokens.tobytes())
    assert len(set(tables)) == 2
